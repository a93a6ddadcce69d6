// The collector: an in-place, sliding, compacting garbage collector for the
// heap, run under a stop-the-world handshake.
//
// Why in place. Hack's first shared-heap collector copied every live blob
// into a temporary heap and back, which doubled peak memory exactly when the
// heap was largest and ran type checkers into the OOM killer. Since 2018
// hh_shared compacts in place instead, with the pointer-threading ("sliding")
// technique of Jonkers (H.B.M. Jonkers, "A fast garbage compaction
// algorithm", Information Processing Letters 9(1), 1979), simplified by an
// invariant that general-purpose heaps lack: every live blob is referenced by
// exactly one pointer, its hash-table slot. We follow that scheme.
//
// Invariants the algorithm relies on:
//   I1  The heap parses from heap_start to top as header-led records; a
//       header word has bit 0 set. Slot offsets are multiples of 16, so a
//       word with bit 0 clear can only be a threaded slot offset.
//   I2  Each live blob has exactly one slot whose addr points at it (Add
//       claims one slot per hash; Replace and Move unlink the old address
//       in the same CAS or before publishing; Move copies).
//   I3  No process is inside a scope (the handshake below), so nobody reads
//       or writes the heap or the table while it runs.
//   I4  A blob of alignment A starts at a multiple of A; moving it to a
//       lower multiple of A keeps its payload aligned.
//
// Phases (Collect; gc/collector.cc has one function per phase):
//   H  handshake: gc_epoch := odd (seq_cst), then wait until every session
//      of a live process has pinned == 0 (seq_cst loads; see heap/session.h
//      for the Dekker pairing). Sessions of dead processes (pid + start time)
//      are ignored. If the deadline passes, the epoch is made even again and
//      nothing has changed: kDeadlineExceeded. If the heap is already
//      compact (no open chunk or claim, no dead byte, tombstone or dead
//      session), the world reopens and nothing is written.
//   0  (kPhaseClosing) close every session's open chunk with a filler from
//      its committed top (dead processes' chunks too), then cover with a
//      filler each chunk that a process claimed and died before recording
//      (its claim record, heap/walk.h), so the heap parses end to end (I1);
//   1  (kPhaseThreading) thread: for each slot with a blob, swap the blob's
//      header word into the slot and the slot's offset into the blob's word
//      0; the slot's key tag (heap/layout.h) waits in the blob's word 1, the
//      key hash, which the slot's hash word restores;
//   2  (kPhaseSliding) slide: walk from heap_start; a record with bit 0 set
//      is garbage (dead blob or filler) and is skipped by its size; a
//      threaded word leads to the slot, which gives back the header; the
//      blob moves down to the next multiple of its alignment (a filler
//      fills any gap), its header and key hash are restored, and the slot
//      points at its new offset with its tag;
//   3  (kPhaseFinishing) top := end of the last moved blob; the pages above
//      it go back to the OS (FALLOC_FL_PUNCH_HOLE, else MADV_REMOVE) and the
//      partial page below them is zeroed, so everything above top reads 0
//      again (which is how an unrecorded claim is recognised); tombstones
//      are cleared in place by Knuth's Algorithm R (TAOCP vol. 3, 6.4) for
//      deletion under linear probing, which moves later entries of a
//      cluster back so that no probe chain breaks; the counters restart
//      from the exact figures (a killed process may have left them off by
//      one operation) and the entries of dead processes are freed;
//   4  (kPhaseGrowing) when more than half the table's slots are used,
//      rehash it into the other table area, at least twice as large, and
//      install it with one store (gc/grow.h, which has its own recovery);
//      a compact heap whose table needs growing is collected for it;
//   E  phase := idle, gc_epoch := even (seq_cst), wake waiting sessions.
//
// Recovery: a collector may die at any instruction (SIGKILL, the OOM
// killer, a Ctrl-C whose default action ends the process) without losing a
// published value. Header::phase says which phase runs and the progress
// record (Header::gc_*) how far it got; every step is done so that it can
// be done again, and each is recorded (release stores, and compiler
// barriers after plain writes) before the writes it makes unrecoverable:
//   R1  Closing writes fillers and zeroes chunk records: redoing it changes
//       nothing more.
//   R2  Threading records the slot index and its addr word (blob offset and
//       tag) before the slot takes the blob's header; a slot whose addr has
//       bit 0 set is threaded (headers have it, offsets never do), so the
//       recorded slot is finished from the record and the rest resume.
//   R0  Each phase keeps its own record fields, and sets up the next
//       phase's before it enters it, so a death between the two leaves
//       both records whole.
//   R3  Sliding records each live blob before it moves (source position,
//       the slide's destination before it, its destination, header, slot,
//       tag, bytes copied): the record alone finishes the move. A move that
//       does not overlap its source is copied again whole; one that overlaps
//       (the destination d < size bytes below) goes d bytes at a time from the
//       front, each step recorded, and a step overwrites only source bytes
//       an earlier step copied. At every instant each live blob exists
//       completely at its threaded source, at its slot's offset, or split
//       between destination and source exactly as the record says. The
//       cursor advances and the record is cleared only after the slot
//       points at the moved blob.
//   R4  Finishing zeroes and releases above the recorded new top (redoable),
//       and records each Algorithm R cascade by its hole, written after an
//       entry is copied into the hole and before its old slot is emptied;
//       a recovering process empties the recorded hole and rescans after
//       it (every entry between hole and scan stays put).
//   R5  Counters are recounted from the table when a collection is resumed.
//   R6  Growing (kPhaseGrowing) records the new table word before the fill
//       and installs it with one store; recovery redoes the release of the
//       old area after that store, the whole growth before it
//       (gc/grow.h, "Recovery").
// Who rolls forward: CheckCollectorAlive (heap/session.h) takes gc_lock
// from a dead collector and runs the recovery that the Heap layer installs
// (InstallCollectionRecovery): the next process to enter its scope,
// attach, or collect. The world stays stopped until it is done, so no
// session ever sees a half-compacted heap. kDataLoss remains only for a
// heap that does not parse (kPhaseDamaged): real damage, not a death.
//
// Signals: the library installs no handler. A signal whose default action
// ends the process (SIGINT, SIGTERM, SIGKILL) during Collect leaves a
// collection that the next entrant finishes; a handler that returns lets
// Collect run on to its end. Tools that want a clean exit block SIGINT and
// SIGTERM around Collect (tools/shmheap_cli.cc).
//
// Memory: O(1) beyond the heap itself. No allocation depends on the size of
// the heap or the table; the only extra state is a handful of locals.
//
// Concurrency: any process may call Collect. Collections are serialized by
// Header::gc_lock (the collector's pid); a second caller waits for the
// running one to finish and returns a report with ran == false.

