#include "shmheap.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "heap/strings.h"
#include "heap/testing_hooks.h"
#include "heap/walk.h"

namespace shmheap {
namespace internal {

// A key after hashing: the remapped hash, and the bytes to store/compare.
struct Key {
  uint64_t hash;
  std::string_view bytes;
  bool has_key;  // store and compare `bytes`
};

struct HeapState {
  explicit HeapState(std::unique_ptr<Segment> seg)
      : segment(std::move(seg)),
        table(segment->slots(), segment->header().table_slots_log2),
        keep_keys((segment->header().flags & kFlagKeepKeys) != 0),
        seed(segment->header().seed) {}

  ~HeapState() {
    LocalSession* s = session.load(std::memory_order_acquire);
    // A session inherited across fork belongs to the parent: leaving it
    // would free the parent's registry entry, so the child leaks it.
    if (s != nullptr && s->fork_generation() == ForkGeneration()) delete s;
  }

  // This process's session, joining on first use and again after fork.
  absl::StatusOr<LocalSession*> Session() const {
    // Acquire: pairs with the release store below.
    LocalSession* s = session.load(std::memory_order_acquire);
    if (s != nullptr && s->fork_generation() == ForkGeneration()) return s;
    std::lock_guard<std::mutex> lock(session_mu);
    s = session.load(std::memory_order_acquire);
    if (s != nullptr && s->fork_generation() == ForkGeneration()) return s;
    absl::StatusOr<std::unique_ptr<LocalSession>> joined =
        LocalSession::Join(segment.get());
    if (!joined.ok()) return joined.status();
    s = joined->release();
    session.store(s, std::memory_order_release);
    return s;
  }

  // This process's session, in scope: how every writing operation starts.
  struct InScope {
    LocalSession* session;
    Pin pin;
  };
  absl::StatusOr<InScope> EnterSession() const {
    absl::StatusOr<LocalSession*> s = Session();
    if (!s.ok()) return s.status();
    absl::StatusOr<Pin> pin = (*s)->Enter();
    if (!pin.ok()) return pin.status();
    return InScope{*s, *std::move(pin)};
  }

  absl::StatusOr<Pin> Enter() const {
    absl::StatusOr<LocalSession*> s = Session();
    if (!s.ok()) return s.status();
    return (*s)->Enter();
  }

  Key Resolve(std::string_view key) const {
    return {Table::Remap(XXH3_64bits_withSeed(key.data(), key.size(), seed)),
            key, keep_keys};
  }
  Key Resolve(HashedKey key) const {
    return {Table::Remap(key.hash), key.key, keep_keys && !key.key.empty()};
  }

  BlobRef Blob(uint64_t offset) const {
    return BlobRef(segment->base() + offset);
  }
  bool Matches(uint64_t offset, const Key& key) const {
    const BlobRef b = Blob(offset);
    if (!key.has_key || !b.header().has_key) return true;
    return b.key() == key.bytes;
  }
  std::string Name(const Key& key) const {
    if (!key.bytes.empty()) {
      return absl::StrCat("key \"",
                          absl::CHexEscape(Sv(key.bytes.substr(0, 200))), "\"");
    }
    return absl::StrFormat("hash %#x", key.hash);
  }
  absl::Status Collision(const Key& key, uint64_t offset) const {
    return absl::AlreadyExistsError(absl::StrCat(
        segment->Describe(), ": ", Name(key), " has the same 64-bit hash as ",
        "the stored key \"",
        absl::CHexEscape(Sv(Blob(offset).key().substr(0, 200))), "\""));
  }

  // A blob allocated and filled up to its payload.
  struct Draft {
    uint64_t offset;
    std::byte* payload;
    uint64_t payload_bytes;
    uint64_t total_bytes;
  };

  // The number of elements `dims` describe, or kInvalidArgument naming
  // the key.
  absl::StatusOr<int64_t> Elements(const Key& key,
                                   std::span<const int64_t> dims) const {
    absl::StatusOr<int64_t> elements = CheckedElementCount(dims);
    if (!elements.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(key), ": ", elements.status().message()));
    }
    return elements;
  }

