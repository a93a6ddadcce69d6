#include "gc/collector.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gc/grow.h"
#include "heap/blob.h"
#include "heap/testing_hooks.h"
#include "heap/walk.h"

namespace shmheap::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Every store the collector makes to a slot is a release store: Contains
// outside any scope reads the table as a seqlock under the gc epoch
// (hashtable/store.h), and a probe that reads such a store (acquire) then
// also sees the odd epoch, stored before it, when it re-loads the epoch. On
// x86 a release store is a plain store. (A release fence after the epoch
// store would do the same; GCC refuses fences under ThreadSanitizer.)
constexpr std::memory_order kSlotStore = std::memory_order_release;
// Stores to the progress record (Header::gc_*) are release stores too: the
// compiler may not sink an earlier write below the record that says it is
// done.
constexpr std::memory_order kRecord = std::memory_order_release;
// Relaxed loads everywhere else: the world is stopped (I3), and the
// recovering process took gc_lock from the dead collector with acq_rel.
constexpr std::memory_order kStopped = std::memory_order_relaxed;

uint64_t ReadWord(const std::byte* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
void WriteWord(std::byte* p, uint64_t w) { std::memcpy(p, &w, 8); }

// How many records ahead of the slide their home slots are prefetched:
// enough misses in flight to cover a memory latency with the few dozen
// nanoseconds of work each record takes (bench/bulk_bench's compaction
// rows).
constexpr int kSlideAhead = 16;

// A compiler barrier after a plain write that a later record or slot store
// must not be made before (a killed process leaves its stores in program
// order, as long as the compiler kept that order).
void KeepOrder() { std::atomic_signal_fence(std::memory_order_seq_cst); }

// Whether every session of a live process is out of scope.
bool Quiescent(const Segment& segment) {
  const Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    // seq_cst: the collector's half of the Dekker handshake (its epoch store
    // precedes these loads in the single total order).
    if (reg[i].pinned.load(std::memory_order_seq_cst) == 0) continue;
    // Acquire: the identity was stored before pinned was set.
    const uint64_t owner = reg[i].owner_pid.load(std::memory_order_acquire);
    if (!OwnerAlive(reg[i], owner)) continue;  // free, or died in scope
    return false;
  }
  return true;
}

// E: makes the epoch even and wakes waiting sessions, then releases the
// lock. REQUIRES: the caller holds gc_lock.
void OpenWorld(Header& h) {
  const uint32_t epoch = h.gc_epoch.load(kStopped);
  // seq_cst: sessions read the epoch with seq_cst (Dekker); everything the
  // collector wrote happens before this store.
  if (epoch & 1) h.gc_epoch.store(epoch + 1, std::memory_order_seq_cst);
  FutexWakeAll(&h.gc_epoch);
  // Release: the next collector that takes the lock sees our writes.
  h.gc_lock.store(0, std::memory_order_release);
}

// Marks the heap damaged (it did not parse), reopens the world and returns
// the kDataLoss that says where.
absl::Status Damaged(const Segment& segment, const std::string& what) {
  Header& h = segment.header();
  // seq_cst: sessions check the phase right after pinning.
  h.phase.store(kPhaseDamaged, std::memory_order_seq_cst);
  OpenWorld(h);
  return absl::DataLossError(
      absl::StrCat(segment.Describe(), ": ", what, "; collection abandoned"));
}

// Whether a collection would change nothing: no open chunk or claim, no dead
// session, no dead byte and no tombstone. With the world stopped and no
// process dead since the last collection, the counters are exact.
bool NothingToCollect(const Segment& segment) {
  const Header& h = segment.header();
  if (h.unclean_exits.load(kStopped) != 0) return false;
  const SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    if (reg[i].chunk_end.load(kStopped) != 0 ||
        reg[i].claim_end.load(kStopped) != 0) {
      return false;
    }
    // Acquire: pairs with the owner's release store of its pid.
    const uint64_t owner = reg[i].owner_pid.load(std::memory_order_acquire);
    if (owner != kSessionFree && !OwnerAlive(reg[i], owner)) return false;
  }
  uint64_t c[kNumCounters];
  if (!SumCounters(segment, c)) return false;
  const uint64_t used = h.top.load(kStopped) - h.heap_start;
  return c[kBytesAllocated] - c[kBytesCollected] == used &&
         c[kBytesPublished] - c[kBytesUnlinked] == used &&
         c[kSlotsClaimed] - c[kTombstonesCleared] ==
             c[kBlobsPublished] - c[kBlobsUnlinked];
}

