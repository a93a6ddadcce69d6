#include "gc/world.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "heap/blob.h"

namespace shmheap::internal {
namespace {

// Whether every session of a live process is out of scope.
bool Quiescent(const Segment& segment) {
  const Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    // seq_cst: the collector's half of the Dekker handshake (its epoch store
    // precedes these loads in the single total order).
    if (reg[i].pinned.load(std::memory_order_seq_cst) == 0) continue;
    // Acquire: the identity was stored before pinned was set.
    const uint64_t owner = reg[i].owner_pid.load(std::memory_order_acquire);
    if (!OwnerAlive(reg[i], owner)) continue;  // free, or died in scope
    return false;
  }
  return true;
}

}  // namespace

absl::Status CheckNotPinned(const Segment& segment, const LocalSession* self,
                            const char* what) {
  if (self == nullptr || !self->pinned()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      segment.Describe(), ": ", what,
      " called while this process holds a view, a Pin or a ReadScope; it "
      "would wait for itself"));
}

void OpenWorld(Header& h) {
  const uint32_t epoch = h.gc_epoch.load(kStopped);
  // seq_cst: sessions read the epoch with seq_cst (Dekker); everything the
  // collector wrote happens before this store.
  if (epoch & 1) h.gc_epoch.store(epoch + 1, std::memory_order_seq_cst);
  FutexWakeAll(&h.gc_epoch);
  // Release: the next collector that takes the lock sees our writes.
  h.gc_lock.store(0, std::memory_order_release);
}

absl::Status Damaged(const Segment& segment, const std::string& what) {
  Header& h = segment.header();
  // seq_cst: sessions check the phase right after pinning.
  h.phase.store(kPhaseDamaged, std::memory_order_seq_cst);
  OpenWorld(h);
  return absl::DataLossError(
      absl::StrCat(segment.Describe(), ": ", what, "; collection abandoned"));
}

// No table scan: once every tombstone is cleared (a slot with a hash and no
// blob, including an add whose process died before publishing), the used
// slots are exactly the live blobs, which the caller passes in.
void RecountAndFreeDeadSessions(const Segment& segment, uint64_t live_blobs,
                                uint64_t live_bytes, uint64_t used_bytes) {
  Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  uint64_t exact[kNumCounters] = {};
  exact[kSlotsClaimed] = live_blobs;
  exact[kBlobsPublished] = live_blobs;
  exact[kBytesPublished] = live_bytes;
  exact[kBytesAllocated] = used_bytes;
  // Relaxed: statistics; reopening the world publishes them.
  for (int c = 0; c < kNumCounters; ++c) {
    h.retired_counters[c].store(exact[c], std::memory_order_relaxed);
  }
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    for (int c = 0; c < kNumCounters; ++c) {
      reg[i].counters[c].store(0, std::memory_order_relaxed);
    }
    // Acquire: pairs with the owner's release store of its pid.
    uint64_t owner = reg[i].owner_pid.load(std::memory_order_acquire);
    if (owner != kSessionFree && !OwnerAlive(reg[i], owner)) {
      // A process killed while it waited for a key: its waits leave
      // Header::waiters with its entry.
      DropWaits(segment, reg[i]);
      // acq_rel: a joiner racing to take this dead entry either wins (and
      // finds it closed) or sees it free; release publishes the cleanup.
      reg[i].owner_pid.compare_exchange_strong(owner, kSessionFree,
                                               std::memory_order_acq_rel);
    }
  }
  h.unclean_exits.store(0, std::memory_order_relaxed);
}

absl::StatusOr<bool> LockCollector(const Segment& segment,
                                   Clock::time_point deadline) {
  Header& h = segment.header();
  const uint32_t me = static_cast<uint32_t>(getpid());
  for (;;) {
    if (absl::Status s = CheckCollectorAlive(segment); !s.ok()) return s;
    uint32_t expected = 0;
    // acq_rel: taking the lock orders us after the previous collector.
    if (h.gc_lock.compare_exchange_strong(expected, me,
                                          std::memory_order_acq_rel)) {
      return true;
    }
    // Another collection runs; wait for it, then report that it ran.
    const uint64_t done = h.collections.load(std::memory_order_acquire);
    while (h.gc_lock.load(std::memory_order_acquire) != 0 &&
           h.collections.load(std::memory_order_acquire) == done) {
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(segment.Describe(), ": another collection (pid ",
                         h.gc_lock.load(std::memory_order_relaxed),
                         ") did not finish within the deadline"));
      }
      if (absl::Status s = CheckCollectorAlive(segment); !s.ok()) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
}

absl::Status StopWorld(const Segment& segment, Clock::time_point deadline,
                       std::chrono::milliseconds budget) {
  Header& h = segment.header();
  const uint32_t epoch = h.gc_epoch.load(std::memory_order_relaxed) | 1;
  // seq_cst: the collector's half of the Dekker handshake.
  h.gc_epoch.store(epoch, std::memory_order_seq_cst);
  auto sleep = std::chrono::microseconds(20);
  while (!Quiescent(segment)) {
    if (Clock::now() > deadline) {
      OpenWorld(h);
      return absl::DeadlineExceededError(absl::StrCat(
          segment.Describe(),
          ": a live process stayed in scope (holds a view, a Pin or a "
          "ReadScope) for the whole deadline of ",
          budget.count(), " ms; nothing was collected"));
    }
    std::this_thread::sleep_for(sleep);
    if (sleep < std::chrono::milliseconds(2)) sleep *= 2;
  }
  return absl::OkStatus();
}

uint64_t KeepEnd(const Header& h, uint64_t old_top, uint64_t top,
                 const CollectOptions* options) {
  uint64_t slack = options != nullptr ? options->reuse_slack_bytes
                                      : CollectOptions::kAutoReuseSlack;
  if (slack == CollectOptions::kAutoReuseSlack) {
    slack =
        std::max((top - h.heap_start) / 4, CollectOptions::kMinAutoReuseSlack);
  }
  slack = std::min(slack, old_top - top);
  return std::min(old_top, AlignUp(top + slack, kPageSize));
}

void ZeroFreedRange(const Segment& segment, uint64_t top, uint64_t keep_end,
                    uint64_t old_top, GcReport& report) {
  std::byte* base = segment.base();
  std::memset(base + top, 0, keep_end - top);
  report.bytes_kept = keep_end - top;
  report.bytes_released = 0;
  if (old_top > keep_end) {
    const uint64_t release_bytes = AlignUp(old_top, kPageSize) - keep_end;
    if (segment.Release(keep_end, release_bytes).ok()) {
      report.bytes_released = old_top - keep_end;
    } else {
      std::memset(base + keep_end, 0, old_top - keep_end);
      report.bytes_kept = old_top - top;
    }
  }
}

}  // namespace shmheap::internal