  // REQUIRES: `elements` is Elements(key, dims).
  absl::StatusOr<Draft> Allocate(LocalSession& session, const Key& key,
                                 Kind kind, std::span<const int64_t> dims,
                                 int64_t elements, Layout layout) const {
    if (!IsValidKind(static_cast<uint8_t>(kind))) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(key), ": invalid kind ", static_cast<int>(kind)));
    }
    if (layout != Layout::kC && layout != Layout::kFortran) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(key), ": invalid layout ", static_cast<int>(layout)));
    }
    absl::StatusOr<BlobGeometry> g =
        ComputeGeometry(kind, static_cast<int>(dims.size()), elements,
                        key.has_key, key.bytes.size());
    if (!g.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(key), ": ", g.status().message()));
    }
    BlobHeader h;
    h.size_words = g->total_bytes / 8;
    h.kind = static_cast<uint8_t>(kind);
    h.ndims = static_cast<uint8_t>(dims.size());
    h.layout = layout;
    h.has_key = key.has_key;
    h.align_code = g->align_code;
    absl::StatusOr<uint64_t> offset =
        session.Allocate(h.Encode(), g->total_bytes, g->alignment);
    if (!offset.ok()) {
      return absl::Status(
          offset.status().code(),
          absl::StrCat(Name(key), ": ", offset.status().message()));
    }
    std::byte* payload =
        WriteBlobPrefix(segment->base() + *offset, *g, kind, layout, key.hash,
                        dims, key.has_key, key.bytes);
    return Draft{*offset, payload, g->payload_bytes, g->total_bytes};
  }

  // Publishes `blob` under `key`: write-once (Add) or unconditionally
  // (Replace). REQUIRES: in scope; the blob is completely written.
  absl::StatusOr<bool> Publish(LocalSession& session, const Key& key,
                               uint64_t blob, bool replace) const {
    bool claimed = false;
    absl::StatusOr<uint64_t> index = table.FindOrClaim(key.hash, &claimed);
    if (!index.ok()) {
      return absl::Status(index.status().code(),
                          absl::StrCat(segment->Describe(), ": ", Name(key),
                                       ": ", index.status().message()));
    }
    RunTestingHook(TestingPoint::kSlotClaimed);
    if (claimed) session.Count(kSlotsClaimed, 1);
    const uint64_t bytes = Blob(blob).header().size_bytes();
    uint64_t expected = replace ? table.LoadAddr(*index) : 0;
    for (;;) {
      if (expected != 0 && !Matches(expected, key)) {
        return Collision(key, expected);
      }
      if (expected != 0 && !replace) return false;  // write-once: taken
      if (table.CasAddr(*index, expected, blob)) break;
      // `expected` now holds the value that won; look at it again.
    }
    RunTestingHook(TestingPoint::kPublished);
    session.Count(kBlobsPublished, 1);
    session.Count(kBytesPublished, bytes);
    if (expected != 0) {
      session.Count(kBlobsUnlinked, 1);
      session.Count(kBytesUnlinked, Blob(expected).header().size_bytes());
    }
    return replace ? expected != 0 : true;
  }

  absl::StatusOr<bool> Write(const Key& key, Kind kind,
                             std::span<const int64_t> dims, Layout layout,
                             std::span<const std::byte> data,
                             bool replace) const {
    absl::StatusOr<int64_t> elements = Elements(key, dims);
    if (!elements.ok()) return elements.status();
    if (IsValidKind(static_cast<uint8_t>(kind)) &&
        data.size() != static_cast<uint64_t>(*elements) * ElementSize(kind)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(key), ": ", data.size(), " bytes of data for ",
                       *elements, " elements of ", Sv(KindName(kind))));
    }
    absl::StatusOr<InScope> scope = EnterSession();
    if (!scope.ok()) return scope.status();
    LocalSession& session = *scope->session;
    if (!replace) {
      // Write-once fast path: an existing value means no blob is built.
      if (std::optional<uint64_t> i = table.Find(key.hash)) {
        if (uint64_t addr = table.LoadAddr(*i); addr != 0) {
          if (!Matches(addr, key)) return Collision(key, addr);
          return false;
        }
      }
    }
    absl::StatusOr<Draft> draft =
        Allocate(session, key, kind, dims, *elements, layout);
    if (!draft.ok()) return draft.status();
    if (data.size() != draft->payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(key), ": ", data.size(), " bytes of data for ",
          draft->payload_bytes, " bytes of ", Sv(KindName(kind)), " array"));
    }
    if (!data.empty()) std::memcpy(draft->payload, data.data(), data.size());
    RunTestingHook(TestingPoint::kBlobWritten);
    return Publish(session, key, draft->offset, replace);
  }

  absl::StatusOr<RawView> Get(const Key& key) const {
    absl::StatusOr<Pin> pin = Enter();
    if (!pin.ok()) return pin.status();
    std::optional<uint64_t> i = table.Find(key.hash);
    const uint64_t addr = i ? table.LoadAddr(*i) : 0;
    if (addr == 0 || !Matches(addr, key)) {
      return absl::NotFoundError(
          absl::StrCat(segment->Describe(), ": no ", Name(key)));
    }
    const BlobRef b = Blob(addr);
    const BlobHeader h = b.header();
    return RawView(b.payload(), static_cast<Kind>(h.kind), b.dims(), h.layout,
                   *std::move(pin));
  }

  bool Contains(const Key& key) const {
    absl::StatusOr<Pin> pin = Enter();
    if (!pin.ok()) return false;
    std::optional<uint64_t> i = table.Find(key.hash);
    const uint64_t addr = i ? table.LoadAddr(*i) : 0;
    return addr != 0 && Matches(addr, key);
  }

  absl::Status Remove(const Key& key) const {
    absl::StatusOr<InScope> scope = EnterSession();
    if (!scope.ok()) return scope.status();
    LocalSession& session = *scope->session;
    std::optional<uint64_t> i = table.Find(key.hash);
    uint64_t expected = i ? table.LoadAddr(*i) : 0;
    for (;;) {
      if (expected == 0 || !Matches(expected, key)) {
        return absl::NotFoundError(
            absl::StrCat(segment->Describe(), ": no ", Name(key)));
      }
      if (table.CasAddr(*i, expected, 0)) break;
    }
    session.Count(kBlobsUnlinked, 1);
    session.Count(kBytesUnlinked, Blob(expected).header().size_bytes());
    return absl::OkStatus();
  }

  absl::Status Move(const Key& from, const Key& to) const {
    absl::StatusOr<InScope> scope = EnterSession();
    if (!scope.ok()) return scope.status();
    LocalSession& session = *scope->session;
    std::optional<uint64_t> i = table.Find(from.hash);
    uint64_t source = i ? table.LoadAddr(*i) : 0;
    if (source == 0 || !Matches(source, from)) {
      return absl::NotFoundError(
          absl::StrCat(segment->Describe(), ": move: no ", Name(from)));
    }
    const BlobRef b = Blob(source);
    const BlobHeader h = b.header();
    absl::StatusOr<int64_t> elements = Elements(to, b.dims());
    if (!elements.ok()) return elements.status();
    absl::StatusOr<Draft> draft = Allocate(
        session, to, static_cast<Kind>(h.kind), b.dims(), *elements, h.layout);
    if (!draft.ok()) return draft.status();
    if (draft->payload_bytes) {
      std::memcpy(draft->payload, b.payload(), draft->payload_bytes);
    }
    absl::StatusOr<bool> added = Publish(session, to, draft->offset, false);
    if (!added.ok()) return added.status();
    if (!*added) {
      return absl::AlreadyExistsError(absl::StrCat(
          segment->Describe(), ": move: ", Name(to), " already has a value"));
    }
    if (!table.CasAddr(*i, source, 0)) {
      return absl::AbortedError(absl::StrCat(
          segment->Describe(), ": move: ", Name(from),
          " changed during the move; ", Name(to), " holds the moved value"));
    }
    session.Count(kBlobsUnlinked, 1);
    session.Count(kBytesUnlinked, h.size_bytes());
    return absl::OkStatus();
  }

  std::unique_ptr<Segment> segment;
  Table table;
  bool keep_keys;
  uint64_t seed;
  mutable std::mutex session_mu;
  mutable std::atomic<LocalSession*> session{nullptr};
};

}  // namespace internal