// With the world stopped, after compaction: the counters restart from the
// exact figures (a process killed between a table CAS and its counter
// update left them off by that operation), and the entries of dead
// processes are freed (their chunks are closed and their claims resolved).
//
// No table scan: once every tombstone is cleared (a slot with a hash and no
// blob, including an add whose process died before publishing), the used
// slots are exactly the live blobs.
void RecountAndFreeDeadSessions(const Segment& segment, uint64_t live_blobs,
                                uint64_t live_bytes, uint64_t used_bytes) {
  Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  uint64_t exact[kNumCounters] = {};
  exact[kSlotsClaimed] = live_blobs;
  exact[kBlobsPublished] = live_blobs;
  exact[kBytesPublished] = live_bytes;
  exact[kBytesAllocated] = used_bytes;
  // Relaxed: statistics; reopening the world publishes them.
  for (int c = 0; c < kNumCounters; ++c) {
    h.retired_counters[c].store(exact[c], std::memory_order_relaxed);
  }
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    for (int c = 0; c < kNumCounters; ++c) {
      reg[i].counters[c].store(0, std::memory_order_relaxed);
    }
    // Acquire: pairs with the owner's release store of its pid.
    uint64_t owner = reg[i].owner_pid.load(std::memory_order_acquire);
    if (owner != kSessionFree && !OwnerAlive(reg[i], owner)) {
      // A process killed while it waited for a key: its waits leave
      // Header::waiters with its entry.
      DropWaits(segment, reg[i]);
      // acq_rel: a joiner racing to take this dead entry either wins (and
      // finds it closed) or sees it free; release publishes the cleanup.
      reg[i].owner_pid.compare_exchange_strong(owner, kSessionFree,
                                               std::memory_order_acq_rel);
    }
  }
  h.unclean_exits.store(0, std::memory_order_relaxed);
}

// Live blobs and bytes counted from the table, for a resumed collection
// (the dead collector's running totals died with it). False when a slot
// points outside [heap_start, top).
bool CountLive(const Segment& segment, uint64_t top, uint64_t* blobs,
               uint64_t* bytes) {
  const Header& h = segment.header();
  const Slot* slots = segment.slots();
  *blobs = *bytes = 0;
  for (uint64_t i = 0; i < (uint64_t{1} << segment.table_slots_log2()); ++i) {
    const uint64_t word = slots[i].addr.load(kStopped);
    if (word == 0) continue;
    const uint64_t addr = AddrOffset(word);
    if (addr < h.heap_start || addr >= top || addr % 8) return false;
    ++*blobs;
    *bytes += BlobHeader::Decode(ReadWord(segment.base() + addr)).size_bytes();
  }
  return true;
}

// The collection: the phases of the header essay, each resumable from the
// progress record. One Collection runs a collection from its start, or
// (Resume) from wherever a dead collector's record says.
class Collection {
 public:
  Collection(const Segment& segment, GcReport& report,
             const CollectOptions* options)
      : segment_(segment),
        h_(segment.header()),
        base_(segment.base()),
        reg_(segment.registry()),
        slots_(segment.slots()),
        mask_((uint64_t{1} << segment.table_slots_log2()) - 1),
        report_(report),
        options_(options) {}

