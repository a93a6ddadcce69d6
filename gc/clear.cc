#include "gc/clear.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "gc/world.h"
#include "hashtable/deps.h"
#include "heap/testing_hooks.h"

namespace shmheap::internal {

absl::Status RunClearing(const Segment& segment, GcReport& report) {
  Header& h = segment.header();
  const uint64_t old_top = h.gc_old_top.load(kStopped);
  const uint64_t keep_end = h.gc_keep_end.load(kStopped);
  // A resumed clear's record comes from a file nobody verified: a range
  // past the backing object's end would make the zeroing fault (SIGBUS).
  // If the size cannot be read, the world stays stopped with the phase
  // set and only the lock is handed back: the next entrant tries again
  // (CheckCollectorAlive), and nobody enters a half-cleared heap.
  absl::StatusOr<uint64_t> backed = segment.BackedBytes();
  if (!backed.ok()) {
    // Release: the next process that takes the lock sees our writes.
    h.gc_lock.store(0, std::memory_order_release);
    return backed.status();
  }
  if (old_top < h.heap_start || old_top > h.heap_limit || old_top > *backed ||
      old_top % 8 || keep_end < h.heap_start || keep_end > old_top ||
      (keep_end < old_top && keep_end % kPageSize)) {
    return Damaged(segment, absl::StrCat("recorded clear of [", h.heap_start,
                                         ", ", old_top, ") keeping up to ",
                                         keep_end, " is outside the heap's ",
                                         *backed, " backed bytes"));
  }
  report.bytes_before = old_top - h.heap_start;
  report.bytes_after = 0;
  report.live_blobs = 0;
  // K1. Empty slots, not tombstones: nothing is left to probe past.
  Slot* slots = segment.slots();
  const uint64_t n = uint64_t{1} << segment.table_slots_log2();
  report.table_slots_before = report.table_slots_after = n;
  for (uint64_t i = 0; i < n; ++i) {
    slots[i].addr.store(0, kSlotStore);
    slots[i].hash.store(0, kSlotStore);
    if ((i + 1) % kClearSlotsPerHook == 0) {
      RunTestingHook(TestingPoint::kClearSlotsZeroed);
    }
  }
  // K2. Relaxed: the world is stopped; sessions read their entry in scope,
  // after the seq_cst epoch store that reopens the world.
  SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    reg[i].claim_end.store(0, kStopped);
    reg[i].claim_start.store(0, kStopped);
    reg[i].chunk_end.store(0, kStopped);
    reg[i].chunk_start.store(0, kStopped);
    reg[i].committed.store(0, kStopped);
  }
  // K3. Release: as the collector's store of the new top; the zeroing
  // below reads the old top from the record, never from top.
  h.top.store(h.heap_start, std::memory_order_release);
  RunTestingHook(TestingPoint::kClearTopReset);
  ZeroFreedRange(segment, h.heap_start, keep_end, old_top, report);
  // Relaxed: read by sessions in scope, after the world reopens (seq_cst).
  h.reuse_end.store(keep_end, std::memory_order_relaxed);
  // K4. Every slot 0 again (nothing when the heap has no table).
  ResetDepTable(segment);
  // K5.
  RecountAndFreeDeadSessions(segment, 0, 0, 0);
  RunTestingHook(TestingPoint::kClearFinished);
  // seq_cst: the phase is what a recovering process reads first.
  h.phase.store(kPhaseIdle, std::memory_order_seq_cst);
  OpenWorld(h);
  return absl::OkStatus();
}

absl::StatusOr<GcReport> Clear(const Segment& segment, LocalSession* self,
                               const CollectOptions& options) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + options.deadline;
  Header& h = segment.header();
  if (absl::Status s = CheckNotPinned(segment, self, "Clear"); !s.ok()) {
    return s;
  }
  // A collection (or Clear) that ran while we waited does not clear the
  // heap: wait for it, then take the lock ourselves.
  for (;;) {
    absl::StatusOr<bool> locked = LockCollector(segment, deadline);
    if (!locked.ok()) return locked.status();
    if (*locked) break;
  }
  if (absl::Status s = StopWorld(segment, deadline, options.deadline);
      !s.ok()) {
    return s;
  }
  // Before anything changes: a heap whose size cannot be read is left as
  // it is (RunClearing checks the record against it).
  if (absl::StatusOr<uint64_t> backed = segment.BackedBytes(); !backed.ok()) {
    OpenWorld(h);
    return backed.status();
  }
  GcReport report;
  report.ran = true;
  report.handshake_seconds =
      std::chrono::duration<double>(Clock::now() - t0).count();
  // K0. The record first, then the phase that makes it count.
  const uint64_t old_top = h.top.load(kStopped);
  h.gc_old_top.store(old_top, kRecord);
  h.gc_keep_end.store(KeepEnd(h, old_top, h.heap_start, &options), kRecord);
  // seq_cst: the phase is what a recovering process reads first.
  h.phase.store(kPhaseClearing, std::memory_order_seq_cst);
  if (absl::Status s = RunClearing(segment, report); !s.ok()) return s;
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return report;
}

}  // namespace shmheap::internal