using internal::HeapState;
using internal::Segment;
using internal::SegmentOptions;

namespace {

// The counters summed over the header and every session entry (relaxed
// loads: statistics, summed without a snapshot). False when a sum passed
// 2^64, which only a corrupt file can make happen; the sums then wrap.
bool SumCounters(const Segment& seg, uint64_t (&sum)[internal::kNumCounters]) {
  const internal::Header& h = seg.header();
  bool in_range = true;
  for (int c = 0; c < internal::kNumCounters; ++c) {
    sum[c] = h.retired_counters[c].load(std::memory_order_relaxed);
    for (uint32_t e = 0; e < h.max_sessions; ++e) {
      in_range &= !__builtin_add_overflow(
          sum[c], seg.registry()[e].counters[c].load(std::memory_order_relaxed),
          &sum[c]);
    }
  }
  return in_range;
}

SegmentOptions ToSegmentOptions(const Options& o) {
  SegmentOptions s;
  s.heap_bytes = o.heap_bytes;
  s.table_slots_log2 = o.table_slots_log2;
  s.max_sessions = o.max_sessions;
  s.keep_keys = o.keep_keys;
  s.chunk_bytes = o.chunk_bytes;
  s.min_available_bytes = o.min_available_bytes;
  s.seed = o.seed;
  return s;
}

}  // namespace