  // Runs every phase from h_.phase onward, then reopens the world.
  // REQUIRES: this process holds gc_lock; the world is stopped; phase is
  // kPhaseClosing or later (and not kPhaseDamaged).
  absl::Status Run(bool resumed) {
    resumed_ = resumed;
    old_top_ = h_.gc_old_top.load(kStopped);
    // A resumed collection's record comes from a file nobody verified: a top
    // past the backing object's end would make the walk fault (SIGBUS).
    absl::StatusOr<uint64_t> backed = segment_.BackedBytes();
    if (!backed.ok()) {
      OpenWorld(h_);
      return backed.status();
    }
    if (old_top_ < h_.heap_start || old_top_ > h_.heap_limit ||
        old_top_ > *backed || old_top_ % 8) {
      return Damaged(segment_, absl::StrCat("recorded top ", old_top_,
                                            " is outside the heap's ", *backed,
                                            " backed bytes"));
    }
    report_.bytes_before = old_top_ - h_.heap_start;
    for (;;) {
      absl::Status s;
      switch (h_.phase.load(kStopped)) {
        case kPhaseClosing:
          s = CloseChunks();
          break;
        case kPhaseSliding:
          s = Slide();
          break;
        case kPhaseFinishing:
          return Finish();
        case kPhaseGrowing:
          return Grow();
        default:
          return Damaged(segment_, absl::StrCat("unknown collection phase ",
                                                h_.phase.load(kStopped)));
      }
      if (!s.ok()) return s;
    }
  }

 private:
  void EnterPhase(uint32_t phase) {
    // seq_cst: the phase is what a recovering process reads first.
    h_.phase.store(phase, std::memory_order_seq_cst);
  }

  // 0. REQUIRES: phase == kPhaseClosing. Closing twice is harmless: a
  // closed chunk has end 0 and is skipped, a covered claim starts with a
  // filler (CloseChunk's double count of a half-closed chunk's bytes is
  // overwritten by the recount).
  absl::Status CloseChunks() {
    for (uint32_t i = 0; i < h_.max_sessions; ++i) {
      const uint64_t committed = reg_[i].committed.load(kStopped);
      const uint64_t end = reg_[i].chunk_end.load(kStopped);
      if (end == 0) continue;
      if (committed < h_.heap_start || committed > end || end > old_top_ ||
          committed % 8 || end % 8) {
        return Damaged(segment_,
                       absl::StrCat("session ", i, " has chunk [", committed,
                                    ", ", end, ") outside the heap"));
      }
      CloseChunk(segment_, reg_[i]);
    }
    // Chunks claimed by processes that died before recording them (every
    // recorded chunk now starts with a record, so only those start with 0).
    CloseClaimedGaps(segment_, old_top_);
    // The slide's record: how many live blobs it must find, and how far
    // from its home it must look for a blob's slot. One sequential pass
    // over the table; the blobs themselves are not read here.
    uint64_t live_slots = 0, longest = 0;
    bool outside = false;
    // Branch-free: whether a slot is used or holds a blob is a coin toss in
    // a table with tombstones, and a branch on it costs a misprediction per
    // slot; the slot that points outside is looked for only if there is one.
    auto points_outside = [&](uint64_t word) {
      const uint64_t addr = AddrOffset(word);
      return (addr < h_.heap_start) | (addr >= old_top_) | (addr % 8 != 0) |
             (old_top_ - addr < 16);
    };
    for (uint64_t i = 0; i <= mask_; ++i) {
      const uint64_t hash = slots_[i].hash.load(kStopped);
      const uint64_t word = slots_[i].addr.load(kStopped);
      longest = std::max(longest, hash != 0 ? (i - hash) & mask_ : 0);
      live_slots += word != 0;
      outside |= (word != 0) & points_outside(word);
    }
    for (uint64_t i = 0; outside && i <= mask_; ++i) {
      const uint64_t word = slots_[i].addr.load(kStopped);
      if (word != 0 && points_outside(word)) {
        return Damaged(segment_,
                       absl::StrCat("slot ", i, " points at ", AddrOffset(word),
                                    ", outside the heap"));
      }
    }
    RunTestingHook(TestingPoint::kGcClosed);
    h_.gc_live_slots.store(live_slots, kRecord);
    h_.gc_probe_limit.store(longest + 1, kRecord);
    h_.gc_slide_found.store(0, kRecord);
    h_.gc_slide_pos.store(h_.heap_start, kRecord);
    h_.gc_slide_dest.store(h_.heap_start, kRecord);
    h_.gc_move_slot.store(0, kRecord);
    if (options_ != nullptr && options_->testing_mid_compaction_hook) {
      options_->testing_mid_compaction_hook();
    }
    EnterPhase(kPhaseSliding);
    return absl::OkStatus();
  }

