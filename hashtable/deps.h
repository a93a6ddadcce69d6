// DepTable: the dependency table, a lock-free multimap of 31-bit keys to
// sets of 31-bit values in the segment (hh_shared's deptbl: hh_add_dep,
// hh_get_dep), the graph that incremental rechecks walk.
//
// Layout. 2^Header::dep_slots_log2 slots of one 64-bit word each at
// Header::dep_offset (heap/layout.h), between table area 1 and heap_start,
// backed in full when the heap is created; it never grows and never moves
// (the collector compacts the heap range only). One slot holds one edge:
//
//   bit  63      occupied (1 in every non-empty slot)
//   bit  62      removed  (RemoveDeps set it; the edge no longer counts)
//   bits 31..61  key
//   bits  0..30  value
//
// and 0 is an empty slot. So keys and values are below 2^31, and every
// non-empty word has bit 63 set: a word without it is corruption.
//
// Probing. Open addressing with linear probing from the home slot of the
// key alone (XXH3-64 of its 4 bytes with the heap's seed, masked), so that
// all of a key's edges lie on one probe run: Get scans from the home until
// an empty slot, collecting the live edges of the key. A slot goes from 0 to
// an edge exactly once (by CAS) and is never emptied, except by
// ResetDepTable with the world stopped, so a run never breaks. Add scans the
// same run: a live equal edge means the edge is there (false); the first
// empty slot is claimed by CAS 0 -> edge (true); a lost CAS re-reads that
// slot and goes on. Two adders of one edge walk the same run and meet at the
// same first empty slot, so an edge is stored once however many processes
// add it at once. Every probe is bounded by the table's size: a table with
// no empty slot on the run is kResourceExhausted, never an endless probe.
//
// Removal. Remove sets the removed bit of every live edge of the key (by
// CAS). A removed edge keeps its slot: Get skips it, Add neither reuses it
// nor counts it as present (re-adding the edge claims a new slot further
// along the run). Removed edges take their slots until the table is reset
// (ResetDepTable, which a whole-heap clear calls with the world stopped).
//
// Memory ordering. An edge is a publication: a process that reads edge
// (k, v) may rely on what the adder wrote before adding it (say, the value
// it published under v), so the claim CAS is a release (acq_rel, its
// failure acquire, so the word it re-reads is the winner's) and every read
// of a slot is an acquire. The removed bit is set with the same orders.
//
// Scopes. The Heap calls these inside the process's scope (Heap::AddDep and
// the rest enter it). The table never moves, so no read needs the scope to
// stay valid; the scope is what orders an operation against a collection
// that stops the world and resets the table: an Add either lands before
// the reset (and is zeroed with the rest) or after it (and stays), never
// half in between.
//
// Concurrency contract (any processes, any threads):
//
//   | racing ops        | outcome                                          |
//   |-------------------|--------------------------------------------------|
//   | add / add, same   | stored once: one returns true, the others false  |
//   |  edge             |                                                  |
//   | add / add, other  | both stored (each claims its own slot)           |
//   |  edges            |                                                  |
//   | add / get         | get sees the edge or not; never a torn word      |
//   | remove / add,     | the edge is removed, or stays (added after the   |
//   |  same key         | remove passed its slot): either order            |
//   | remove / remove   | each edge is counted removed by exactly one      |
//   | remove / get      | get sees the edge or not                         |
//   | any / reset       | never: the reset runs with the world stopped     |
//
// Crash safety: a process killed inside Add has either stored its edge
// whole (the CAS is the only write) or not at all; nothing else changes, so
// the table stays consistent. Statistics are counted by a scan (Count), so
// a crash cannot make them drift.
//
// Thread safety: a DepTable is a view over shared slots; its methods may
// run concurrently from any thread of any process that maps the segment.

#ifndef SHMHEAP_HASHTABLE_DEPS_H_
#define SHMHEAP_HASHTABLE_DEPS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "heap/segment.h"

