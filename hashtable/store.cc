#include "hashtable/store.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "heap/array_view.h"
#include "heap/blob.h"
#include "heap/strings.h"
#include "heap/testing_hooks.h"

namespace shmheap::internal {
Store::Store(std::unique_ptr<Segment> segment)
    : segment_(std::move(segment)),
      seed_(segment_->header().seed),
      keys_(nullptr, 0, segment_->base(), seed_,
            (segment_->header().flags & kFlagKeepKeys) != 0),
      checksums_((segment_->header().flags & kFlagChecksums) != 0) {}

Store::~Store() {
  LocalSession* s = session_.load(std::memory_order_acquire);
  // A session inherited across fork belongs to the parent: leaving it would
  // free the parent's registry entry, so the child leaks it.
  if (s != nullptr && s->fork_generation() == ForkGeneration()) delete s;
}

absl::StatusOr<LocalSession*> Store::Session() const {
  // Acquire: pairs with the release store below.
  LocalSession* s = session_.load(std::memory_order_acquire);
  if (s != nullptr && s->fork_generation() == ForkGeneration()) return s;
  std::lock_guard<std::mutex> lock(session_mu_);
  s = session_.load(std::memory_order_acquire);
  if (s != nullptr && s->fork_generation() == ForkGeneration()) return s;
  absl::StatusOr<std::unique_ptr<LocalSession>> joined =
      LocalSession::Join(segment_.get());
  if (!joined.ok()) return joined.status();
  s = joined->release();
  // Release: a thread that loads the pointer sees the joined session.
  session_.store(s, std::memory_order_release);
  return s;
}

absl::StatusOr<Pin> Store::Enter() const {
  absl::StatusOr<LocalSession*> s = Session();
  if (!s.ok()) return s.status();
  return (*s)->Enter();
}

absl::StatusOr<Store::InScope> Store::EnterSession() const {
  absl::StatusOr<LocalSession*> s = Session();
  if (!s.ok()) return s.status();
  absl::StatusOr<Pin> pin = (*s)->Enter();
  if (!pin.ok()) return pin.status();
  return InScope{*s, *std::move(pin)};
}

std::string Store::Name(const ResolvedKey& key) const {
  if (!key.bytes.empty()) {
    return absl::StrCat("key \"",
                        absl::CHexEscape(Sv(key.bytes.substr(0, 200))), "\"");
  }
  return absl::StrFormat("hash %#x", key.hash);
}

absl::Status Store::Collision(const ResolvedKey& key, uint64_t offset) const {
  return absl::AlreadyExistsError(absl::StrCat(
      segment_->Describe(), ": ", Name(key), " has the same 64-bit hash as ",
      "the stored key \"",
      absl::CHexEscape(
          Sv(BlobRef(segment_->base() + offset).key().substr(0, 200))),
      "\""));
}

absl::Status Store::NotFound(const ResolvedKey& key) const {
  return absl::NotFoundError(
      absl::StrCat(segment_->Describe(), ": no ", Name(key)));
}

absl::StatusOr<int64_t> Store::Elements(const ResolvedKey& key,
                                        std::span<const int64_t> dims) const {
  absl::StatusOr<int64_t> elements = CheckedElementCount(dims);
  if (!elements.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": ", elements.status().message()));
  }
  return elements;
}

absl::StatusOr<Store::Draft> Store::Allocate(LocalSession& session,
                                             const ResolvedKey& key, Kind kind,
                                             std::span<const int64_t> dims,
                                             int64_t elements,
                                             Layout layout) const {
  if (!IsValidKind(static_cast<uint8_t>(kind))) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": invalid kind ", static_cast<int>(kind)));
  }
  if (layout != Layout::kC && layout != Layout::kFortran) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": invalid layout ", static_cast<int>(layout)));
  }
  absl::StatusOr<BlobGeometry> g =
      ComputeGeometry(kind, static_cast<int>(dims.size()), elements,
                      key.has_key, key.bytes.size(), checksums_);
  if (!g.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": ", g.status().message()));
  }
  const BlobHeader h =
      MakeBlobHeader(*g, kind, layout, static_cast<int>(dims.size()),
                     key.has_key, checksums_, key.key_hashed);
  absl::StatusOr<uint64_t> offset =
      session.Allocate(h.Encode(), g->total_bytes, g->alignment);
  if (!offset.ok()) {
    return absl::Status(
        offset.status().code(),
        absl::StrCat(Name(key), ": ", offset.status().message()));
  }
  std::byte* payload = WriteBlobPrefix(segment_->base() + *offset, *g, h,
                                       key.hash, dims, key.bytes);
  return Draft{*offset, payload, g->payload_bytes};
}

