#include "gc/grow.h"

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "heap/layout.h"
#include "heap/session.h"
#include "heap/testing_hooks.h"

namespace shmheap::internal {
namespace {

// Relaxed loads and stores of slots and the record's reads: the world is
// stopped (no process is in scope), and the new area is read by nobody
// before the release store of Header::table publishes it.
constexpr std::memory_order kStopped = std::memory_order_relaxed;
// The record and the flip are release stores: no earlier write of the
// growth may be made after the store that says it is done (for a process
// killed between them, and for the seqlock read of Contains, which loads
// Header::table with acquire: hashtable/store.h).
constexpr std::memory_order kRecord = std::memory_order_release;

uint64_t Slots(uint32_t log2) { return uint64_t{1} << log2; }

// G1: the other area, released (zeros) and backed for 2^log2 slots.
// False when the OS refuses the memory or the disk.
bool PrepareArea(const Segment& segment, uint32_t area, uint32_t log2) {
  const Header& h = segment.header();
  const uint64_t offset = segment.table_area_offset(area);
  const uint64_t bytes = Slots(log2) * sizeof(Slot);
  const bool released =
      segment.Release(offset, TableAreaBytes(h.max_table_slots_log2)).ok();
  if (!segment.Back(offset, bytes).ok()) {
    // Give back whatever a partial fallocate took.
    segment.Release(offset, bytes).IgnoreError();
    return false;
  }
  // Where the OS cannot punch holes, zero the slots by hand: a killed
  // growth may have left a partial fill there.
  if (!released) std::memset(segment.base() + offset, 0, bytes);
  return true;
}

// G3: every slot of `from` with a value, into the empty table `to`.
void Rehash(const Slot* from, uint32_t from_log2, Slot* to, uint32_t to_log2) {
  const uint64_t mask = Slots(to_log2) - 1;
  for (uint64_t i = 0; i < Slots(from_log2); ++i) {
    const uint64_t hash = from[i].hash.load(kStopped);
    const uint64_t word = from[i].addr.load(kStopped);
    if (hash == 0 || word == 0) continue;  // empty, or a tombstone
    uint64_t j = hash & mask;
    while (to[j].hash.load(kStopped) != 0) j = (j + 1) & mask;
    to[j].hash.store(hash, kStopped);
    to[j].addr.store(word, kStopped);
    RunTestingHook(TestingPoint::kGcGrewSlot);
  }
}

// G3..G5 for the growth recorded in gc_grow, from an old table `old`.
void Install(const Segment& segment, uint64_t old, uint64_t grown) {
  Header& h = segment.header();
  const uint64_t old_area = segment.table_area_offset(TableArea(old));
  const uint64_t new_area = segment.table_area_offset(TableArea(grown));
  if (h.table.load(kStopped) != grown) {
    Rehash(reinterpret_cast<const Slot*>(segment.base() + old_area),
           TableSlotsLog2(old),
           reinterpret_cast<Slot*>(segment.base() + new_area),
           TableSlotsLog2(grown));
    // G4, the commit point. Release: every slot written above is made
    // before it (a killed process leaves its stores in program order).
    h.table.store(grown, kRecord);
  }
  RunTestingHook(TestingPoint::kGcGrowInstalled);
  // G5. A failed release leaves stale slots in an area nobody reads; the
  // next growth into it releases or zeroes it first (PrepareArea).
  segment.Release(old_area, TableAreaBytes(h.max_table_slots_log2))
      .IgnoreError();
  h.gc_grow.store(0, kRecord);
}

}  // namespace

uint32_t GrowthTarget(uint64_t used, uint32_t slots_log2,
                      uint32_t max_slots_log2) {
  uint32_t log2 = slots_log2;
  while (log2 < max_slots_log2 &&
         used * kGrowLoadDenominator > Slots(log2) * kGrowLoadNumerator) {
    ++log2;
  }
  return log2;
}

bool TableWantsGrowth(const Segment& segment) {
  uint64_t c[kNumCounters];
  SumCounters(segment, c);
  const uint64_t used = c[kSlotsClaimed] - c[kTombstonesCleared];
  // Relaxed: an estimate; the collection decides from the table itself.
  const uint32_t log2 =
      TableSlotsLog2(segment.header().table.load(std::memory_order_relaxed));
  return GrowthTarget(used, log2, segment.header().max_table_slots_log2) > log2;
}

absl::Status GrowTable(const Segment& segment, GcReport& report) {
  Header& h = segment.header();
  const uint64_t live = h.table.load(kStopped);
  const uint32_t max = h.max_table_slots_log2;
  report.table_slots_before = report.table_slots_after =
      Slots(TableSlotsLog2(live));
  if (h.phase.load(kStopped) == kPhaseGrowing) {
    // Recovery of a dead collector's growth (see the header).
    const uint64_t grown = h.gc_grow.load(kStopped);
    if (grown == 0) return absl::OkStatus();
    const bool flipped = live == grown;
    if (TableArea(grown) > 1 || TableSlotsLog2(grown) > max ||
        TableSlotsLog2(grown) < kMinTableSlotsLog2 ||
        (!flipped && (TableArea(grown) == TableArea(live) ||
                      TableSlotsLog2(grown) <= TableSlotsLog2(live)))) {
      return absl::DataLossError(absl::StrCat(
          "recorded table growth to 2^", TableSlotsLog2(grown), " in area ",
          TableArea(grown), " is inconsistent with the live table 2^",
          TableSlotsLog2(live), " in area ", TableArea(live)));
    }
    if (flipped) {
      // The old table was in the other area; its size is not needed.
      Install(segment, TableWord(TableArea(grown) ^ 1, 0), grown);
    } else {
      if (!PrepareArea(segment, TableArea(grown), TableSlotsLog2(grown))) {
        // The old table is whole: give the growth up.
        h.gc_grow.store(0, kRecord);
        return absl::OkStatus();
      }
      Install(segment, live, grown);
    }
    report.table_slots_after = Slots(TableSlotsLog2(grown));
    return absl::OkStatus();
  }
  uint64_t used = 0;
  const Slot* slots = segment.slots();
  for (uint64_t i = 0; i < Slots(TableSlotsLog2(live)); ++i) {
    used += slots[i].hash.load(kStopped) != 0;
  }
  const uint32_t target = GrowthTarget(used, TableSlotsLog2(live), max);
  if (target == TableSlotsLog2(live)) return absl::OkStatus();
  const uint64_t grown = TableWord(TableArea(live) ^ 1, target);
  if (!PrepareArea(segment, TableArea(grown), target)) {
    return absl::OkStatus();
  }
  // G2. The record first, then the phase: a death in between leaves the
  // collection's finishing phase, whose recovery redoes the finish (every
  // step of which can be redone) and then this growth from its start.
  h.gc_grow.store(grown, kRecord);
  // seq_cst: the phase is what a recovering process reads first.
  h.phase.store(kPhaseGrowing, std::memory_order_seq_cst);
  RunTestingHook(TestingPoint::kGcGrowBegun);
  Install(segment, live, grown);
  report.table_slots_after = Slots(target);
  return absl::OkStatus();
}

}  // namespace shmheap::internal
