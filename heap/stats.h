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
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_STATS_H_
