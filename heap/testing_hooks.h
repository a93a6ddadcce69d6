// Crash-injection points for tests (tests/crash_test.cc).
//
// The library calls RunTestingHook(point) at the places where a process that
// dies leaves the heap in an intermediate state worth testing: a chunk
// claimed but not yet recorded, a blob written but not published, a slot
// claimed but not yet pointing at its blob. A test installs a hook that
// kills its own process (SIGKILL) at one of them, which is how a kill lands
// inside those windows far more often than random timing would. A hook may
// also hold its process inside a window (the scope handshake's, say) while
// another process acts, so that a race the window allows happens every time
// (tests/session_test.cc).
//
// The hook is process-local (a plain global, never in shared memory) and
// null in production, where each call is one relaxed load and a branch.

#ifndef SHMHEAP_HEAP_TESTING_HOOKS_H_
#define SHMHEAP_HEAP_TESTING_HOOKS_H_

#include <atomic>

namespace shmheap::internal {

enum class TestingPoint {
  kChunkClaimed,  // Header::top advanced; the chunk is not yet recorded
  kBlobWritten,   // a blob is allocated and filled; not yet published
  // The slot holds the hash; its addr is not yet set. An Add (or AddMany)
  // claims the slot before it allocates its blob; Publish after Reserve
  // claims it after the blob is filled.
  kSlotClaimed,
  // The slot points at the blob. An Add has counted the publish ahead; a
  // Replace's unlink and a Publish's counters are not yet updated.
  kPublished,
  // Collector (gc/collector.cc), world stopped, inside a collection:
  kGcClosed,         // every chunk and claim closed
  kGcSkippedRecord,  // the slide skipped one more filler or dead blob
  kGcMovedPart,      // one more step of an overlapping move copied
  kGcMovedBlob,      // a blob moved, its slot updated, its record not cleared
  kGcMovedSlot,      // a tombstone cascade moved one entry back
  kGcClearedTombstone,  // one more tombstone cascade done
  kGcFinished,          // counters recounted; the world not yet reopened
  // Table growth (gc/grow.cc), world stopped, after the compaction:
  kGcGrowBegun,      // new area backed, growth recorded, phase growing
  kGcGrewSlot,       // one more slot copied into the new table
  kGcGrowInstalled,  // Header::table names the new table; old not released
  // A session entering its scope read an even gc epoch and has not yet set
  // its pinned flag: a collector whose poll reads its entry now does not
  // wait for it (the session's second epoch load must catch the collector).
  kScopeEpochRead,
  // A session entering its scope found a collection running and is about
  // to sleep until the epoch turns even.
  kScopeWait,
  // The CAS on Header::top won, inside the claim loop: the claim record was
  // stored before it; the chunk is not yet recorded.
  kTopAdvanced,
  // A record (a blob, or the alignment filler before it) has its place in
  // the chunk and its header word is about to be written: the chunk's
  // committed top must not cover it yet.
  kRecordHeaderUnwritten,
  // OwnerAlive is about to judge an entry's owner (the collector polling a
  // pinned entry, a joiner, stats): a test can act in the middle of the
  // collector's poll, after it has read the entries before this one.
  kOwnerCheck,
  // Collector, finishing: the pages kept for reuse are zeroed and the rest
  // of the freed range is given back to the OS; Header::reuse_end is not
  // yet updated, nor are tombstones cleared.
  kGcReleasedTail,
  // AddDep read an empty slot and is about to CAS it (hashtable/deps.h): a
  // hook that stores an edge there first makes the CAS lose, every time.
  kDepEmptySeen,
  // A dependency edge was just stored: its claim CAS won (hashtable/deps.h).
  // Nothing else is written after it, so a process killed here has stored
  // the edge but not returned true.
  kDepClaimed,
};

using TestingHook = void (*)(TestingPoint);

// Relaxed: the hook is installed before the code under test runs (and
// inherited across fork); no data is published through it.
inline std::atomic<TestingHook> g_testing_hook{nullptr};

inline void SetTestingHook(TestingHook hook) {
  g_testing_hook.store(hook, std::memory_order_relaxed);
}

inline void RunTestingHook(TestingPoint point) {
  if (TestingHook hook = g_testing_hook.load(std::memory_order_relaxed)) {
    hook(point);
  }
}

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_TESTING_HOOKS_H_