absl::StatusOr<bool> Store::Publish(LocalSession& session,
                                    const ResolvedKey& key, uint64_t blob,
                                    bool replace) const {
  bool claimed = false;
  const Table table = this->table();
  absl::StatusOr<uint64_t> index = table.FindOrClaim(key.hash, &claimed);
  if (!index.ok()) {
    // FindOrClaim's one error: the table is full (still marked as such,
    // for the Heap layer's IsTableFull).
    return TableFullError(absl::StrCat(segment_->Describe(), ": ", Name(key),
                                       ": ", index.status().message()));
  }
  RunTestingHook(TestingPoint::kSlotClaimed);
  if (claimed) {
    session.Count(kSlotsClaimed, 1);
    if (table.ProbeDistance(key.hash, *index) >= kGrowthProbeDistance) {
      // Relaxed: a hint (TakeGrowthRequest).
      growth_requested_.store(true, std::memory_order_relaxed);
    }
  }
  const BlobRef ref(segment_->base() + blob);
  const BlobHeader header = ref.header();
  const uint64_t bytes = header.size_bytes();
  if (header.has_checksum) {
    // The payload is final now (Reserve's caller has filled it): seal it.
    // The release CAS below publishes the checksum with the payload.
    const uint64_t sum = ref.ComputeChecksum();
    std::memcpy(segment_->base() + blob + ref.checksum_offset(), &sum, 8);
  }
  const uint64_t word = AddrWord(blob, key.tag);
  uint64_t expected = replace ? table.LoadAddr(*index) : 0;
  for (;;) {
    if (expected != 0 && !keys_.Matches(AddrOffset(expected), key)) {
      return Collision(key, AddrOffset(expected));
    }
    if (expected != 0 && !replace) return false;  // write-once: taken
    if (table.CasAddr(*index, expected, word)) break;
    // `expected` now holds the value that won; look at it again.
  }
  RunTestingHook(TestingPoint::kPublished);
  session.Count(kBlobsPublished, 1);
  session.Count(kBytesPublished, bytes);
  if (expected != 0) {
    session.Count(kBlobsUnlinked, 1);
    session.Count(
        kBytesUnlinked,
        BlobRef(segment_->base() + AddrOffset(expected)).header().size_bytes());
  }
  return replace ? expected != 0 : true;
}

absl::StatusOr<bool> Store::Write(const ResolvedKey& key, Kind kind,
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
    const Table table = this->table();
    if (std::optional<uint64_t> i = table.Find(key.hash)) {
      if (const uint64_t word = table.LoadAddr(*i); word != 0) {
        if (!keys_.Matches(AddrOffset(word), key)) {
          return Collision(key, AddrOffset(word));
        }
        return false;
      }
    }
  }
  absl::StatusOr<Draft> draft =
      Allocate(session, key, kind, dims, *elements, layout);
  if (!draft.ok()) return draft.status();
  if (!data.empty()) std::memcpy(draft->payload, data.data(), data.size());
  RunTestingHook(TestingPoint::kBlobWritten);
  return Publish(session, key, draft->offset, replace);
}

absl::StatusOr<Store::Reservation> Store::Reserve(const ResolvedKey& key,
                                                  Kind kind,
                                                  std::span<const int64_t> dims,
                                                  Layout layout) const {
  absl::StatusOr<int64_t> elements = Elements(key, dims);
  if (!elements.ok()) return elements.status();
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  absl::StatusOr<Draft> draft =
      Allocate(*scope->session, key, kind, dims, *elements, layout);
  if (!draft.ok()) return draft.status();
  return Reservation{draft->offset, draft->payload, draft->payload_bytes,
                     std::move(scope->pin)};
}

absl::StatusOr<bool> Store::PublishReserved(const ResolvedKey& key,
                                            uint64_t blob, bool replace) const {
  absl::StatusOr<LocalSession*> session = Session();
  if (!session.ok()) return session.status();
  return Publish(**session, key, blob, replace);
}

absl::Status Store::Remove(const ResolvedKey& key) const {
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  LocalSession& session = *scope->session;
  const Table table = this->table();
  std::optional<uint64_t> i = table.Find(key.hash);
  uint64_t expected = i ? table.LoadAddr(*i) : 0;
  for (;;) {
    if (expected == 0 || !keys_.Matches(AddrOffset(expected), key)) {
      return NotFound(key);
    }
    if (table.CasAddr(*i, expected, 0)) break;
  }
  session.Count(kBlobsUnlinked, 1);
  session.Count(
      kBytesUnlinked,
      BlobRef(segment_->base() + AddrOffset(expected)).header().size_bytes());
  return absl::OkStatus();
}