Heap::Heap(std::unique_ptr<HeapState> state) : state_(std::move(state)) {}
Heap::Heap(Heap&&) noexcept = default;
Heap& Heap::operator=(Heap&&) noexcept = default;
Heap::~Heap() = default;

absl::StatusOr<Heap> Heap::FromSegment(
    absl::StatusOr<std::unique_ptr<Segment>> segment) {
  if (!segment.ok()) return segment.status();
  auto state = std::make_unique<HeapState>(*std::move(segment));
  // Join now, so that creation and attach report a full registry (and a
  // collector that died mid-way) at once rather than on first use.
  absl::StatusOr<Pin> pin = state->Enter();
  if (!pin.ok()) return pin.status();
  pin->Reset();
  return Heap(std::move(state));
}

absl::StatusOr<Heap> Heap::Create(const Options& options) {
  return FromSegment(Segment::CreateAnonymous(ToSegmentOptions(options)));
}
absl::StatusOr<Heap> Heap::CreateNamed(std::string_view name,
                                       const Options& options) {
  return FromSegment(Segment::CreateNamed(name, ToSegmentOptions(options)));
}
absl::StatusOr<Heap> Heap::OpenNamed(std::string_view name) {
  return FromSegment(Segment::OpenNamed(name));
}
absl::Status Heap::UnlinkNamed(std::string_view name) {
  return Segment::UnlinkNamed(name);
}
absl::StatusOr<Heap> Heap::CreateFile(const std::string& path,
                                      const Options& options) {
  return FromSegment(Segment::CreateFile(path, ToSegmentOptions(options)));
}
absl::StatusOr<Heap> Heap::OpenFile(const std::string& path) {
  return FromSegment(Segment::OpenFile(path));
}

uint64_t Heap::Hash(std::string_view key) const {
  return state_->Resolve(key).hash;
}

