// Table growth: the last phase of a collection (kPhaseGrowing), which
// rehashes the table into one at least twice as large.
//
// Layout (heap/layout.h). The segment reserves two table areas, each with
// room for 2^max_table_slots_log2 slots, in the MAP_NORESERVE mapping; the
// live table is the first 2^k slots of one of them, named with k by one
// header word, Header::table. Only the live table's slots are backed (a
// sparse object: unused slots cost no memory); the other area is a hole.
//
// When. After compaction and tombstone clearing, a collection grows the
// table when more than half of its slots are used (kGrowLoadNumerator /
// kGrowLoadDenominator): to the smallest size, at least twice the old one,
// at which at most half are used, and at most 2^max_table_slots_log2. At
// half load an unsuccessful linear probe reads 2.5 slots on average (Knuth,
// TAOCP vol. 3, 6.4); at 3/4 it reads 8.5, and near full the cost of
// filling a table grows with the square of its size.
//
// Steps (the world stopped, gc_lock held, the compaction and tombstone
// clearing finished: every slot holds its final {hash, addr word}):
//   G1  release the other area (it reads as zeros again) and back the new
//       table's slots there. A refusal (no memory, no disk) skips the growth:
//       the collection still succeeds with the old table.
//   G2  record gc_grow := the new Header::table word, phase := kPhaseGrowing.
//   G3  insert every slot of the old table that holds a value into the new
//       one, by linear probing from hash & (new size - 1), with its addr word
//       unchanged (offset and key tag); tombstones are dropped.
//   G4  Header::table := gc_grow, one release store: the commit point.
//   G5  release the old area; gc_grow := 0.
// The caller then ends the collection (phase idle, epoch even).
//
// Recovery (a collector killed at any instruction, phase kPhaseGrowing):
//   gc_grow == 0            G5 was done (or nothing began): nothing to do.
//   Header::table == gc_grow the flip was made: redo G5.
//   otherwise               the old table is untouched (G3 writes only the
//                           other area): redo G1 (which zeroes a partial
//                           fill), G3, G4, G5.
// Every step can be redone, so a recovery killed in turn is recovered again.
//
// How processes learn the new table: hashtable/store.h, "A growing table".
//
// Memory: O(1); the new table's pages are the only allocation.

#ifndef SHMHEAP_GC_GROW_H_
#define SHMHEAP_GC_GROW_H_

#include <cstdint>

#include "absl/status/status.h"
#include "gc/options.h"
#include "heap/segment.h"

namespace shmheap::internal {

// A table grows when more than this fraction of its slots is used.
inline constexpr uint64_t kGrowLoadNumerator = 1;
inline constexpr uint64_t kGrowLoadDenominator = 2;

// The log2 of the size the table should have with `used` slots in use: the
// current one when at most the growth load is used, else the smallest larger
// one at which it is not, capped at `max_slots_log2`.
uint32_t GrowthTarget(uint64_t used, uint32_t slots_log2,
                      uint32_t max_slots_log2);

// Whether the table is loaded past the growth load and below its maximum,
// by the counters (exact with the world stopped and no unclean exit;
// otherwise an estimate, good enough to decide whether to collect). Any
// process, at any time.
bool TableWantsGrowth(const Segment& segment);

// G1..G5 above, or the recovery of a dead collector's growth when the phase
// is kPhaseGrowing. Leaves the phase at kPhaseGrowing when it grew the
// table (the caller ends the collection) and untouched when it did not.
// Fills report.table_slots_before and table_slots_after.
// REQUIRES: this process holds gc_lock; the world is stopped; the
// compaction is finished (after ClearTombstones), or phase is
// kPhaseGrowing. Errors: kDataLoss when the growth record is inconsistent
// (the message says how; the caller marks the heap damaged).
absl::Status GrowTable(const Segment& segment, GcReport& report);

}  // namespace shmheap::internal

#endif  // SHMHEAP_GC_GROW_H_
