// Stats: the figures Heap::stats() reports (public; a plain value).

#ifndef SHMHEAP_HEAP_STATS_H_
#define SHMHEAP_HEAP_STATS_H_

#include <cstdint>

namespace shmheap {

struct Stats {
  uint64_t table_slots = 0;       // capacity
  uint64_t table_used = 0;        // slots with a hash (live + tombstones)
  uint64_t table_tombstones = 0;  // slots with a hash and no value
  uint64_t live_blobs = 0;
  uint64_t heap_capacity = 0;  // bytes for blobs
  uint64_t heap_top = 0;       // bytes handed out to chunks so far
  uint64_t live_bytes = 0;     // bytes of published, reachable blobs
  uint64_t dead_bytes = 0;     // removed, replaced, lost blobs, fillers
  uint64_t sessions = 0;       // sessions of live processes
  uint64_t collections = 0;
  // The dependency table (Heap::AddDep), counted by a scan of its slots
  // when stats are taken (so a crash cannot make them drift; the scan reads
  // 8 bytes a slot): 0 when the heap has none.
  uint64_t dep_slots = 0;    // capacity
  uint64_t dep_used = 0;     // non-empty slots, removed edges included
  uint64_t dep_removed = 0;  // slots of removed edges (kept until a reset)
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_STATS_H_
