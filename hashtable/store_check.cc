// Store::GetStats and Store::Verify: the counters, and the fsck.

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hashtable/deps.h"
#include "hashtable/store.h"
#include "heap/array_view.h"
#include "heap/blob.h"
#include "heap/walk.h"

namespace shmheap::internal {
Stats Store::GetStats() const {
  const Segment& seg = *segment_;
  Header& h = seg.header();
  uint64_t c[kNumCounters];
  SumCounters(seg, c);  // wrapped sums clamp to 0 below; Verify reports them
  Stats s;
  SessionEntry* reg = seg.registry();
  for (uint32_t e = 0; e < h.max_sessions; ++e) {
    const uint64_t owner = reg[e].owner_pid.load(std::memory_order_acquire);
    if (OwnerAlive(reg[e], owner)) ++s.sessions;
  }
  auto sub = [](uint64_t a, uint64_t b) { return a > b ? a - b : 0; };
  // Outside any scope: a growth may be installing a larger table; the
  // figure is one of the two (statistics).
  s.table_slots = table().capacity();
  s.table_used = sub(c[kSlotsClaimed], c[kTombstonesCleared]);
  s.live_blobs = sub(c[kBlobsPublished], c[kBlobsUnlinked]);
  s.table_tombstones = sub(s.table_used, s.live_blobs);
  s.heap_capacity = h.heap_limit - h.heap_start;
  s.heap_top = h.top.load(std::memory_order_relaxed) - h.heap_start;
  s.live_bytes = sub(c[kBytesPublished], c[kBytesUnlinked]);
  s.dead_bytes = sub(sub(c[kBytesAllocated], c[kBytesCollected]), s.live_bytes);
  s.collections = h.collections.load(std::memory_order_relaxed);
  // The table never moves: no scope is needed to scan it.
  if (absl::StatusOr<DepTable> deps = DepTable::Of(seg); deps.ok()) {
    const DepTable::Counts counts = deps->Count();
    s.dep_slots = deps->capacity();
    s.dep_used = counts.used;
    s.dep_removed = counts.removed;
  }
  return s;
}

absl::Status Store::Verify() const {
  absl::StatusOr<Pin> pin = Enter();
  if (!pin.ok()) return pin.status();
  const Segment& seg = *segment_;
  const Header& h = seg.header();
  auto bad = [&](uint64_t offset, absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat(seg.Describe(), ": offset ", offset, ": ", what));
  };
  if (h.magic != kMagic || h.format != FormatWord()) {
    return bad(0, "header magic or format word changed");
  }
  // Every record start, from a bounds-checked walk.
  std::vector<uint64_t> blobs;
  uint64_t filler_bytes = 0;
  absl::Status walk = WalkHeap(seg, [&](uint64_t offset, BlobHeader b) {
    if (b.is_filler()) {
      filler_bytes += b.size_bytes();
    } else {
      blobs.push_back(offset);
    }
    return true;
  });
  if (!walk.ok()) return walk;
  const uint64_t top = h.top.load(std::memory_order_acquire);
  const Table table = this->table();  // in scope: the live table stays
  const uint64_t table_offset = seg.table_offset();
  const uint64_t mask = table.capacity() - 1;
  // For each blob, 1 + the index of the first slot that points at it (0:
  // none so far).
  std::vector<uint64_t> referenced_by(blobs.size(), 0);
  uint64_t live = 0, used = 0, live_bytes = 0;
  for (uint64_t i = 0; i <= mask; ++i) {
    const Slot& slot = table.slot(i);
    const uint64_t hash = slot.hash.load(std::memory_order_acquire);
    const uint64_t word = slot.addr.load(std::memory_order_acquire);
    const uint64_t addr = AddrOffset(word);
    const uint64_t slot_offset = table_offset + i * sizeof(Slot);
    if (hash == 0) {
      if (word != 0) return bad(slot_offset, "empty slot with an address");
      continue;
    }
    ++used;
    if ((hash & mask) != i) {
      // Linear probing: every slot between the home and here is occupied.
      for (uint64_t j = hash & mask; j != i; j = (j + 1) & mask) {
        if (table.slot(j).hash.load(std::memory_order_relaxed) == 0) {
          return bad(slot_offset, absl::StrCat("slot ", i, " unreachable: ",
                                               "empty slot ", j, " before it"));
        }
      }
    }
    if (word == 0) continue;
    ++live;
    if (addr < h.heap_start || addr >= top || addr % 8) {
      return bad(slot_offset, absl::StrCat("slot ", i, " points at ", addr,
                                           ", outside the heap"));
    }
    auto it = std::lower_bound(blobs.begin(), blobs.end(), addr);
    if (it == blobs.end() || *it != addr) {
      return bad(addr, absl::StrCat("slot ", i, " points inside a record"));
    }
    const size_t index = static_cast<size_t>(it - blobs.begin());
    if (referenced_by[index] != 0) {
      return bad(addr, absl::StrCat("blob referenced by two slots, ",
                                    referenced_by[index] - 1, " and ", i));
    }
    referenced_by[index] = i + 1;
    const BlobRef b(seg.base() + addr);
    const BlobHeader bh = b.header();
    // The size first: a one-word record has no key hash to read, and its
    // second word may lie past the end of the file.
    if (bh.size_bytes() < 16 + 8 * uint64_t{bh.ndims} + (bh.has_key ? 8 : 0)) {
      return bad(addr, "blob smaller than its own prefix");
    }
    if (b.key_hash() != hash) {
      return bad(addr, absl::StrFormat("stored hash %#x, slot %d holds %#x",
                                       b.key_hash(), i, hash));
    }
    const std::span<const int64_t> dims = b.dims();
    absl::StatusOr<int64_t> count = CheckedElementCount(dims);
    if (!count.ok()) return bad(addr, count.status().message());
    uint64_t key_len = 0;
    if (bh.has_key) {
      std::memcpy(&key_len, seg.base() + addr + b.key_offset(), 8);
      if (key_len > bh.size_bytes()) return bad(addr, "key longer than blob");
    }
    absl::StatusOr<BlobGeometry> g =
        ComputeGeometry(static_cast<Kind>(bh.kind), bh.ndims, *count,
                        bh.has_key, key_len, bh.has_checksum);
    if (!g.ok() || g->total_bytes != bh.size_bytes() ||
        g->align_code != bh.align_code || addr % g->alignment != 0) {
      return bad(addr, absl::StrCat("size ", bh.size_bytes(),
                                    " or alignment does not match its kind, ",
                                    "dims and key"));
    }
    // A key this heap hashed must hash to its slot's hash again.
    if (bh.key_hashed && (!bh.has_key || keys_.KeyHash(b.key()) != hash)) {
      return bad(addr, absl::StrFormat("the stored key hashes to %#x, slot %d "
                                       "holds %#x",
                                       bh.has_key ? keys_.KeyHash(b.key()) : 0,
                                       i, hash));
    }
    if (bh.has_checksum && b.ComputeChecksum() != b.stored_checksum()) {
      return bad(addr,
                 absl::StrFormat("payload checksum %#x, the blob records "
                                 "%#x",
                                 b.ComputeChecksum(), b.stored_checksum()));
    }
    // The slot's tag is a function of the stored key (hashtable/store.h):
    // a changed key byte, or a slot pointed at another key's blob, shows.
    const uint16_t tag = bh.has_key ? keys_.KeyTag(b.key()) : 0;
    if (AddrTag(word) != tag) {
      return bad(addr, absl::StrFormat("slot %d has key tag %#x, the stored "
                                       "key's tag is %#x",
                                       i, AddrTag(word), tag));
    }
    live_bytes += bh.size_bytes();
  }
  if (absl::StatusOr<DepTable> deps = DepTable::Of(seg); deps.ok()) {
    if (absl::Status s = deps->Check(); !s.ok()) return s;
  }
  // Counters are exact unless a process died since the last collection:
  // one killed between a table CAS and its counter update leaves them off
  // by that operation until the collector recounts.
  bool unclean = h.unclean_exits.load(std::memory_order_relaxed) != 0;
  for (uint32_t e = 0; e < h.max_sessions && !unclean; ++e) {
    const SessionEntry& entry = seg.registry()[e];
    const uint64_t owner = entry.owner_pid.load(std::memory_order_acquire);
    unclean = owner != kSessionFree && !OwnerAlive(entry, owner);
  }
  if (unclean) return absl::OkStatus();
  // stats() clamps its differences at 0, which would hide counters that a
  // corrupt file drove negative (more slots cleared than claimed, say) or
  // past 2^64, until the next operation exposed them: check the sums first.
  uint64_t sum[kNumCounters];
  if (!SumCounters(seg, sum)) {
    return absl::DataLossError(
        absl::StrCat(seg.Describe(), ": a counter overflows 64 bits"));
  }
  if (sum[kSlotsClaimed] < sum[kTombstonesCleared] ||
      sum[kBlobsPublished] < sum[kBlobsUnlinked] ||
      sum[kBytesPublished] < sum[kBytesUnlinked]) {
    return absl::DataLossError(
        absl::StrCat(seg.Describe(), ": counters ran negative: slots claimed ",
                     sum[kSlotsClaimed], ", cleared ", sum[kTombstonesCleared],
                     "; blobs published ", sum[kBlobsPublished], ", unlinked ",
                     sum[kBlobsUnlinked], "; bytes published ",
                     sum[kBytesPublished], ", unlinked ", sum[kBytesUnlinked]));
  }
  const Stats s = GetStats();
  if (s.live_blobs != live || s.table_used != used ||
      s.live_bytes != live_bytes) {
    return absl::DataLossError(absl::StrCat(
        seg.Describe(), ": counters disagree with the table: live blobs ",
        s.live_blobs, " vs ", live, ", used slots ", s.table_used, " vs ", used,
        ", live bytes ", s.live_bytes, " vs ", live_bytes));
  }
  return absl::OkStatus();
}

}  // namespace shmheap::internal
