#include "gc/collector.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "heap/blob.h"
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

uint64_t ReadWord(std::byte* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
void WriteWord(std::byte* p, uint64_t w) { std::memcpy(p, &w, 8); }

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

void OpenWorld(Header& h, uint32_t odd_epoch) {
  // seq_cst: sessions read the epoch with seq_cst (Dekker); everything the
  // collector wrote happens before this store.
  h.gc_epoch.store(odd_epoch + 1, std::memory_order_seq_cst);
  FutexWakeAll(&h.gc_epoch);
  // Release: the next collector that takes the lock sees our writes.
  h.gc_lock.store(0, std::memory_order_release);
}

// With the world stopped, after compaction: the counters restart from the
// exact figures (a process killed between a table CAS and its counter
// update left them off by that operation), and the entries of dead
// processes are freed (their chunks are closed and their claims resolved).
void RecountAndFreeDeadSessions(const Segment& segment, uint64_t live_blobs,
                                uint64_t live_bytes, uint64_t used_bytes) {
  Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  const Slot* slots = segment.slots();
  uint64_t used_slots = 0;
  for (uint64_t i = 0; i < (uint64_t{1} << h.table_slots_log2); ++i) {
    // Relaxed throughout: the world is stopped; reopening it publishes.
    if (slots[i].hash.load(std::memory_order_relaxed) != 0) ++used_slots;
  }
  uint64_t exact[kNumCounters] = {};
  exact[kSlotsClaimed] = used_slots;
  exact[kBlobsPublished] = live_blobs;
  exact[kBytesPublished] = live_bytes;
  exact[kBytesAllocated] = used_bytes;
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
      // acq_rel: a joiner racing to take this dead entry either wins (and
      // finds it closed) or sees it free; release publishes the cleanup.
      reg[i].owner_pid.compare_exchange_strong(owner, kSessionFree,
                                               std::memory_order_acq_rel);
    }
  }
  h.unclean_exits.store(0, std::memory_order_relaxed);
}

}  // namespace

