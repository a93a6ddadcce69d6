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
// Counters (SessionEntry::counters) are statistics with one writer at a
// time and no locked instruction: every update is a relaxed load and a
// relaxed store, made while holding the allocation mutex, which the
// allocation of each blob takes anyway, so one add costs its counters
// nothing beyond the lock it already pays for. Why that is enough:
//   - threads of this process serialize on the mutex (a plain
//     read-modify-write without it would lose one thread's update);
//   - no other process writes this entry while its owner lives: a joiner
//     reclaims it only after the owner died, the collector resets it only
//     with the world stopped, and the owner updates it only in scope
//     (REQUIRES pinned()), so the scope handshake's seq_cst accesses order
//     the owner's updates before or after the collector's stores;
//   - readers (stats, Verify, the collector's NothingToCollect) load each
//     word relaxed: an aligned 64-bit atomic never tears, and a sum taken
//     while writers run may disagree with the table, as before.
// A write may count its outcome ahead (Store::Write counts the publish in
// the same critical section as the allocation, and takes the mutex again
// only to correct it when the publish loses). A process killed in between
// leaves the counters off by its operations in flight, which the unclean
// exit count makes Verify ignore and the collector's recount fixes.
//
// Waiting (Store::WaitFor, hashtable/store.h "Waiting"): a thread waiting
// for a key counts itself in Header::waiters, the word publishers load, and
// in its entry's `waiting`, this session's share of it. A process killed
// while one of its threads waits cannot take itself off; whoever reclaims
// its entry (Join, or the collector freeing dead entries) subtracts the
// entry's share instead (DropWaits), so later publishes stop paying for a
// wake. BeginWait adds to the header first and EndWait subtracts from the
// entry first: a kill between the two leaves the entry's share at most the
// header's true count of this session's waits (one too small), never
// larger, so a reclaim never subtracts a live waiter's count (which would
// let a publisher skip a wake that waiter needs).
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
// State of process `pid` (/proc/PID/stat field 3: 'R', 'S', 'D', 'Z', ...),
// 0 if unreadable. Tests use it to see that a process sleeps.
char ProcessState(pid_t pid);
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

// Changes to a session's counters, gathered over one or more operations and
// applied in one step. A decrease is the two's complement of its size
// (Add(c, -n) with unsigned wrap-around).
struct CounterDeltas {
  uint64_t v[kNumCounters] = {};
  void Add(Counter c, uint64_t delta) { v[c] += delta; }
  bool empty() const {
    for (uint64_t d : v) {
      if (d != 0) return false;
    }
    return true;
  }
};

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

  // The allocation mutex, held for the object's lifetime: allocations and
  // counter updates through it take no further locked instruction, so a
  // batch of writes (Store::AddMany) pays for one lock.
  class Locked {
   public:
    explicit Locked(LocalSession& session)
        : session_(session), lock_(session.alloc_mu_) {}
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;
    // Reserves `bytes` (a multiple of 8) at a multiple of `align` (8..64)
    // in this session's chunk, taking a new chunk when needed, and writes
    // `header_word` at its start. REQUIRES: pinned(). kResourceExhausted
    // when the heap or its backing store is full.
    absl::StatusOr<uint64_t> Allocate(uint64_t header_word, uint64_t bytes,
                                      uint64_t align) {
      return session_.AllocateLocked(header_word, bytes, align);
    }
    // Adds `deltas` to this session's counters. REQUIRES: pinned().
    void Count(const CounterDeltas& deltas) { session_.CountLocked(deltas); }

   private:
    LocalSession& session_;
    std::lock_guard<std::mutex> lock_;
  };

  // Allocate under a lock of its own (see Locked::Allocate), adding
  // `deltas` to the counters in the same critical section on success.
  absl::StatusOr<uint64_t> Allocate(uint64_t header_word, uint64_t bytes,
                                    uint64_t align,
                                    const CounterDeltas& deltas = {}) {
    Locked locked(*this);
    absl::StatusOr<uint64_t> offset =
        locked.Allocate(header_word, bytes, align);
    if (offset.ok()) locked.Count(deltas);
    return offset;
  }

  // Adds `deltas` to this session's counters (takes the allocation mutex).
  // REQUIRES: pinned().
  void Count(const CounterDeltas& deltas) {
    if (deltas.empty()) return;
    Locked locked(*this);
    locked.Count(deltas);
  }

  // Counts the calling thread as waiting for a key, and takes it off again
  // (see "Waiting" above). BeginWait's increment of Header::waiters is
  // seq_cst: it is the waiter's half of the pairing with publishers that
  // hashtable/store.h, "Waiting", spells out. REQUIRES: each BeginWait is
  // followed by one EndWait on the same thread, before this session dies.
  void BeginWait();
  void EndWait();

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
  absl::StatusOr<uint64_t> AllocateLocked(uint64_t header_word, uint64_t bytes,
                                          uint64_t align);
  // REQUIRES: alloc_mu_ held, pinned().
  void CountLocked(Counter c, uint64_t delta) {
    // Relaxed load and store, no locked instruction: alloc_mu_ makes this
    // thread the entry's only writer (see the top of this file); readers
    // only sum the words. Unsigned wrap-around makes a negative delta (a
    // correction) exact.
    std::atomic<uint64_t>& word = entry_->counters[c];
    word.store(word.load(std::memory_order_relaxed) + delta,
               std::memory_order_relaxed);
  }
  void CountLocked(const CounterDeltas& deltas) {
    for (int c = 0; c < kNumCounters; ++c) {
      if (deltas.v[c] != 0) CountLocked(static_cast<Counter>(c), deltas.v[c]);
    }
  }
  // Closes [committed, chunk_end) with a filler and forgets the chunk.
  // REQUIRES: pinned, or the entry's owner is dead and this process owns it.
  void RetireChunk(SessionEntry& e);

  const Segment* segment_;
  SessionEntry* entry_;
  int index_;
  uint64_t fork_generation_;
  std::atomic<int64_t> pins_{0};
  std::mutex pin_mu_;  // serializes the first pin and the last unpin
  // Serializes bump allocation in the chunk and every counter update.
  std::mutex alloc_mu_;
};

// Closes an entry's open chunk with a filler, adds the bytes to
// kBytesAllocated in the header's retired counters, and zeroes its chunk.
// Used by the collector and by joiners reclaiming a dead entry.
// REQUIRES: no live process allocates in that entry.
void CloseChunk(const Segment& segment, SessionEntry& e);

// Subtracts entry `e`'s share of Header::waiters (SessionEntry::waiting)
// and zeroes it: the waits of a dead owner, or of a free entry (none, but
// a file from elsewhere may say otherwise). Never takes Header::waiters
// below 0. REQUIRES: `e`'s owner is dead, or this process has just claimed
// `e` and no thread of it waits yet.
void DropWaits(const Segment& segment, SessionEntry& e);

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