  // Whether `header`, read at `addr`, is a blob that fits below the old top.
  bool IsBlob(uint64_t addr, uint64_t header) const {
    const BlobHeader b = BlobHeader::Decode(header);
    return (header & kTagBit) != 0 && !b.is_filler() && b.size_bytes() >= 16 &&
           b.size_bytes() <= old_top_ - addr;
  }

  // The slot that points at the blob at `pos`, whose word 1 is `hash` (the
  // hash it was published under, which its slot holds: heap/blob.h), or
  // mask_ + 1 when none does (the blob is garbage). Linear probing from the
  // hash's home, no further than the table's longest displacement.
  uint64_t FindSlot(uint64_t hash, uint64_t pos, uint64_t limit) const {
    for (uint64_t j = hash & mask_, n = 0; n < limit;
         ++n, j = (j + 1) & mask_) {
      const uint64_t h = slots_[j].hash.load(kStopped);
      if (h == 0) break;
      if (h == hash && AddrOffset(slots_[j].addr.load(kStopped)) == pos) {
        return j;
      }
    }
    return mask_ + 1;
  }

  // Finishes the move recorded in gc_move_*: the blob from gc_move_pos to
  // gc_move_to (the record is whole on its own: the slide's position and
  // destination may have advanced past it already). Every step can be redone: a
  // move that does not overlap its source copies all of it again; one that
  // overlaps (destination below the source by d < size bytes) copies d bytes at
  // a time from the front, recording each in gc_move_done, so the bytes still
  // to copy are intact (a step overwrites only source bytes an earlier step
  // copied). Then the blob's words 0 and 1 are restored, the slot points at it,
  // the slide's destination and position advance, and the record is cleared, in
  // that order.
  absl::Status FinishMove() {
    const uint64_t pos = h_.gc_move_pos.load(kStopped);
    const uint64_t dest = h_.gc_move_dest.load(kStopped);
    const uint64_t to = h_.gc_move_to.load(kStopped);
    const uint64_t header = h_.gc_move_header.load(kStopped);
    const uint64_t slot_word = h_.gc_move_slot.load(kStopped);
    const uint64_t index = slot_word & 0xffffffffu;
    const uint16_t tag = static_cast<uint16_t>(slot_word >> 32);
    const BlobHeader b = BlobHeader::Decode(header);
    const uint64_t size = b.size_bytes();
    uint64_t done = h_.gc_move_done.load(kStopped);
    if (index > mask_ || (header & kTagBit) == 0 || size < 16 ||
        pos < h_.heap_start || pos > old_top_ || size > old_top_ - pos ||
        dest < h_.heap_start || to < dest || to > pos || to % 8 ||
        done > size || to != AlignUp(dest, b.alignment())) {
      return Damaged(segment_, absl::StrCat("recorded move of ", pos, " to ",
                                            to, " is inconsistent"));
    }
    if (to > dest) WriteWord(base_ + dest, FillerWord(to - dest));
    if (to != pos) {
      const uint64_t d = pos - to;
      if (d >= size) {
        std::memcpy(base_ + to, base_ + pos, size);
      } else {
        while (done < size) {
          const uint64_t n = std::min(d, size - done);
          std::memcpy(base_ + to + done, base_ + pos + done, n);
          done += n;
          KeepOrder();
          h_.gc_move_done.store(done, kRecord);
          RunTestingHook(TestingPoint::kGcMovedPart);
        }
      }
      ++report_.blobs_moved;
      report_.bytes_moved += size;
    }
    WriteWord(base_ + to, header);
    WriteWord(base_ + to + 8, slots_[index].hash.load(kStopped));
    KeepOrder();
    slots_[index].addr.store(AddrWord(to, tag), kSlotStore);
    h_.gc_slide_dest.store(to + size, kRecord);
    h_.gc_slide_pos.store(pos + size, kRecord);
    h_.gc_slide_found.store(h_.gc_move_found.load(kStopped), kRecord);
    // A death here, with everything done but the record still active, has
    // the whole move redone: each of its stores writes an absolute value.
    RunTestingHook(TestingPoint::kGcMovedBlob);
    h_.gc_move_slot.store(0, kRecord);
    live_bytes_ += size;
    return absl::OkStatus();
  }