uint64_t ClearTombstones(Slot* slots, uint64_t mask) {
  // Relaxed loads: the world is stopped (I3). Release stores: no session
  // reads the table meanwhile, but Contains outside a scope may (the
  // seqlock read of hashtable/store.h); a probe that reads one of these
  // stores must also see the odd epoch stored before it (SlotStore).
  auto is_tombstone = [&](uint64_t i) {
    return slots[i].hash.load(std::memory_order_relaxed) != 0 &&
           slots[i].addr.load(std::memory_order_relaxed) == 0;
  };
  uint64_t cleared = 0;
  // Algorithm R can move a later tombstone to an index already scanned, so
  // scan until a pass finds none; each deletion removes one tombstone.
  for (bool again = true; again;) {
    again = false;
    for (uint64_t start = 0; start <= mask; ++start) {
      if (!is_tombstone(start)) continue;
      again = true;
      ++cleared;
      uint64_t i = start;
      slots[i].hash.store(0, kSlotStore);
      for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        const uint64_t hj = slots[j].hash.load(std::memory_order_relaxed);
        if (hj == 0) break;
        const uint64_t home = hj & mask;
        // Entry j may stay if its home lies cyclically in (i, j].
        const bool stays =
            i < j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        slots[i].hash.store(hj, kSlotStore);
        slots[i].addr.store(slots[j].addr.load(std::memory_order_relaxed),
                            kSlotStore);
        slots[j].hash.store(0, kSlotStore);
        slots[j].addr.store(0, kSlotStore);
        i = j;
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
        ": Collect called while this process holds a view or a Pin; it "
        "would wait for itself"));
  }
  GcReport report;
  // Take the collector lock, or wait for the running collection.
  const uint32_t me = static_cast<uint32_t>(getpid());
  for (;;) {
    if (absl::Status s = CheckCollectorAlive(segment); !s.ok()) return s;
    uint32_t expected = 0;
    // acq_rel: taking the lock orders us after the previous collector.
    if (h.gc_lock.compare_exchange_strong(expected, me,
                                          std::memory_order_acq_rel)) {
      break;
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
    return report;  // ran == false
  }
  if (h.phase.load(std::memory_order_acquire) == kPhaseCompacting) {
    // A collector died mid-compaction earlier; the lock was cleared by hand.
    h.gc_lock.store(0, std::memory_order_release);
    return absl::DataLossError(absl::StrCat(
        segment.Describe(), ": an earlier collection died while compacting"));
  }

  // H: stop the world.
  const uint32_t epoch = h.gc_epoch.load(std::memory_order_relaxed) | 1;
  h.gc_epoch.store(epoch, std::memory_order_seq_cst);
  auto sleep = std::chrono::microseconds(20);
  while (!Quiescent(segment)) {
    if (Clock::now() > deadline) {
      OpenWorld(h, epoch);
      return absl::DeadlineExceededError(
          absl::StrCat(segment.Describe(),
                       ": a live process stayed in scope (holds a view "
                       "or a Pin) for the whole deadline of ",
                       options.deadline.count(), " ms; nothing was collected"));
    }
    std::this_thread::sleep_for(sleep);
    if (sleep < std::chrono::milliseconds(2)) sleep *= 2;
  }
  const auto t_stopped = Clock::now();
  report.ran = true;

  // P: from here on, a crash leaves the heap untrusted.
  h.phase.store(kPhaseCompacting, std::memory_order_seq_cst);

  std::byte* base = segment.base();
  SessionEntry* reg = segment.registry();
  Slot* slots = segment.slots();
  const uint64_t mask = (uint64_t{1} << h.table_slots_log2) - 1;
  const uint64_t old_top = h.top.load(std::memory_order_relaxed);
  report.bytes_before = old_top - h.heap_start;

  // 0: close every open chunk.
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    if (reg[i].chunk_end.load(std::memory_order_relaxed) != 0) {
      CloseChunk(segment, reg[i]);
    }
  }
  // Chunks claimed by processes that died before recording them (every
  // recorded chunk now starts with a record, so only those start with 0).
  CloseClaimedGaps(segment, old_top);

  // 1: thread each slot through its blob. The slot's key tag (the high
  // bits of its addr word) waits in the blob's word 1, whose key hash the
  // slot's hash word gives back when the blob is restored.
  for (uint64_t i = 0; i <= mask; ++i) {
    const uint64_t word = slots[i].addr.load(std::memory_order_relaxed);
    if (word == 0) continue;
    const uint64_t addr = AddrOffset(word);
    if (addr < h.heap_start || addr >= old_top || addr % 8) {
      OpenWorld(h, epoch);  // nothing moved yet; phase stays: untrusted
      return absl::DataLossError(absl::StrCat(segment.Describe(), ": slot ", i,
                                              " points at ", addr,
                                              ", outside the heap"));
    }
    const uint64_t header = ReadWord(base + addr);
    if ((header & kTagBit) == 0 ||
        BlobHeader::Decode(header).size_bytes() < 16 ||
        BlobHeader::Decode(header).size_bytes() > old_top - addr) {
      OpenWorld(h, epoch);  // nothing moved yet; phase stays: untrusted
      return absl::DataLossError(absl::StrCat(segment.Describe(), ": slot ", i,
                                              " points at ", addr,
                                              ", which is not a blob"));
    }
    slots[i].addr.store(header, kSlotStore);
    const uint64_t slot_offset =
        h.table_offset + i * sizeof(Slot) + offsetof(Slot, addr);
    WriteWord(base + addr, slot_offset);  // bit 0 clear: threaded
    WriteWord(base + addr + 8, AddrTag(word));
    ++report.live_blobs;
  }
  if (options.testing_mid_compaction_hook)
    options.testing_mid_compaction_hook();

  // 2: slide live blobs down.
  uint64_t pos = h.heap_start, dest = h.heap_start, live_bytes = 0;
  while (pos < old_top) {
    const uint64_t word = ReadWord(base + pos);
    uint64_t header_word = word;
    Slot* slot = nullptr;
    if ((word & kTagBit) == 0) {
      // A threaded word is the offset of its slot's addr field.
      slot = reinterpret_cast<Slot*>(base + word - offsetof(Slot, addr));
      header_word = slot->addr.load(std::memory_order_relaxed);
    }
    const BlobHeader b = BlobHeader::Decode(header_word);
    const uint64_t size = b.size_bytes();
    if (size == 0 || size > old_top - pos) {
      // The heap does not parse: leave phase = compacting (untrusted).
      OpenWorld(h, epoch);
      return absl::DataLossError(
          absl::StrCat(segment.Describe(), ": record at ", pos, " of ", size,
                       " bytes does not parse; collection abandoned"));
    }
    if (slot != nullptr) {
      const uint64_t to = AlignUp(dest, b.alignment());
      if (to > dest) WriteWord(base + dest, FillerWord(to - dest));
      if (to != pos) {
        std::memmove(base + to, base + pos, size);
        ++report.blobs_moved;
        report.bytes_moved += size;
      }
      WriteWord(base + to, header_word);
      // Word 1 held the tag since threading; the slot's hash is the key
      // hash it held before.
      const uint64_t tag = ReadWord(base + to + 8);
      WriteWord(base + to + 8, slot->hash.load(std::memory_order_relaxed));
      slot->addr.store(AddrWord(to, static_cast<uint16_t>(tag)), kSlotStore);
      dest = to + size;
      live_bytes += size;
    }
    pos += size;
  }

  // 3: new top, give the tail back, clear tombstones, account.
  h.top.store(dest, std::memory_order_release);
  report.bytes_after = dest - h.heap_start;
  // Everything above top must read as zero again: a chunk claimed there by
  // a process that then dies before recording it is recognised by its zero
  // first word (heap/walk.h). Whole pages go back to the OS (which zeroes
  // them); the partial page below them is cleared by hand, and so is any
  // range the OS refuses to release.
  const uint64_t release_from = std::min(AlignUp(dest, kPageSize), old_top);
  std::memset(base + dest, 0, release_from - dest);
  if (old_top > release_from) {
    const uint64_t release_bytes = AlignUp(old_top, kPageSize) - release_from;
    if (!segment.Release(release_from, release_bytes).ok()) {
      std::memset(base + release_from, 0, old_top - release_from);
    }
  }
  report.tombstones_cleared = ClearTombstones(slots, mask);
  RecountAndFreeDeadSessions(segment, report.live_blobs, live_bytes,
                             dest - h.heap_start);

  // E: reopen the world.
  h.phase.store(kPhaseIdle, std::memory_order_seq_cst);
  h.collections.fetch_add(1, std::memory_order_release);
  const auto t1 = Clock::now();
  report.seconds = std::chrono::duration<double>(t1 - t0).count();
  report.handshake_seconds =
      std::chrono::duration<double>(t_stopped - t0).count();
  OpenWorld(h, epoch);
  return report;
}

}  // namespace shmheap::internal
