#include "hashtable/store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/container/fixed_array.h"
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

absl::StatusOr<Store::Shape> Store::Prepare(const ResolvedKey& key, Kind kind,
                                            std::span<const int64_t> dims,
                                            int64_t elements, Layout layout,
                                            bool sealed) const {
  const bool checksum = sealed && checksums_;
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
                      key.has_key, key.bytes.size(), checksum);
  if (!g.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": ", g.status().message()));
  }
  return Shape{*g,
               MakeBlobHeader(*g, kind, layout, static_cast<int>(dims.size()),
                              key.has_key, checksum, key.key_hashed)};
}

absl::StatusOr<Store::Shape> Store::PrepareWrite(
    const ResolvedKey& key, Kind kind, std::span<const int64_t> dims,
    Layout layout, std::span<const std::byte> data, bool sealed) const {
  absl::StatusOr<int64_t> elements = Elements(key, dims);
  if (!elements.ok()) return elements.status();
  if (IsValidKind(static_cast<uint8_t>(kind)) &&
      data.size() != static_cast<uint64_t>(*elements) * ElementSize(kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Name(key), ": ", data.size(), " bytes of data for ",
                     *elements, " elements of ", Sv(KindName(kind))));
  }
  return Prepare(key, kind, dims, *elements, layout, sealed);
}

Store::Draft Store::Place(uint64_t offset, const Shape& shape,
                          const ResolvedKey& key,
                          std::span<const int64_t> dims) const {
  std::byte* payload =
      WriteBlobPrefix(segment_->base() + offset, shape.geometry, shape.header,
                      key.hash, dims, key.bytes);
  return Draft{offset, payload, shape.geometry.payload_bytes};
}

namespace {
// The status of a failed allocation, with the key named.
absl::Status AllocationError(const absl::Status& s, const std::string& name) {
  return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
}
}  // namespace

absl::StatusOr<Store::Draft> Store::Allocate(LocalSession& session,
                                             const ResolvedKey& key, Kind kind,
                                             std::span<const int64_t> dims,
                                             int64_t elements,
                                             Layout layout) const {
  absl::StatusOr<Shape> shape = Prepare(key, kind, dims, elements, layout);
  if (!shape.ok()) return shape.status();
  absl::StatusOr<uint64_t> offset =
      session.Allocate(shape->header.Encode(), shape->geometry.total_bytes,
                       shape->geometry.alignment);
  if (!offset.ok()) return AllocationError(offset.status(), Name(key));
  return Place(*offset, *shape, key, dims);
}

absl::StatusOr<uint64_t> Store::Claim(const ResolvedKey& key,
                                      bool* claimed) const {
  const Table table = this->table();
  absl::StatusOr<uint64_t> index = table.FindOrClaim(key.hash, claimed);
  if (!index.ok()) {
    // FindOrClaim's one error: the table is full (marked as such, for the
    // Heap layer's IsTableFull).
    return TableFullError(absl::StrCat(segment_->Describe(), ": ", Name(key),
                                       ": ", index.status().message()));
  }
  if (*claimed &&
      table.ProbeDistance(key.hash, *index) >= kGrowthProbeDistance) {
    // Relaxed: a hint (TakeGrowthRequest).
    growth_requested_.store(true, std::memory_order_relaxed);
  }
  return index;
}

void Store::WakeAll() const {
  Header& h = segment_->header();
  // Release: a waiter that reads the new value (acquire) sees the publish.
  h.publish_seq.fetch_add(1, std::memory_order_release);
  FutexWakeAll(&h.publish_seq);
}

absl::StatusOr<Store::Installed> Store::Install(const ResolvedKey& key,
                                                uint64_t index, uint64_t blob,
                                                bool replace) const {
  const BlobRef ref(segment_->base() + blob);
  if (ref.header().has_checksum) {
    // The payload is final now (the caller has filled it): seal it. The
    // release CAS below publishes the checksum with the payload.
    const uint64_t sum = ref.ComputeChecksum();
    std::memcpy(segment_->base() + blob + ref.checksum_offset(), &sum, 8);
  }
  const uint64_t word = AddrWord(blob, key.tag);
  uint64_t expected = replace ? table().LoadAddr(index) : 0;
  for (;;) {
    if (expected != 0 && !keys_.Matches(AddrOffset(expected), key)) {
      return Collision(key, AddrOffset(expected));
    }
    if (expected != 0 && !replace) {
      return Installed{false, expected};  // write-once: taken
    }
    if (table().CasAddr(index, expected, word)) break;
    // `expected` now holds the value that won; look at it again.
  }
  RunTestingHook(TestingPoint::kPublished);
  WakeWaiters();
  return Installed{true, expected};
}