  // Prefetches (for writing) the home slots of the blobs among the records
  // that follow `*ahead`, until `*queued` records are ahead of the walk:
  // the slide looks up each blob's slot, and writes it once the blob has
  // moved, and these accesses, random in the table, then find their lines
  // in the cache. Reads only records the slide has not reached, which no
  // move has touched yet.
  void PrefetchSlots(uint64_t* ahead, int* queued) const {
    while (*queued < kSlideAhead && *ahead < old_top_) {
      const uint64_t word = ReadWord(base_ + *ahead);
      const uint64_t size = BlobHeader::Decode(word).size_bytes();
      if ((word & kTagBit) == 0 || size == 0 || size > old_top_ - *ahead) {
        *ahead = old_top_;  // the walk reports it when it gets there
        return;
      }
      if (size >= 16) {
        const uint64_t hash = ReadWord(base_ + *ahead + 8);
        __builtin_prefetch(&slots_[hash & mask_], 1);
      }
      *ahead += size;
      ++*queued;
    }
  }

  // 2. Walks from gc_slide_pos to the old top, record by record, each
  // header giving the size that leads to the next (a sequential walk: the
  // table is never on its serial chain). A filler is skipped; a blob is
  // live if a slot with its key hash points at it (FindSlot), else
  // garbage and skipped. A live blob is recorded as a move and moved
  // (FinishMove). Blobs not reached yet, and their slots, are as they were
  // when the world stopped. At the end the slide must have found every
  // slot's blob: one it did not (a slot pointing at no record, or at a blob
  // of another hash) would be left pointing at whatever moved over it.
  absl::Status Slide() {
    if ((h_.gc_move_slot.load(kStopped) & kMoveActive) != 0) {
      if (absl::Status s = FinishMove(); !s.ok()) return s;
    }
    uint64_t pos = h_.gc_slide_pos.load(kStopped);
    const uint64_t limit =
        std::min(h_.gc_probe_limit.load(kStopped), mask_ + 1);
    if (pos < h_.heap_start || pos > old_top_ || pos % 8 ||
        h_.gc_slide_dest.load(kStopped) > pos ||
        h_.gc_slide_dest.load(kStopped) < h_.heap_start) {
      return Damaged(segment_, absl::StrCat("recorded slide position ", pos,
                                            " is outside the heap"));
    }
    uint64_t ahead = pos;
    int queued = 0;
    while (pos < old_top_) {
      PrefetchSlots(&ahead, &queued);
      if (queued > 0) --queued;
      const uint64_t word = ReadWord(base_ + pos);
      const BlobHeader b = BlobHeader::Decode(word);
      const uint64_t size = b.size_bytes();
      if ((word & kTagBit) == 0 || size == 0 || size > old_top_ - pos) {
        return Damaged(segment_, absl::StrCat("record at ", pos, " of ", size,
                                              " bytes does not parse"));
      }
      const uint64_t index =
          IsBlob(pos, word) ? FindSlot(ReadWord(base_ + pos + 8), pos, limit)
                            : mask_ + 1;
      if (index > mask_) {  // a filler, or garbage
        pos += size;
        h_.gc_slide_pos.store(pos, kRecord);
        RunTestingHook(TestingPoint::kGcSkippedRecord);
        continue;
      }
      const uint16_t tag = AddrTag(slots_[index].addr.load(kStopped));
      const uint64_t dest = h_.gc_slide_dest.load(kStopped);
      const uint64_t to = AlignUp(dest, b.alignment());
      h_.gc_move_pos.store(pos, kRecord);
      h_.gc_move_dest.store(dest, kRecord);
      h_.gc_move_to.store(to, kRecord);
      h_.gc_move_header.store(word, kRecord);
      h_.gc_move_done.store(0, kRecord);
      h_.gc_move_found.store(h_.gc_slide_found.load(kStopped) + 1, kRecord);
      h_.gc_move_slot.store(kMoveActive | uint64_t{tag} << 32 | index, kRecord);
      if (absl::Status s = FinishMove(); !s.ok()) return s;
      pos = h_.gc_slide_pos.load(kStopped);
    }
    if (h_.gc_slide_found.load(kStopped) != h_.gc_live_slots.load(kStopped)) {
      return Damaged(
          segment_,
          absl::StrCat("the slide found ", h_.gc_slide_found.load(kStopped),
                       " live blobs for ", h_.gc_live_slots.load(kStopped),
                       " slots that point into the heap"));
    }
    report_.live_blobs = h_.gc_live_slots.load(kStopped);
    // The new top and the end of the pages kept for reuse, then the
    // finishing phase's record.
    const uint64_t dest = h_.gc_slide_dest.load(kStopped);
    h_.gc_keep_end.store(KeepEnd(dest), kRecord);
    h_.top.store(dest, std::memory_order_release);
    h_.gc_hole.store(0, kRecord);
    EnterPhase(kPhaseFinishing);
    return absl::OkStatus();
  }

