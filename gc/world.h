// The stop-the-world steps that every world-stopping operation of gc/
// shares: the collection (gc/collector.h) and Clear (gc/clear.h). They take
// Header::gc_lock, stop the world with the handshake of heap/session.h,
// reopen it, and restart the counters; the essay in gc/collector.h says why
// each is done the way it is.
//
// Memory orders used by every world-stopping phase (the world is stopped,
// I3 of gc/collector.h):
//   kSlotStore  every store to a table slot is a release store: Contains
//               outside any scope reads the table as a seqlock under the gc
//               epoch (hashtable/store.h), and a probe that reads such a
//               store (acquire) then also sees the odd epoch, stored before
//               it, when it re-loads the epoch. On x86 a release store is a
//               plain store. (A release fence after the epoch store would do
//               the same; GCC refuses fences under ThreadSanitizer.)
//   kRecord     stores to the progress record (Header::gc_*) are release
//               stores too: the compiler may not sink an earlier write below
//               the record that says it is done.
//   kStopped    relaxed loads everywhere else: the world is stopped, and a
//               recovering process took gc_lock from the dead collector with
//               acq_rel.

#ifndef SHMHEAP_GC_WORLD_H_
#define SHMHEAP_GC_WORLD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gc/options.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/session.h"

namespace shmheap::internal {

using Clock = std::chrono::steady_clock;

inline constexpr std::memory_order kSlotStore = std::memory_order_release;
inline constexpr std::memory_order kRecord = std::memory_order_release;
inline constexpr std::memory_order kStopped = std::memory_order_relaxed;

// kFailedPrecondition when `self` (the caller's session, or null) holds a
// pin: stopping the world would wait for itself. `what` names the caller
// ("Collect", "Clear") in the message.
absl::Status CheckNotPinned(const Segment& segment, const LocalSession* self,
                            const char* what);

// Takes gc_lock. Returns true when this process holds it; false when
// another collection ran meanwhile (it waited for it to finish).
// Errors: kDeadlineExceeded when the running one does not finish by
// `deadline`; CheckCollectorAlive's kDataLoss.
absl::StatusOr<bool> LockCollector(const Segment& segment,
                                   Clock::time_point deadline);

// H: makes the epoch odd and waits until every live session is out of
// scope. At the deadline, reopens the world and releases gc_lock:
// kDeadlineExceeded, nothing changed (`budget` is the deadline's length,
// for the message). REQUIRES: this process holds gc_lock.
absl::Status StopWorld(const Segment& segment, Clock::time_point deadline,
                       std::chrono::milliseconds budget);

// E: makes the epoch even and wakes waiting sessions, then releases the
// lock. REQUIRES: the caller holds gc_lock.
void OpenWorld(Header& h);

// Marks the heap damaged (kPhaseDamaged), reopens the world and returns the
// kDataLoss that says what (`what`) was found. REQUIRES: gc_lock held.
absl::Status Damaged(const Segment& segment, const std::string& what);

// With the world stopped: the counters restart from the exact figures (a
// process killed between a table CAS and its counter update left them off
// by that operation), and the entries of dead processes are freed (their
// chunks are closed and their claims resolved). REQUIRES: world stopped.
void RecountAndFreeDeadSessions(const Segment& segment, uint64_t live_blobs,
                                uint64_t live_bytes, uint64_t used_bytes);

// Where the pages kept for reuse end for a new top `top`, when the heap
// ended at `old_top`: the slack (`options`' reuse_slack_bytes; the
// automatic one when `options` is null, as for a collection rolled forward
// by another process) past it, rounded up to a page, and never past the old
// top (nothing above it was freed).
uint64_t KeepEnd(const Header& h, uint64_t old_top, uint64_t top,
                 const CollectOptions* options);

// Makes everything in [top, old_top) read as zero again: [top, keep_end)
// is zeroed by hand and stays backed; the whole pages above go back to the
// OS (any range the OS refuses to release is zeroed by hand too). Fills
// report.bytes_kept and bytes_released. Redoable. REQUIRES: world stopped,
// heap_start <= top <= keep_end <= old_top <= the backed bytes.
void ZeroFreedRange(const Segment& segment, uint64_t top, uint64_t keep_end,
                    uint64_t old_top, GcReport& report);

}  // namespace shmheap::internal

#endif  // SHMHEAP_GC_WORLD_H_
