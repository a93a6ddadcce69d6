// Clear: empties the heap in place (every key and counter, the table, the
// dependency table, the statistics), as a stop-the-world step like a
// collection, so that no process has to re-attach.
//
// Steps (gc_lock held, the world stopped by the collector's handshake,
// gc/world.h):
//   K0  record gc_old_top := top and gc_keep_end := the end of the pages to
//       keep for reuse above heap_start (CollectOptions::reuse_slack_bytes,
//       as a collection's finishing phase), then phase := kPhaseClearing.
//       Chunks are not closed with fillers first, as a collection closes
//       them: the pages they lie in are zeroed in K3 anyway.
//   K1  every slot of the live table := {0, 0}, empty (not a tombstone),
//       with release stores (the Contains seqlock, gc/world.h). The table
//       keeps its size.
//   K2  every session entry forgets its chunk and its chunk claim
//       (chunk_start, chunk_end, committed, claim_start, claim_end := 0):
//       a session reads its chunk from its entry on each allocation
//       (heap/session.cc), so its next Add claims a new chunk from the new
//       top; nothing about the chunk is cached in the process.
//   K3  top := heap_start; the range [heap_start, gc_old_top) reads zero
//       again: kept pages zeroed by hand up to gc_keep_end, the rest given
//       back to the OS (ZeroFreedRange, as a collection's finishing phase);
//       reuse_end := gc_keep_end.
//   K4  the dependency table (hashtable/deps.h), when the heap has one, is
//       emptied: every slot 0 (ResetDepTable), edges and removed edges.
//   K5  the counters restart at 0 and dead processes' entries are freed
//       (RecountAndFreeDeadSessions); phase := idle, epoch even.
// Not cleared: Header::stop (a control word, RequestStop's cancellation:
// a master that clears the heap between two runs and has asked workers to
// stop must not have the request dropped by the clear; ClearStop says when),
// Header::collections (Clear is not a collection), the seed, the geometry.
//
// Recovery (R7 of gc/collector.h): every step of K1..K5 writes values that
// do not depend on what it finds, from the record made in K0, so a Clear
// killed anywhere in kPhaseClearing is redone from K1 by whoever rolls it
// forward (CheckCollectorAlive, through the collection's recovery), and a
// redo killed in turn is redone again. A Clear killed before K0's phase
// store has changed nothing: the next entrant reopens the world.
//
// Readers: a process in scope holds a pin, so Clear waits for it (or gives
// up at the deadline); a view never sees a value vanish under it. After
// the clear, every Get is kNotFound until the key is added again.

#ifndef SHMHEAP_GC_CLEAR_H_
#define SHMHEAP_GC_CLEAR_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gc/options.h"
#include "heap/segment.h"
#include "heap/session.h"

namespace shmheap::internal {

// Empties the heap (K0..K5 above). `self` is the calling process's session,
// or null. A Clear that finds a collection or another Clear running waits
// for it, then clears. Errors: kFailedPrecondition when `self` holds a pin;
// kDeadlineExceeded when some live session stays in scope past the
// deadline, or another collection does not finish in it (nothing changed);
// kDataLoss when the recorded top is outside the heap (a corrupt file; the
// heap is marked damaged), or CheckCollectorAlive's; the error of
// Segment::BackedBytes when the backing object's size cannot be read
// (nothing changed). The report has
// bytes_before, bytes_after (0), bytes_kept, bytes_released, the table's
// size and the times; live_blobs is 0.
absl::StatusOr<GcReport> Clear(const Segment& segment, LocalSession* self,
                               const CollectOptions& options);

// K1..K5 from the record, for a clear that a dead process left in
// kPhaseClearing, and for Clear itself. REQUIRES: this process holds
// gc_lock; the world is stopped; phase == kPhaseClearing. Errors:
// kDataLoss (the record is outside the heap; the heap is marked damaged);
// BackedBytes' error, with the world left stopped, the phase set and
// gc_lock released, so that the next entrant redoes the clear.
absl::Status RunClearing(const Segment& segment, GcReport& report);

}  // namespace shmheap::internal

#endif  // SHMHEAP_GC_CLEAR_H_
