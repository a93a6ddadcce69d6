// Sessions: a process's membership in a segment, its scope, and its chunk.
//
// Every process that uses a segment holds one registry entry (SessionEntry in
// heap/layout.h). The entry records who owns it (pid and start time, so a
// dead owner is recognised even after its pid is reused), whether the
// session is inside a scope (pinned), and its allocation chunk.
//
// Scope (the stop-the-world handshake, with gc/):
//   Session:   pinned := 1 (seq_cst); e := gc_epoch (seq_cst);
//              if e is odd or changed: pinned := 0 and wait for an even epoch
//   Collector: gc_epoch := odd (seq_cst); wait until every live session
//              reads pinned == 0 (seq_cst)
// Both sides store then load with seq_cst (Dekker's pattern), so at least one
// of them sees the other: a collector never moves data under a pinned
// session, and a session never enters while a collection runs. The first pin
// of a process pays one seq_cst store and one load on its own cache line;
// further pins only touch a process-local counter.
//
// Allocation: each session owns a chunk [chunk_start, chunk_end) taken from
// Header::top by one CAS (a CAS rather than fetch_add so that top never
// passes heap_limit). Inside it, blobs are bump-allocated under a
// process-local mutex (threads of one process share the session). A blob's
// header word is written before `committed` is advanced with a release
// store, so [chunk_start, committed) always parses; a retired chunk's tail is
// closed with a filler. A process that dies leaves [committed, chunk_end)
// unparsed, which the registry bounds and a later joiner or the collector
// closes with a filler. The chunk claim itself is recorded in the entry
// (claim_start, claim_end) before the CAS on top, so a process that dies
// between the CAS and recording the chunk leaves a range the walker and the
// collector recognise (heap/walk.h, ClaimedGapEnd); such an entry is not
// reused until a collection has resolved the claim.
//
// Thread safety: all methods may be called from any thread of the owning
// process. A LocalSession does not survive fork: the child joins anew.

#ifndef SHMHEAP_HEAP_SESSION_H_
#define SHMHEAP_HEAP_SESSION_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "heap/layout.h"
#include "heap/pin.h"
#include "heap/segment.h"

namespace shmheap::internal {

// Start time of process `pid` (/proc/PID/stat field 22), 0 if unreadable.
uint64_t ProcessStartTime(pid_t pid);
// Whether the process that registered as (pid, start_time) still runs.
// Zombies count as dead. When /proc cannot tell, assumes alive.
bool ProcessAlive(pid_t pid, uint64_t start_time);

// Whether the process that holds entry `e` (owner word `owner`, as loaded
// with acquire) still runs. A free entry is not alive; an entry being
// claimed is alive while its claimer is.
bool OwnerAlive(const SessionEntry& e, uint64_t owner);

// Blocks while *word == value, for at most timeout_ms (shared futex).
void FutexWait(std::atomic<uint32_t>* word, uint32_t value, int timeout_ms);
void FutexWakeAll(std::atomic<uint32_t>* word);

// Increments in every child after fork (pthread_atfork); a Heap compares it
// with the value it joined under to notice that it now runs in a child.
uint64_t ForkGeneration();

class LocalSession final : public PinTarget {
 public:
  // Joins `segment` as this process: takes a free registry entry, or one
  // whose owner died (closing its chunk and folding its counters).
  // kResourceExhausted when max_sessions live processes hold entries.
  static absl::StatusOr<std::unique_ptr<LocalSession>> Join(
      const Segment* segment);
  // Leaves: closes the chunk, folds the counters, frees the entry.
  ~LocalSession();

  // Enters the scope: the returned Pin keeps collections out until it and
  // every copy of it die. Waits while a collection runs. kDataLoss when a
  // collector died while compacting.
  absl::StatusOr<Pin> Enter();
  bool pinned() const { return pins_.load(std::memory_order_acquire) > 0; }

  // Reserves `bytes` (a multiple of 8) at a multiple of `align` (8..64) in
  // this session's chunk, taking a new chunk when needed, and writes
  // `header_word` at its start. REQUIRES: pinned(). kResourceExhausted when
  // the heap or its backing store is full.
  absl::StatusOr<uint64_t> Allocate(uint64_t header_word, uint64_t bytes,
                                    uint64_t align);

  // Adds to one of this session's counters.
  void Count(Counter c, uint64_t delta) {
    // Relaxed: counters are statistics; only this process writes them.
    entry_->counters[c].fetch_add(delta, std::memory_order_relaxed);
  }

  const Segment& segment() const { return *segment_; }
  SessionEntry& entry() const { return *entry_; }
  int index() const { return index_; }
  uint64_t fork_generation() const { return fork_generation_; }

  // PinTarget.
  void AddPin() noexcept override;
  void DropPin() noexcept override;

 private:
  LocalSession(const Segment* segment, SessionEntry* entry, int index);
  // The shared half of the first pin / the last unpin.
  absl::Status EnterShared();
  void LeaveShared();
  // Closes [committed, chunk_end) with a filler and forgets the chunk.
  // REQUIRES: pinned, or the entry's owner is dead and this process owns it.
  void RetireChunk(SessionEntry& e);

  const Segment* segment_;
  SessionEntry* entry_;
  int index_;
  uint64_t fork_generation_;
  std::atomic<int64_t> pins_{0};
  std::mutex pin_mu_;    // serializes the first pin and the last unpin
  std::mutex alloc_mu_;  // serializes bump allocation in the chunk
};

// Closes an entry's open chunk with a filler, adds the bytes to
// kBytesAllocated in the header's retired counters, and zeroes its chunk.
// Used by the collector and by joiners reclaiming a dead entry.
// REQUIRES: no live process allocates in that entry.
void CloseChunk(const Segment& segment, SessionEntry& e);

// The counters summed over the header and every session entry (relaxed
// loads: statistics, summed without a snapshot). False when a sum passed
// 2^64, which only a corrupt file can make happen; the sums then wrap.
bool SumCounters(const Segment& segment, uint64_t (&sum)[kNumCounters]);

// Completes the collection that a dead collector left in Header::phase
// (gc/collector.h, "Recovery"), then reopens the world and releases
// gc_lock. REQUIRES: the caller holds gc_lock; the world is stopped.
// kDataLoss when the heap turns out damaged.
using CollectionRecovery = absl::Status (*)(const Segment& segment);

// Installs the recovery that CheckCollectorAlive runs. The collector lives
// above this layer (gc/), so the public Heap installs it (shmheap.cc) before
// its first call; without one, a dead collector's heap is kDataLoss.
void SetCollectionRecovery(CollectionRecovery recovery);

// Checks for a collector that died. If it died before it changed anything,
// reopens the world (epoch even); if it died mid-collection, takes gc_lock
// and rolls its collection forward to completion. Returns OK, or kDataLoss
// for a heap that a collection found damaged (Header::phase ==
// kPhaseDamaged), or whose recovery finds it damaged.
absl::Status CheckCollectorAlive(const Segment& segment);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_SESSION_H_