void Store::CountUnlinked(uint64_t old_word, CounterDeltas& deltas) const {
  deltas.Add(kBlobsUnlinked, 1);
  deltas.Add(
      kBytesUnlinked,
      BlobRef(segment_->base() + AddrOffset(old_word)).header().size_bytes());
}

absl::StatusOr<bool> Store::Publish(LocalSession& session,
                                    const ResolvedKey& key, uint64_t blob,
                                    bool replace) const {
  bool claimed = false;
  absl::StatusOr<uint64_t> index = Claim(key, &claimed);
  if (!index.ok()) return index.status();
  RunTestingHook(TestingPoint::kSlotClaimed);
  absl::StatusOr<Installed> installed = Install(key, *index, blob, replace);
  CounterDeltas deltas;
  deltas.Add(kSlotsClaimed, claimed ? 1 : 0);
  if (installed.ok() && installed->won) {
    deltas.Add(kBlobsPublished, 1);
    deltas.Add(kBytesPublished,
               BlobRef(segment_->base() + blob).header().size_bytes());
    if (installed->old_word != 0) CountUnlinked(installed->old_word, deltas);
  }
  session.Count(deltas);
  if (!installed.ok()) return installed.status();
  if (!installed->won) return false;
  return replace ? installed->old_word != 0 : true;
}

absl::StatusOr<bool> Store::Write(const ResolvedKey& key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data, bool replace,
                                  bool sealed) const {
  // The slot's cache line is usually a miss (the table is large, and a
  // chunk's zeroing by the kernel evicts it): start it now, so it overlaps
  // the checks and the scope entry below instead of stalling the probe.
  table().PrefetchForWrite(key.hash);
  absl::StatusOr<Shape> shape =
      PrepareWrite(key, kind, dims, layout, data, sealed);
  if (!shape.ok()) return shape.status();
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  LocalSession& session = *scope->session;
  // One probe: the slot is found or claimed before the blob is built. Its
  // index stays valid while we are in scope (a slot's hash changes only
  // with the world stopped), and a claimed slot whose addr is still 0 reads
  // as absent, as between claim and publish before.
  bool claimed = false;
  absl::StatusOr<uint64_t> index = Claim(key, &claimed);
  if (!index.ok()) return index.status();
  RunTestingHook(TestingPoint::kSlotClaimed);
  const uint64_t blob_bytes = shape->geometry.total_bytes;
  CounterDeltas ahead;
  ahead.Add(kSlotsClaimed, claimed ? 1 : 0);
  if (!replace) {
    // Write-once fast path: an existing value means no blob is built.
    if (const uint64_t word = table().LoadAddr(*index); word != 0) {
      if (claimed) session.Count(ahead);
      if (!keys_.Matches(AddrOffset(word), key)) {
        return Collision(key, AddrOffset(word));
      }
      return false;
    }
  }
  // The publish is counted ahead, in the allocation's critical section
  // (session.h, "Counters"); a publish that does not happen is taken back
  // below.
  ahead.Add(kBlobsPublished, 1);
  ahead.Add(kBytesPublished, blob_bytes);
  absl::StatusOr<uint64_t> offset = session.Allocate(
      shape->header.Encode(), blob_bytes, shape->geometry.alignment, ahead);
  if (!offset.ok()) {
    if (claimed) {
      CounterDeltas claim;
      claim.Add(kSlotsClaimed, 1);
      session.Count(claim);
    }
    return AllocationError(offset.status(), Name(key));
  }
  const Draft draft = Place(*offset, *shape, key, dims);
  if (!data.empty()) std::memcpy(draft.payload, data.data(), data.size());
  RunTestingHook(TestingPoint::kBlobWritten);
  absl::StatusOr<Installed> installed =
      Install(key, *index, draft.offset, replace);
  if (installed.ok() && installed->won && installed->old_word == 0) {
    return replace ? false : true;
  }
  CounterDeltas after;
  if (!installed.ok() || !installed->won) {
    after.Add(kBlobsPublished, -uint64_t{1});
    after.Add(kBytesPublished, -blob_bytes);
  } else {
    CountUnlinked(installed->old_word, after);
  }
  session.Count(after);
  if (!installed.ok()) return installed.status();
  return replace ? installed->won : false;
}