absl::StatusOr<bool> Heap::AddRaw(std::string_view key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data) {
  return state_->Write(state_->Resolve(key), kind, dims, layout, data, false);
}
absl::StatusOr<bool> Heap::AddRaw(HashedKey key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data) {
  return state_->Write(state_->Resolve(key), kind, dims, layout, data, false);
}
absl::StatusOr<bool> Heap::ReplaceRaw(std::string_view key, Kind kind,
                                      std::span<const int64_t> dims,
                                      Layout layout,
                                      std::span<const std::byte> data) {
  return state_->Write(state_->Resolve(key), kind, dims, layout, data, true);
}
absl::StatusOr<bool> Heap::ReplaceRaw(HashedKey key, Kind kind,
                                      std::span<const int64_t> dims,
                                      Layout layout,
                                      std::span<const std::byte> data) {
  return state_->Write(state_->Resolve(key), kind, dims, layout, data, true);
}

absl::StatusOr<RawBuilder> Heap::ReserveRaw(std::string_view key, Kind kind,
                                            std::span<const int64_t> dims,
                                            Layout layout) {
  return ReserveRaw(HashedKey{state_->Resolve(key).hash, key}, kind, dims,
                    layout);
}

absl::StatusOr<RawBuilder> Heap::ReserveRaw(HashedKey hashed, Kind kind,
                                            std::span<const int64_t> dims,
                                            Layout layout) {
  const internal::Key key = state_->Resolve(hashed);
  absl::StatusOr<HeapState::InScope> scope = state_->EnterSession();
  if (!scope.ok()) return scope.status();
  absl::StatusOr<int64_t> elements = state_->Elements(key, dims);
  if (!elements.ok()) return elements.status();
  absl::StatusOr<HeapState::Draft> draft =
      state_->Allocate(*scope->session, key, kind, dims, *elements, layout);
  if (!draft.ok()) return draft.status();
  RawBuilder b;
  b.state_ = state_.get();
  b.hash_ = key.hash;
  b.blob_ = draft->offset;
  b.payload_ = draft->payload;
  b.payload_bytes_ = draft->payload_bytes;
  b.key_ = std::string(key.bytes);
  b.pin_ = std::move(scope->pin);
  return b;
}

absl::StatusOr<bool> RawBuilder::Publish() {
  if (state_ == nullptr || blob_ == 0) {
    return absl::FailedPreconditionError("builder already published");
  }
  absl::StatusOr<internal::LocalSession*> session = state_->Session();
  if (!session.ok()) return session.status();
  internal::Key key = state_->Resolve(HashedKey{hash_, key_});
  const uint64_t blob = std::exchange(blob_, 0);
  absl::StatusOr<bool> r = state_->Publish(**session, key, blob, replace_);
  pin_.Reset();
  return r;
}

absl::StatusOr<RawView> Heap::GetRaw(std::string_view key) const {
  return state_->Get(state_->Resolve(key));
}
absl::StatusOr<RawView> Heap::GetRaw(HashedKey key) const {
  return state_->Get(state_->Resolve(key));
}
bool Heap::Contains(std::string_view key) const {
  return state_->Contains(state_->Resolve(key));
}
bool Heap::Contains(HashedKey key) const {
  return state_->Contains(state_->Resolve(key));
}
absl::Status Heap::Remove(std::string_view key) {
  return state_->Remove(state_->Resolve(key));
}
absl::Status Heap::Remove(HashedKey key) {
  return state_->Remove(state_->Resolve(key));
}
absl::Status Heap::Move(std::string_view from, std::string_view to) {
  return state_->Move(state_->Resolve(from), state_->Resolve(to));
}
absl::Status Heap::Move(HashedKey from, HashedKey to) {
  return state_->Move(state_->Resolve(from), state_->Resolve(to));
}

absl::StatusOr<Pin> Heap::Enter() const { return state_->Enter(); }