namespace shmheap::internal {

// Keys and values are below 2^31 (hh_shared's 31-bit ints).
inline constexpr uint32_t kDepIdLimit = uint32_t{1} << 31;
inline constexpr uint64_t kDepOccupied = uint64_t{1} << 63;
inline constexpr uint64_t kDepRemoved = uint64_t{1} << 62;
inline constexpr int kDepKeyShift = 31;

// The word of edge (key, value), live. REQUIRES: both below kDepIdLimit.
constexpr uint64_t DepWord(uint32_t key, uint32_t value) {
  return kDepOccupied | uint64_t{key} << kDepKeyShift | value;
}
constexpr uint32_t DepKey(uint64_t word) {
  return static_cast<uint32_t>(word >> kDepKeyShift) & (kDepIdLimit - 1);
}
constexpr uint32_t DepValue(uint64_t word) {
  return static_cast<uint32_t>(word) & (kDepIdLimit - 1);
}
static_assert(DepKey(DepWord(kDepIdLimit - 1, 0)) == kDepIdLimit - 1 &&
                  DepValue(DepWord(0, kDepIdLimit - 1)) == kDepIdLimit - 1 &&
                  (DepWord(kDepIdLimit - 1, kDepIdLimit - 1) & kDepRemoved) ==
                      0,
              "key and value fill bits 0..61 without touching the flags");
static_assert(sizeof(std::atomic<uint64_t>) == 8 &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "one lock-free 8-byte word per slot (DepAreaBytes counts 8)");

// kInvalidArgument naming `what` ("key", "value") when `id` is not below
// 2^31.
absl::Status CheckDepId(const char* what, uint32_t id);

class DepTable {
 public:
  // The dependency table of `segment`. kFailedPrecondition when the heap
  // has none (created with dep_table_slots_log2 = 0, or by a build that
  // predates the table).
  static absl::StatusOr<DepTable> Of(const Segment& segment);

  uint64_t capacity() const { return mask_ + 1; }
  // Where the probe run of `key` starts.
  uint64_t Home(uint32_t key) const;

  // Adds edge (key, value): true when this call stored it, false when it
  // was there (live) already. kResourceExhausted "dependency table full"
  // when the key's probe run meets no empty slot in the whole table.
  // REQUIRES: key and value below 2^31.
  absl::StatusOr<bool> Add(uint32_t key, uint32_t value) const;
  // Appends every live value of `key` to `out`, in table order (each once).
  void Get(uint32_t key, std::vector<uint32_t>* out) const;
  // Marks every live edge of `key` removed; returns how many this call
  // marked.
  size_t Remove(uint32_t key) const;

  struct Counts {
    uint64_t used = 0;     // non-empty slots, removed edges included
    uint64_t removed = 0;  // slots of removed edges
  };
  // A scan of the whole table (8 bytes a slot).
  Counts Count() const;

  // The Verify of the table: every non-empty word has the occupied bit,
  // every edge is reachable from its key's home without crossing an empty
  // slot, and no live edge is stored twice. kDataLoss naming the slot, its
  // offset and what is wrong. Run it while no process adds or removes.
  absl::Status Check() const;

 private:
  DepTable(const Segment& segment, std::atomic<uint64_t>* slots,
           uint32_t slots_log2)
      : segment_(&segment),
        slots_(slots),
        mask_((uint64_t{1} << slots_log2) - 1),
        seed_(segment.header().seed) {}

  const Segment* segment_;
  std::atomic<uint64_t>* slots_;
  uint64_t mask_;
  uint64_t seed_;
};

// Empties the dependency table of `segment` (nothing when it has none), for
// a whole-heap clear. REQUIRES: the world is stopped (the caller holds
// gc_lock and no process is in scope), so no Add or Get runs meanwhile.
void ResetDepTable(const Segment& segment);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HASHTABLE_DEPS_H_
