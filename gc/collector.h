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
// exactly one pointer, its hash-table slot. We follow that scheme, and go one
// step further (issue 15): a blob also carries the hash its slot holds (word
// 1), so the slide finds a blob's slot by probing the table from that hash,
// and needs no threading at all. Hack threads because its blobs do not know
// their key; threading here swapped each header into its slot, so the slide
// loaded every live blob's header from the table, a random access on the
// walk's serial chain (the next position depended on it), and the threading
// pass itself read every live blob at random: small blobs compacted at a
// twentieth of memmove's speed.
//
// Invariants the algorithm relies on:
//   I1  The heap parses from heap_start to top as header-led records; a
//       header word has bit 0 set and the record's size, so the walk reads
//       sizes sequentially and never waits on the table.
//   I2  Each live blob has exactly one slot whose addr points at it (Add
//       claims one slot per hash; Replace and Move unlink the old address
//       in the same CAS or before publishing; Move copies), and that slot's
//       hash is the blob's word 1 (Verify checks it). So a blob is live iff
//       the probe from its word 1 finds a slot with that hash pointing at
//       it; the probe never goes further than the table's longest
//       displacement (measured when the chunks are closed).
//   I3  No process is inside a scope (the handshake below), so nobody reads
//       or writes the heap or the table while it runs.
//   I4  A blob of alignment A starts at a multiple of A; moving it to a
//       lower multiple of A keeps its payload aligned.
//
// Phases (Collect; gc/collector.cc has one function per phase; phase 1 was
// threading, which format 5 no longer has):
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
//      then one sequential pass over the table counts the slots that hold
//      a blob (checking that each points into the heap) and measures the
//      longest displacement;
//   2  (kPhaseSliding) slide: walk from heap_start; a filler is skipped by
//      its size; a blob whose slot the probe finds (I2) is live, any other
//      is garbage and skipped (the walk prefetches the home slots of the
//      records ahead of it, so these random accesses overlap); a live blob
//      moves down to the next multiple of its alignment (a filler fills any
//      gap) and its slot points at its new offset with its tag. The slide
//      must find as many live blobs as the table has: a slot it did not
//      match would be left pointing at whatever moved over its blob, so a
//      mismatch marks the heap damaged;
//   3  (kPhaseFinishing) top := end of the last moved blob; the freed pages
//      up to the recorded keep end (the reuse slack, CollectOptions) are
//      zeroed by hand and stay backed for the next chunks (reuse_end); the
//      pages above go back to the OS (FALLOC_FL_PUNCH_HOLE, else
//      MADV_REMOVE), so everything above top reads 0 again either way
//      (which is how an unrecorded claim, and a wrong end of one, is
//      recognised: heap/walk.h); tombstones
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
//   R2  Nothing before the slide writes a blob or a slot: the blobs the
//       slide has not reached, and their slots, are as the world stopped
//       them, so a probe from a record past the slide's position answers as
//       it did.
//   R0  Each phase keeps its own record fields, and sets up the next
//       phase's before it enters it, so a death between the two leaves
//       both records whole.
//   R3  Sliding records each live blob before it moves (source position,
//       the slide's destination before it, its destination, header, slot,
//       tag, bytes copied, the live count once done): the record alone
//       finishes the move, and redoing it writes the same values. A move that
//       does not overlap its source is copied again whole; one that overlaps
//       (the destination d < size bytes below) goes d bytes at a time from the
//       front, each step recorded, and a step overwrites only source bytes
//       an earlier step copied. At every instant each live blob exists
//       completely at its threaded source, at its slot's offset, or split
//       between destination and source exactly as the record says. The
//       cursor advances and the record is cleared only after the slot
//       points at the moved blob.
//   R4  Finishing zeroes the kept pages and releases the rest above the
//       recorded new top, up to the keep end recorded with it (redoable,
//       and a process rolling it forward keeps what the dead one chose),
//       and records each Algorithm R cascade by its hole, written after an
//       entry is copied into the hole and before its old slot is emptied;
//       a recovering process empties the recorded hole and rescans after
//       it (every entry between hole and scan stays put).
//   R5  Counters are recounted from the table when a collection is resumed.
//   R6  Growing (kPhaseGrowing) records the new table word before the fill
//       and installs it with one store; recovery redoes the release of the
//       old area after that store, the whole growth before it
//       (gc/grow.h, "Recovery").
//   R7  Clear (gc/clear.h, kPhaseClearing) records the old top and the
//       keep end before it enters its phase, and then writes only values
//       that do not depend on what it finds (empty slots, empty chunk
//       records, top := heap_start, zeroed or released pages, counters 0),
//       so a recovering process redoes it from its first step.
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
// running one to finish and returns a report with ran == false. Clear
// (gc/clear.h) takes the same lock and the same handshake (gc/world.h); a
// Clear that waited for a collection then clears, and a collection that
// waited for a Clear returns ran == false (the heap is compact: empty).

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
// kDataLoss when the heap does not parse, or a slot points at no blob the
// slide finds (it is then marked damaged).
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
