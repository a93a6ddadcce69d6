// CollectOptions and GcReport: the public knobs and figures of a collection
// (gc/collector.h is the collector itself; this header is what shmheap.h
// shows users).

#ifndef SHMHEAP_GC_OPTIONS_H_
#define SHMHEAP_GC_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <functional>

namespace shmheap {

struct CollectOptions {
  // How long to wait for every live session to leave its scope (and for a
  // concurrent collection to finish).
  std::chrono::milliseconds deadline{10000};
  // Freed pages kept for reuse. After compaction the freed range above the
  // new top is zeroed up to reuse_slack_bytes past the new top (rounded up
  // to a page) and stays backed, so the chunks allocated next need no
  // fallocate and fault on no page; only the pages above it go back to the
  // OS. The cost is the zeroing, inside the collection (the kernel zeroes a
  // released page on its next fault anyway), and the memory held.
  // kAutoReuseSlack: a quarter of the live bytes, and at least
  // kMinAutoReuseSlack (64 MiB), never more than was freed. 0: every freed
  // page goes back. The end is recorded with the new top, so a collection
  // that another process rolls forward keeps what this one chose.
  static constexpr uint64_t kAutoReuseSlack = ~uint64_t{0};
  static constexpr uint64_t kMinAutoReuseSlack = uint64_t{64} << 20;
  uint64_t reuse_slack_bytes = kAutoReuseSlack;
  // Tests only: called after the closing pass, just before the slide (the
  // world is stopped and the heap is mid-compaction).
  std::function<void()> testing_mid_compaction_hook;
};

struct GcReport {
  bool ran = false;           // false: another process's collection ran
  uint64_t bytes_before = 0;  // heap top before, relative to heap_start
  uint64_t bytes_after = 0;   // heap top after
  uint64_t blobs_moved = 0;
  uint64_t bytes_moved = 0;
  uint64_t live_blobs = 0;
  uint64_t tombstones_cleared = 0;
  uint64_t bytes_kept = 0;      // freed bytes kept backed for reuse
  uint64_t bytes_released = 0;  // freed bytes given back to the OS
  // Table capacity (slots) before and after; after > before when this
  // collection grew the table (gc/grow.h).
  uint64_t table_slots_before = 0;
  uint64_t table_slots_after = 0;
  double seconds = 0;  // whole collection, handshake included
  double handshake_seconds = 0;
};

}  // namespace shmheap

#endif  // SHMHEAP_GC_OPTIONS_H_
