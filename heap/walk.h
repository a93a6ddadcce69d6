// Walking the heap: the records from heap_start to top, in address order.
//
// The heap parses end to end at any moment: every chunk is a sequence of
// header-led records (blobs and fillers) up to its owner's committed top,
// and the rest of an open chunk, [committed, chunk_end), is skipped using
// the registry. The walker bounds-checks every size before following it, so
// it is safe on a segment of unknown origin.
//
// Thread safety: a walk over a live heap sees a consistent prefix of each
// session's chunk (committed is read with acquire); it may race with chunk
// retirement, so callers that need an exact answer walk with the world
// stopped (collector) or with no writers (tests, tools).

#ifndef SHMHEAP_HEAP_WALK_H_
#define SHMHEAP_HEAP_WALK_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "heap/blob.h"
#include "heap/segment.h"

namespace shmheap::internal {

// Calls `visit(offset, header)` for each record (blob or filler) below top.
// kDataLoss naming the offset when a record is malformed: no tag bit, size
// 0, past top or into an open chunk, invalid kind or ndims. Stops early
// when `visit` returns false.
absl::Status WalkHeap(const Segment& segment,
                      absl::FunctionRef<bool(uint64_t, BlobHeader)> visit);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_WALK_H_