#ifndef SHMHEAP_GC_COLLECTOR_H_
#define SHMHEAP_GC_COLLECTOR_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "gc/options.h"
#include "heap/segment.h"
#include "heap/session.h"

namespace shmheap {
namespace internal {

// Runs one collection. `self` is the calling process's session, or null.
// Errors: kFailedPrecondition when `self` holds a pin (it would wait for
// itself); kDeadlineExceeded when some live session stays in scope past the
// deadline, or another collection does not finish in it (nothing changed);
// kDataLoss when the heap does not parse (it is then marked damaged).
absl::StatusOr<GcReport> Collect(const Segment& segment, LocalSession* self,
                                 const CollectOptions& options);

// Removes every tombstone from the table in place (Algorithm R). With a
// `record`, each cascade is recorded in it (Header::gc_hole) and a cascade
// recorded there is finished first, so a collector killed inside may be
// resumed. REQUIRES: the world is stopped. Returns the number of
// tombstones removed by the passes (a resumed cascade is not counted).
uint64_t ClearTombstones(Slot* slots, uint64_t mask, Header* record = nullptr);

// Installs the roll-forward of a dead collector's collection into the
// session layer (SetCollectionRecovery, heap/session.h). The public Heap
// calls it before it opens any heap.
void InstallCollectionRecovery();

}  // namespace internal
}  // namespace shmheap

#endif  // SHMHEAP_GC_COLLECTOR_H_