  // Where the pages kept for reuse end for a new top `top`: the slack
  // (CollectOptions::reuse_slack_bytes; the automatic one for a collection
  // rolled forward by another process) past it, rounded up to a page, and
  // never past the old top (nothing above it was freed).
  uint64_t KeepEnd(uint64_t top) const {
    uint64_t slack = options_ != nullptr ? options_->reuse_slack_bytes
                                         : CollectOptions::kAutoReuseSlack;
    if (slack == CollectOptions::kAutoReuseSlack) {
      slack = std::max((top - h_.heap_start) / 4,
                       CollectOptions::kMinAutoReuseSlack);
    }
    slack = std::min(slack, old_top_ - top);
    return std::min(old_top_, AlignUp(top + slack, kPageSize));
  }

  // 3. Zeroes the freed pages kept for reuse, gives the ones above them
  // back to the OS, clears tombstones (resumably), recounts, and reopens the
  // world. Every step can be redone.
  absl::Status Finish() {
    const uint64_t top = h_.top.load(kStopped);
    const uint64_t keep_end = h_.gc_keep_end.load(kStopped);
    if (top < h_.heap_start || top > old_top_ || top % 8 || keep_end < top ||
        keep_end > old_top_ || (keep_end < old_top_ && keep_end % kPageSize)) {
      return Damaged(segment_, absl::StrCat("new top ", top, " or kept end ",
                                            keep_end, " is outside the heap"));
    }
    report_.bytes_after = top - h_.heap_start;
    // Everything above top must read as zero again: a chunk claimed there
    // by a process that then dies before recording it is recognised by its
    // zero first word, and a wrong end of it by the zeros inside it
    // (heap/walk.h). The kept pages [top, keep_end) are cleared by hand and
    // stay backed (below the old top, they were fallocated when claimed);
    // the whole pages above go back to the OS, which zeroes them, and any
    // range the OS refuses to release is cleared by hand too.
    std::memset(base_ + top, 0, keep_end - top);
    report_.bytes_kept = keep_end - top;
    if (old_top_ > keep_end) {
      const uint64_t release_bytes = AlignUp(old_top_, kPageSize) - keep_end;
      if (segment_.Release(keep_end, release_bytes).ok()) {
        report_.bytes_released = old_top_ - keep_end;
      } else {
        std::memset(base_ + keep_end, 0, old_top_ - keep_end);
        report_.bytes_kept = old_top_ - top;
      }
    }
    RunTestingHook(TestingPoint::kGcReleasedTail);
    // Relaxed: the world is stopped; sessions read it in scope, after the
    // seq_cst epoch store that reopens the world.
    h_.reuse_end.store(keep_end, std::memory_order_relaxed);
    report_.tombstones_cleared = ClearTombstones(slots_, mask_, &h_);
    uint64_t live_blobs = report_.live_blobs, live_bytes = live_bytes_;
    if (resumed_ && !CountLive(segment_, top, &live_blobs, &live_bytes)) {
      return Damaged(segment_, "a slot points outside the compacted heap");
    }
    report_.live_blobs = live_blobs;
    RecountAndFreeDeadSessions(segment_, live_blobs, live_bytes,
                               top - h_.heap_start);
    RunTestingHook(TestingPoint::kGcFinished);
    return Grow();
  }

