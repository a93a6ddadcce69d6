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

// The end of the claimed-but-unrecorded range that starts at `pos`, or 0
// when none starts there. Such a range is left by a process killed between
// its CAS on Header::top and the recording of the chunk in its session
// entry: nothing has been written in it (its first word is still 0), and
// only the dead session's claim record (SessionEntry::claim_start/claim_end)
// describes it. Several dead claims may name the same start (only one of
// their CASes succeeded): the shortest whose end is `limit`, another claim's
// start or a record header wins, since a wrong, shorter end would land on
// the zeros of the real range. REQUIRES: no process allocates (world
// stopped, or no writers); the word at `pos` is 0; pos < limit <= top.
uint64_t ClaimedGapEnd(const Segment& segment, uint64_t pos, uint64_t limit);

// Collector, world stopped, every open chunk closed: writes a filler over
// each claimed-but-unrecorded range below `top`, then clears every claim
// record, so that the heap parses end to end through records alone.
void CloseClaimedGaps(const Segment& segment, uint64_t top);

// Calls `visit(offset, header)` for each record (blob or filler) below top.
// A claimed-but-unrecorded range (ClaimedGapEnd) is visited as a filler.
// kDataLoss naming the offset when a record is malformed: no tag bit, size
// 0, past top or into an open chunk, invalid kind or ndims. Stops early
// when `visit` returns false.
absl::Status WalkHeap(const Segment& segment,
                      absl::FunctionRef<bool(uint64_t, BlobHeader)> visit);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_WALK_H_