namespace {
// Whether item `a` (key `ka`) has the blob shape of item `b` (key `kb`),
// which PrepareWrite accepted: the same kind, layout, dims and data size,
// and a key stored alike and of the same length.
bool SameShape(const AddItem& a, const ResolvedKey& ka, const AddItem& b,
               const ResolvedKey& kb) {
  return a.kind == b.kind && a.layout == b.layout &&
         a.data.size() == b.data.size() && ka.has_key == kb.has_key &&
         ka.key_hashed == kb.key_hashed && ka.bytes.size() == kb.bytes.size() &&
         std::equal(a.dims.begin(), a.dims.end(), b.dims.begin(), b.dims.end());
}
}  // namespace

absl::StatusOr<size_t> Store::AddMany(
    std::span<const AddItem> items,
    std::span<absl::StatusOr<bool>> results) const {
  if (results.size() != items.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AddMany: ", items.size(), " items but ", results.size(), " results"));
  }
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  LocalSession& session = *scope->session;
  // What each item needs between the phases below.
  enum class State : uint8_t {
    kAnswered,   // results[k] holds the item's outcome
    kWantsBlob,  // a slot with no value: allocate, write, publish
    kAllocated,  // the blob is at `offset`
  };
  struct Pending {
    ResolvedKey key;
    Shape shape;
    uint64_t index = 0;
    uint64_t offset = 0;
    State state = State::kAnswered;
  };
  absl::FixedArray<Pending, kLookupGroup> pending(items.size());
  CounterDeltas ahead;
  size_t wanted = 0;
  // The last item whose shape PrepareWrite checked (-1: none yet): in a
  // batch of values of one shape, the common case, only the first is
  // checked and the others take its shape.
  int64_t shaped = -1;
  // 1. Resolve and check every item, then find or claim its slot, a group
  //    at a time with the group's home slots prefetched (as FindMany), so
  //    the probes' misses overlap.
  for (size_t base = 0; base < items.size(); base += kLookupGroup) {
    const size_t n = std::min(kLookupGroup, items.size() - base);
    for (size_t k = base; k < base + n; ++k) {
      pending[k].key = keys_.Resolve(items[k].key);
      table().PrefetchForWrite(pending[k].key.hash);
    }
    for (size_t k = base; k < base + n; ++k) {
      Pending& p = pending[k];
      const AddItem& item = items[k];
      if (shaped >= 0 &&
          SameShape(item, p.key, items[shaped], pending[shaped].key)) {
        p.shape = pending[shaped].shape;
      } else {
        absl::StatusOr<Shape> shape =
            PrepareWrite(p.key, item.kind, item.dims, item.layout, item.data);
        if (!shape.ok()) {
          results[k] = shape.status();
          continue;
        }
        p.shape = *shape;
        shaped = static_cast<int64_t>(k);
      }
      bool claimed = false;
      absl::StatusOr<uint64_t> index = Claim(p.key, &claimed);
      if (!index.ok()) {
        results[k] = index.status();
        continue;
      }
      RunTestingHook(TestingPoint::kSlotClaimed);
      ahead.Add(kSlotsClaimed, claimed ? 1 : 0);
      p.index = *index;
      if (const uint64_t word = table().LoadAddr(p.index); word != 0) {
        if (keys_.Matches(AddrOffset(word), p.key)) {
          results[k] = false;
        } else {
          results[k] = Collision(p.key, AddrOffset(word));
        }
        continue;
      }
      // An earlier item of this batch with the same key has claimed the
      // slot too but publishes only in phase 3: this item then loses the
      // CAS there and answers false, as a sequential add would.
      p.state = State::kWantsBlob;
      ++wanted;
    }
  }
  // 2. Allocate every blob, and count the claims and the publishes ahead
  //    (session.h, "Counters"), under one acquisition of the allocation
  //    lock. A blob that does not fit fails its item alone (a later,
  //    smaller one may still fit); its error is named after the lock is
  //    released.
  if (wanted > 0 || ahead.v[kSlotsClaimed] != 0) {
    LocalSession::Locked locked(session);
    for (size_t k = 0; k < items.size(); ++k) {
      Pending& p = pending[k];
      if (p.state != State::kWantsBlob) continue;
      absl::StatusOr<uint64_t> offset =
          locked.Allocate(p.shape.header.Encode(), p.shape.geometry.total_bytes,
                          p.shape.geometry.alignment);
      if (!offset.ok()) {
        results[k] = offset.status();
        continue;
      }
      p.offset = *offset;
      p.state = State::kAllocated;
      ahead.Add(kBlobsPublished, 1);
      ahead.Add(kBytesPublished, p.shape.geometry.total_bytes);
    }
    locked.Count(ahead);
  }
  // 3. Write and publish each blob, in item order (so of two items with
  //    the same key, the first one wins, as with sequential adds).
  size_t published = 0;
  CounterDeltas after;
  for (size_t k = 0; k < items.size(); ++k) {
    Pending& p = pending[k];
    if (p.state == State::kWantsBlob) {  // its allocation failed
      results[k] = AllocationError(results[k].status(), Name(p.key));
    }
    if (p.state != State::kAllocated) continue;
    const Draft draft = Place(p.offset, p.shape, p.key, items[k].dims);
    if (!items[k].data.empty()) {
      std::memcpy(draft.payload, items[k].data.data(), items[k].data.size());
    }
    RunTestingHook(TestingPoint::kBlobWritten);
    absl::StatusOr<Installed> installed =
        Install(p.key, p.index, draft.offset, /*replace=*/false);
    if (installed.ok() && installed->won) {
      results[k] = true;
      ++published;
      continue;
    }
    // Counted ahead, not published: take it back.
    after.Add(kBlobsPublished, -uint64_t{1});
    after.Add(kBytesPublished, -p.shape.geometry.total_bytes);
    if (installed.ok()) {
      results[k] = false;
    } else {
      results[k] = installed.status();
    }
  }
  session.Count(after);
  return published;
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

absl::StatusOr<int64_t> Store::FetchAdd(const ResolvedKey& key,
                                        int64_t delta) const {
  for (int attempt = 0; attempt < 4; ++attempt) {
    {
      absl::StatusOr<InScope> scope = EnterSession();
      if (!scope.ok()) return scope.status();
      const uint64_t word = lookup().FindWord(key);
      if (word != 0) {
        const uint64_t offset = AddrOffset(word);
        if (!keys_.Matches(offset, key)) return Collision(key, offset);
        const BlobRef b(segment_->base() + offset);
        const BlobHeader h = b.header();
        if (h.ndims != 0 || h.kind != static_cast<uint8_t>(Kind::kInt64)) {
          return absl::InvalidArgumentError(
              absl::StrCat(segment_->Describe(), ": ", Name(key),
                           " is not a counter (a 0-dimensional int64 value)"));
        }
        if (h.has_checksum) {
          // Changing it would break its checksum, and Verify would call the
          // heap damaged.
          return absl::InvalidArgumentError(absl::StrCat(
              segment_->Describe(), ": ", Name(key),
              " holds a checksummed int64, not a counter (a counter is "
              "created by FetchAdd, without a checksum)"));
        }
        // The payload is 8-aligned (every blob's is) and lives in the
        // shared mapping: a lock-free 64-bit RMW works across processes.
        // acq_rel: the counter orders what its users publish around it
        // (hh_counter_next hands out ids for work that others then read).
        auto* value =
            reinterpret_cast<int64_t*>(const_cast<std::byte*>(b.payload()));
        static_assert(std::atomic_ref<int64_t>::is_always_lock_free);
        const int64_t before = std::atomic_ref<int64_t>(*value).fetch_add(
            delta, std::memory_order_acq_rel);
        RunTestingHook(TestingPoint::kFetchAddAdded);
        return before;
      }
    }
    // Absent: create it at 0 (write-once; a racing creator's blob wins and
    // both then add to it), then add in a new scope.
    const int64_t zero = 0;
    absl::StatusOr<bool> created =
        Write(key, Kind::kInt64, {}, Layout::kC,
              std::as_bytes(std::span<const int64_t>(&zero, 1)),
              /*replace=*/false, /*sealed=*/false);
    if (!created.ok()) return created.status();
  }
  return absl::AbortedError(absl::StrCat(segment_->Describe(), ": ", Name(key),
                                         ": the counter was removed under "
                                         "every try"));
}

bool Store::Unlink(const Table& table, const ResolvedKey& key,
                   CounterDeltas& deltas) const {
  std::optional<uint64_t> i = table.Find(key.hash);
  uint64_t expected = i ? table.LoadAddr(*i) : 0;
  for (;;) {
    if (expected == 0 || !keys_.Matches(AddrOffset(expected), key)) {
      return false;
    }
    if (table.CasAddr(*i, expected, 0)) break;
  }
  CountUnlinked(expected, deltas);
  return true;
}

absl::Status Store::Remove(const ResolvedKey& key) const {
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  CounterDeltas deltas;
  if (!Unlink(table(), key, deltas)) return NotFound(key);
  scope->session->Count(deltas);
  return absl::OkStatus();
}

absl::StatusOr<size_t> Store::RemoveMany(std::span<const Key> keys) const {
  absl::StatusOr<InScope> scope = EnterSession();
  if (!scope.ok()) return scope.status();
  const Table table = this->table();
  CounterDeltas deltas;
  size_t removed = 0;
  ResolvedKey resolved[kLookupGroup];
  for (size_t base = 0; base < keys.size(); base += kLookupGroup) {
    const size_t n =
        ResolveGroup(table, keys, base, /*for_find=*/false, resolved);
    for (size_t k = 0; k < n; ++k) {
      removed += Unlink(table, resolved[k], deltas);
    }
  }
  scope->session->Count(deltas);
  return removed;
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
  CounterDeltas deltas;
  CountUnlinked(source, deltas);
  session.Count(deltas);
  return absl::OkStatus();
}

bool Store::Contains(const ResolvedKey& key) const {
  const absl::StatusOr<bool> present = ContainsOrError(key);
  return present.ok() && *present;
}

absl::StatusOr<bool> Store::ContainsOrError(const ResolvedKey& key) const {
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
  if (!pin.ok()) return pin.status();
  return lookup().Contains(key);
}

namespace {
// std::atomic_thread_fence(seq_cst). GCC refuses fences under TSan (-Wtsan:
// TSan does not model them, and -Werror makes that an error), so the
// builtin is called with that warning silenced: the fence is still
// emitted, and what it orders (WaitFor's check after its RMW of another
// word) is no happens-before edge that TSan would need to see.
inline void SeqCstFence() {
#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#pragma GCC diagnostic pop
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}
}  // namespace

absl::Status Store::WaitFor(const ResolvedKey& key,
                            absl::Duration timeout) const {
  if (timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(segment_->Describe(), ": wait for ", Name(key),
                     ": negative timeout ", absl::FormatDuration(timeout)));
  }
  // A monotonic deadline: a change of the wall clock neither ends the wait
  // early nor makes it longer.
  const bool forever = timeout == absl::InfiniteDuration();
  const std::chrono::steady_clock::time_point deadline =
      forever ? std::chrono::steady_clock::time_point::max()
              : std::chrono::steady_clock::now() +
                    absl::ToChronoNanoseconds(timeout);
  absl::StatusOr<bool> present = ContainsOrError(key);
  if (!present.ok()) return present.status();
  if (*present) return absl::OkStatus();
  absl::StatusOr<LocalSession*> session = Session();
  if (!session.ok()) return session.status();
  Header& h = segment_->header();
  for (;;) {
    const std::chrono::steady_clock::duration left =
        deadline - std::chrono::steady_clock::now();
    if (!forever && left <= std::chrono::steady_clock::duration::zero()) {
      return absl::DeadlineExceededError(absl::StrCat(
          segment_->Describe(), ": ", Name(key), " was not published within ",
          absl::FormatDuration(timeout)));
    }
    (*session)->BeginWait();
    // Acquire: pairs with a publisher's release bump, so a waiter that
    // reads a bumped value sees the publish before it.
    const uint32_t seq = h.publish_seq.load(std::memory_order_acquire);
    // seq_cst: the fence that orders the check below after the increment
    // of `waiters` in BeginWait ("Waiting" in store.h: the check's loads
    // are acquire loads, which alone would not take part in the total
    // order).
    SeqCstFence();
    // Out of scope: the seqlock read takes no pin (it enters the scope only
    // for as long as a probe that overlapped a collection is repeated), so
    // nothing of this wait keeps a collection out.
    present = ContainsOrError(key);
    if (present.ok() && !*present) {
      // Whole milliseconds, rounded up (FutexWait's unit): a wait rounded
      // down to 0 would return at once and spin until the deadline.
      const absl::Duration sleep = std::min(
          kWaitRecheck, forever ? kWaitRecheck : absl::FromChrono(left));
      FutexWait(&h.publish_seq, seq,
                static_cast<int>(absl::ToInt64Milliseconds(
                    sleep + absl::Milliseconds(1) - absl::Nanoseconds(1))));
    }
    (*session)->EndWait();
    // A wake, a timeout, a signal (EINTR) or a changed word (EAGAIN) all
    // come back here: the check above, or the next one, tells them apart.
    if (!present.ok()) return present.status();
    if (*present) return absl::OkStatus();
  }
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