  // 4. Grows the table if its load calls for it (gc/grow.h; resumed when
  // the phase is kPhaseGrowing), then ends the collection.
  absl::Status Grow() {
    if (absl::Status s = GrowTable(segment_, report_); !s.ok()) {
      return Damaged(segment_, std::string(s.message()));
    }
    EnterPhase(kPhaseIdle);
    h_.collections.fetch_add(1, std::memory_order_release);
    OpenWorld(h_);
    return absl::OkStatus();
  }

  const Segment& segment_;
  Header& h_;
  std::byte* const base_;
  SessionEntry* const reg_;
  Slot* const slots_;
  const uint64_t mask_;
  GcReport& report_;
  const CollectOptions* options_;
  uint64_t old_top_ = 0;
  uint64_t live_bytes_ = 0;
  bool resumed_ = false;
};

// Takes gc_lock. Returns true when this process holds it; false when
// another collection ran meanwhile (ran == false for the caller).
absl::StatusOr<bool> LockCollector(const Segment& segment,
                                   Clock::time_point deadline) {
  Header& h = segment.header();
  const uint32_t me = static_cast<uint32_t>(getpid());
  for (;;) {
    if (absl::Status s = CheckCollectorAlive(segment); !s.ok()) return s;
    uint32_t expected = 0;
    // acq_rel: taking the lock orders us after the previous collector.
    if (h.gc_lock.compare_exchange_strong(expected, me,
                                          std::memory_order_acq_rel)) {
      return true;
    }
    // Another collection runs; wait for it, then report that it ran.
    const uint64_t done = h.collections.load(std::memory_order_acquire);
    while (h.gc_lock.load(std::memory_order_acquire) != 0 &&
           h.collections.load(std::memory_order_acquire) == done) {
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(segment.Describe(), ": another collection (pid ",
                         h.gc_lock.load(std::memory_order_relaxed),
                         ") did not finish within the deadline"));
      }
      if (absl::Status s = CheckCollectorAlive(segment); !s.ok()) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
}

// H: makes the epoch odd and waits until every live session is out of
// scope. At the deadline, reopens the world: kDeadlineExceeded, nothing
// changed. REQUIRES: this process holds gc_lock.
absl::Status StopWorld(const Segment& segment, Clock::time_point deadline,
                       std::chrono::milliseconds budget) {
  Header& h = segment.header();
  const uint32_t epoch = h.gc_epoch.load(std::memory_order_relaxed) | 1;
  // seq_cst: the collector's half of the Dekker handshake.
  h.gc_epoch.store(epoch, std::memory_order_seq_cst);
  auto sleep = std::chrono::microseconds(20);
  while (!Quiescent(segment)) {
    if (Clock::now() > deadline) {
      OpenWorld(h);
      return absl::DeadlineExceededError(absl::StrCat(
          segment.Describe(),
          ": a live process stayed in scope (holds a view, a Pin or a "
          "ReadScope) for the whole deadline of ",
          budget.count(), " ms; nothing was collected"));
    }
    std::this_thread::sleep_for(sleep);
    if (sleep < std::chrono::milliseconds(2)) sleep *= 2;
  }
  return absl::OkStatus();
}

absl::Status Recover(const Segment& segment) {
  GcReport report;
  return Collection(segment, report, nullptr).Run(/*resumed=*/true);
}

}  // namespace