absl::Status Heap::Verify() const {
  using namespace internal;
  absl::StatusOr<Pin> pin = state_->Enter();
  if (!pin.ok()) return pin.status();
  const Segment& seg = *state_->segment;
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
  const uint64_t mask = state_->table.capacity() - 1;
  std::vector<bool> referenced(blobs.size(), false);
  uint64_t live = 0, used = 0, live_bytes = 0;
  for (uint64_t i = 0; i <= mask; ++i) {
    const Slot& slot = state_->table.slot(i);
    const uint64_t hash = slot.hash.load(std::memory_order_acquire);
    const uint64_t addr = slot.addr.load(std::memory_order_acquire);
    const uint64_t slot_offset = h.table_offset + i * sizeof(Slot);
    if (hash == 0) {
      if (addr != 0) return bad(slot_offset, "empty slot with an address");
      continue;
    }
    ++used;
    if ((hash & mask) != i) {
      // Linear probing: every slot between the home and here is occupied.
      for (uint64_t j = hash & mask; j != i; j = (j + 1) & mask) {
        if (state_->table.slot(j).hash.load(std::memory_order_relaxed) == 0) {
          return bad(slot_offset, absl::StrCat("slot ", i, " unreachable: ",
                                               "empty slot ", j, " before it"));
        }
      }
    }
    if (addr == 0) continue;
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
    if (referenced[index]) return bad(addr, "blob referenced by two slots");
    referenced[index] = true;
    const BlobRef b = state_->Blob(addr);
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
    absl::StatusOr<BlobGeometry> g = ComputeGeometry(
        static_cast<Kind>(bh.kind), bh.ndims, *count, bh.has_key, key_len);
    if (!g.ok() || g->total_bytes != bh.size_bytes() ||
        g->align_code != bh.align_code || addr % g->alignment != 0) {
      return bad(addr, absl::StrCat("size ", bh.size_bytes(),
                                    " or alignment does not match its kind, ",
                                    "dims and key"));
    }
    live_bytes += bh.size_bytes();
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
  const Stats s = stats();
  if (s.live_blobs != live || s.table_used != used ||
      s.live_bytes != live_bytes) {
    return absl::DataLossError(absl::StrCat(
        seg.Describe(), ": counters disagree with the table: live blobs ",
        s.live_blobs, " vs ", live, ", used slots ", s.table_used, " vs ", used,
        ", live bytes ", s.live_bytes, " vs ", live_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<GcReport> Heap::Collect(const CollectOptions& options) {
  absl::StatusOr<internal::LocalSession*> session = state_->Session();
  if (!session.ok()) return session.status();
  return internal::Collect(*state_->segment, *session, options);
}

absl::StatusOr<GcReport> Heap::MaybeCollect(double overhead,
                                            const CollectOptions& options) {
  const Stats s = stats();
  const uint64_t used = s.live_bytes + s.dead_bytes;
  if (s.dead_bytes < state_->segment->header().chunk_bytes ||
      static_cast<double>(used) <
          overhead * static_cast<double>(s.live_bytes)) {
    return GcReport{};
  }
  return Collect(options);
}

const Segment& Heap::segment() const { return *state_->segment; }

Stats Heap::stats() const {
  using namespace internal;
  const Segment& seg = *state_->segment;
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
  s.table_slots = state_->table.capacity();
  s.table_used = sub(c[kSlotsClaimed], c[kTombstonesCleared]);
  s.live_blobs = sub(c[kBlobsPublished], c[kBlobsUnlinked]);
  s.table_tombstones = sub(s.table_used, s.live_blobs);
  s.heap_capacity = h.heap_limit - h.heap_start;
  s.heap_top = h.top.load(std::memory_order_relaxed) - h.heap_start;
  s.live_bytes = sub(c[kBytesPublished], c[kBytesUnlinked]);
  s.dead_bytes = sub(sub(c[kBytesAllocated], c[kBytesCollected]), s.live_bytes);
  s.collections = h.collections.load(std::memory_order_relaxed);
  return s;
}

}  // namespace shmheap
