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
  // Tests only: called after the threading phase (the world is stopped and
  // the heap is mid-compaction).
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
  // Table capacity (slots) before and after; after > before when this
  // collection grew the table (gc/grow.h).
  uint64_t table_slots_before = 0;
  uint64_t table_slots_after = 0;
  double seconds = 0;  // whole collection, handshake included
  double handshake_seconds = 0;
};

}  // namespace shmheap

#endif  // SHMHEAP_GC_OPTIONS_H_