absl::Status Store::Move(const ResolvedKey& from, const ResolvedKey& to) const {
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  LocalSession& session = *scope->session;
  // The scope holds across the Publish below: the table stays this one.
  const Table table = this->table();
  std::optional<uint64_t> i = table.Find(from.hash);
  const uint64_t source = i ? table.LoadAddr(*i) : 0;
  if (source == 0 || !keys_.Matches(AddrOffset(source), from)) {
    return absl::NotFoundError(
        absl::StrCat(segment_->Describe(), ": move: no ", Name(from)));
  }
  const BlobRef b(segment_->base() + AddrOffset(source));
  const BlobHeader h = b.header();
  absl::StatusOr<int64_t> elements = Elements(to, b.dims());
  if (!elements.ok()) return elements.status();
  absl::StatusOr<Draft> draft = Allocate(session, to, static_cast<Kind>(h.kind),
                                         b.dims(), *elements, h.layout);
  if (!draft.ok()) return draft.status();
  if (draft->payload_bytes) {
    std::memcpy(draft->payload, b.payload(), draft->payload_bytes);
  }
  absl::StatusOr<bool> added = Publish(session, to, draft->offset, false);
  if (!added.ok()) return added.status();
  if (!*added) {
    return absl::AlreadyExistsError(absl::StrCat(
        segment_->Describe(), ": move: ", Name(to), " already has a value"));
  }
  uint64_t expected = source;
  if (!table.CasAddr(*i, expected, 0)) {
    return absl::AbortedError(absl::StrCat(
        segment_->Describe(), ": move: ", Name(from),
        " changed during the move; ", Name(to), " holds the moved value"));
  }
  session.Count(kBlobsUnlinked, 1);
  session.Count(kBytesUnlinked, h.size_bytes());
  return absl::OkStatus();
}

bool Store::Contains(const ResolvedKey& key) const {
  const Header& h = segment_->header();
  // Acquire: pairs with the collector's seq_cst store that made the epoch
  // even, so the probe reads the table that collection left.
  const uint32_t epoch = h.gc_epoch.load(std::memory_order_acquire);
  if ((epoch & 1) == 0) {
    // Acquire: a table installed by a growth (a release store, made after
    // the epoch turned odd) is seen whole, and the epoch re-load below
    // comes after this load. The probe's slot loads are acquire loads too,
    // so the re-load comes after them; and a probe that read any slot or
    // table word the collector wrote makes the re-load see the odd epoch or
    // a later one. Otherwise everything it read is from before the
    // collection: a consistent table.
    const bool present =
        LookupOver(segment_->table(std::memory_order_acquire)).Contains(key);
    if (h.gc_epoch.load(std::memory_order_relaxed) == epoch) return present;
  }
  // A collection overlapped the probe: ask again inside the scope (which
  // waits for the collection to end).
  absl::StatusOr<Pin> pin = Enter();
  if (!pin.ok()) return false;
  return lookup().Contains(key);
}

size_t Store::ResolveGroup(
    const Table& table, std::span<const Key> keys, size_t base, bool for_find,
    ResolvedKey (&resolved)[kLookupGroup]) const noexcept {
  const size_t n = std::min(kLookupGroup, keys.size() - base);
  for (size_t k = 0; k < n; ++k) {
    resolved[k] = for_find ? keys_.ResolveForFind(keys[base + k])
                           : keys_.Resolve(keys[base + k]);
    table.Prefetch(resolved[k].hash);
  }
  return n;
}

size_t Store::FindMany(std::span<const Key> keys,
                       std::span<std::optional<RawRef>> out) const noexcept {
  // Group prefetching (Chen, Ailamaki, Gibbons, Mowry, "Improving hash join
  // performance through prefetching", ICDE 2004): hash a group and prefetch
  // its slots, then read the slots and prefetch their blobs, then compare
  // keys; the misses of one stage overlap instead of following each other.
  size_t found = 0;
  const Lookup lookup = this->lookup();
  ResolvedKey resolved[kLookupGroup];
  uint64_t words[kLookupGroup];
  for (size_t base = 0; base < keys.size(); base += kLookupGroup) {
    const size_t n =
        ResolveGroup(lookup.table(), keys, base, /*for_find=*/true, resolved);
    for (size_t k = 0; k < n; ++k) {
      words[k] = lookup.FindWord(resolved[k]);
      if (words[k] != 0) {
        __builtin_prefetch(segment_->base() + AddrOffset(words[k]), 0, 3);
      }
    }
    for (size_t k = 0; k < n; ++k) {
      std::optional<RawRef>& o = out[base + k];
      if (words[k] != 0 && lookup.Matches(AddrOffset(words[k]), resolved[k])) {
        o = lookup.Ref(AddrOffset(words[k]));
        ++found;
      } else {
        o.reset();
      }
    }
  }
  return found;
}

size_t Store::ContainsMany(std::span<const Key> keys,
                           std::span<bool> out) const noexcept {
  size_t found = 0;
  const Lookup lookup = this->lookup();
  ResolvedKey resolved[kLookupGroup];
  for (size_t base = 0; base < keys.size(); base += kLookupGroup) {
    const size_t n =
        ResolveGroup(lookup.table(), keys, base, /*for_find=*/false, resolved);
    for (size_t k = 0; k < n; ++k) {
      out[base + k] = lookup.Contains(resolved[k]);
      found += out[base + k];
    }
  }
  return found;
}

}  // namespace shmheap::internal