uint64_t ClearTombstones(Slot* slots, uint64_t mask, Header* record) {
  // Loads relaxed (kStopped). Stores release (kSlotStore), for Contains
  // outside a scope.
  auto is_tombstone = [&](uint64_t i) {
    return slots[i].hash.load(kStopped) != 0 &&
           slots[i].addr.load(kStopped) == 0;
  };
  // One cascade of Algorithm R: the entry at `hole` is gone; move later
  // entries of its cluster back into the hole, one by one. Every entry
  // between the hole and the scan position stays where it is (else it
  // would have filled the hole), so the hole alone says where a cascade is:
  // the record holds hole + 1 (Header::gc_hole), written after each entry
  // is copied into the hole and before its old slot is emptied. A
  // recovering process empties the recorded hole (a tombstone not yet
  // cleared, or a copy whose original is still further on) and scans again
  // from the slot after it.
  // Returns whether it moved a tombstone into a slot before `start` (it
  // wrapped round the table), which the running pass has scanned already.
  auto cascade = [&](uint64_t hole, uint64_t start) {
    bool wrapped_tombstone = false;
    slots[hole].hash.store(0, kSlotStore);
    slots[hole].addr.store(0, kSlotStore);
    for (uint64_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
      const uint64_t hj = slots[j].hash.load(kStopped);
      if (hj == 0) break;
      const uint64_t home = hj & mask;
      // Entry j may stay if its home lies cyclically in (hole, j].
      const bool stays =
          hole < j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (stays) continue;
      const uint64_t aj = slots[j].addr.load(kStopped);
      if (aj == 0 && hole < start) wrapped_tombstone = true;
      slots[hole].hash.store(hj, kSlotStore);
      slots[hole].addr.store(aj, kSlotStore);
      if (record != nullptr) record->gc_hole.store(j + 1, kRecord);
      slots[j].addr.store(0, kSlotStore);
      slots[j].hash.store(0, kSlotStore);
      hole = j;
      RunTestingHook(TestingPoint::kGcMovedSlot);
    }
    if (record != nullptr) record->gc_hole.store(0, kRecord);
    return wrapped_tombstone;
  };
  uint64_t cleared = 0;
  if (record != nullptr && record->gc_hole.load(kStopped) != 0) {
    // Resume the cascade a dead collector was in. A corrupt record is
    // clamped into the table: its cascade then runs from a wrong place
    // (Verify reports what that breaks), but writes only inside the table.
    cascade((record->gc_hole.load(kStopped) - 1) & mask, 0);
  }
  // Algorithm R moves later entries back, tombstones among them: into the
  // slot just cleared (so it is looked at again), into slots the pass has
  // yet to reach, or, in a cascade that wraps round the table, into slots
  // it has passed; only then does another pass run. Each cascade removes
  // one tombstone.
  for (bool again = true; again;) {
    again = false;
    for (uint64_t start = 0; start <= mask; ++start) {
      while (is_tombstone(start)) {
        ++cleared;
        if (record != nullptr) record->gc_hole.store(start + 1, kRecord);
        again |= cascade(start, start);
        RunTestingHook(TestingPoint::kGcClearedTombstone);
      }
    }
  }
  return cleared;
}

absl::StatusOr<GcReport> Collect(const Segment& segment, LocalSession* self,
                                 const CollectOptions& options) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + options.deadline;
  Header& h = segment.header();
  if (self != nullptr && self->pinned()) {
    return absl::FailedPreconditionError(absl::StrCat(
        segment.Describe(),
        ": Collect called while this process holds a view, a Pin or a "
        "ReadScope; it would wait for itself"));
  }
  GcReport report;
  absl::StatusOr<bool> locked = LockCollector(segment, deadline);
  if (!locked.ok()) return locked.status();
  if (!*locked) return report;  // ran == false
  if (absl::Status s = StopWorld(segment, deadline, options.deadline);
      !s.ok()) {
    return s;
  }
  const auto t_stopped = Clock::now();
  report.ran = true;
  report.handshake_seconds =
      std::chrono::duration<double>(t_stopped - t0).count();
  const uint64_t top = h.top.load(kStopped);
  report.bytes_before = report.bytes_after = top - h.heap_start;
  report.table_slots_before = report.table_slots_after =
      uint64_t{1} << segment.table_slots_log2();
  if (NothingToCollect(segment) && !TableWantsGrowth(segment)) {
    // A compact heap is left exactly as it is; the collection still counts
    // (callers that waited for it, and stats, see that one ran).
    h.collections.fetch_add(1, std::memory_order_release);
    OpenWorld(h);
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return report;
  }
  h.gc_old_top.store(top, kRecord);
  h.phase.store(kPhaseClosing, std::memory_order_seq_cst);
  if (absl::Status s = Collection(segment, report, &options).Run(false);
      !s.ok()) {
    return s;
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return report;
}

void InstallCollectionRecovery() { SetCollectionRecovery(&Recover); }

}  // namespace shmheap::internal
