// The public API: option translation and forwarding to the store
// (hashtable/store.h) and the collector (gc/collector.h).

#include "shmheap.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gc/clear.h"
#include "gc/collector.h"
#include "gc/grow.h"
#include "hashtable/deps.h"
#include "hashtable/store.h"
#include "hashtable/table.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "heap/strings.h"

namespace shmheap {

using internal::ResolvedKey;
using internal::Segment;
using internal::SegmentOptions;
using internal::Store;

namespace {

SegmentOptions ToSegmentOptions(const Options& o) {
  SegmentOptions s;
  s.heap_bytes = o.heap_bytes;
  s.table_slots_log2 = o.table_slots_log2;
  s.max_table_slots_log2 = o.max_table_slots_log2;
  s.max_sessions = o.max_sessions;
  s.keep_keys = o.keep_keys;
  s.checksums = o.checksums;
  s.chunk_bytes = o.chunk_bytes;
  s.min_available_bytes = o.min_available_bytes;
  s.seed = o.seed;
  s.dep_table_slots_log2 = o.dep_table_slots_log2;
  return s;
}

// How many collections a write that finds the table full runs before it
// gives up: each grows the table at least twofold, unless it is at its
// maximum or other processes fill it again first.
constexpr int kFullTableCollections = 4;

// The deadline of a collection a write starts on its own (to grow the
// table): short, since the write's caller did not ask to wait for other
// processes' scopes. A process that stays in scope longer makes it give up
// with nothing changed; a full table then says so, and a growth request
// comes again with a later write.
CollectOptions ImplicitCollection() {
  CollectOptions options;
  options.deadline = std::chrono::milliseconds(100);
  return options;
}

absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Whether this process holds a view, Pin, ReadScope or builder (then no
// collection can run from it: it would wait for itself).
bool InScope(const Store& store) {
  absl::StatusOr<internal::LocalSession*> session = store.Session();
  return !session.ok() || (*session)->pinned();
}

// After a write whose claim probed far (Store::TakeGrowthRequest): collects,
// growing the table, when the load calls for it and this process may.
// Opportunistic: a collection that cannot run now leaves the table as it is
// (the next long probe asks again; a full table collects for itself).
void GrowIfAsked(const Store& store) {
  if (!store.TakeGrowthRequest() || InScope(store) ||
      !internal::TableWantsGrowth(store.segment())) {
    return;
  }
  absl::StatusOr<internal::LocalSession*> session = store.Session();
  if (session.ok()) {
    internal::Collect(store.segment(), *session, ImplicitCollection())
        .status()
        .IgnoreError();
  }
}

// `full` (a full table) with why it stays full, still marked IsTableFull.
absl::Status StillFull(const absl::Status& full, std::string_view why) {
  return internal::TableFullError(
      absl::StrCat(full.message(), "; ", internal::Sv(why)));
}

// Runs `write` (an Add, Replace or Move). When it finds the table full and
// this process is out of scope, collects (which grows the table, gc/grow.h)
// and runs it again, up to kFullTableCollections times; the full-table
// error that stays says why.
template <typename Write>
auto GrowingWrite(const Store& store, Write write) -> decltype(write()) {
  for (int collections = 0;; ++collections) {
    auto r = write();
    const absl::Status s = StatusOf(r);
    if (s.ok()) GrowIfAsked(store);
    if (!internal::IsTableFull(s)) return r;
    const internal::Segment& segment = store.segment();
    // Relaxed, outside any scope: a stale size only changes the message.
    const uint32_t log2 = internal::TableSlotsLog2(
        segment.header().table.load(std::memory_order_relaxed));
    if (log2 >= segment.header().max_table_slots_log2) {
      return StillFull(
          s, absl::StrCat("the table is at its maximum of 2^", log2,
                          " slots (max_table_slots_log2): remove keys and "
                          "collect, or create the heap with a larger "
                          "max_table_slots_log2"));
    }
    if (InScope(store)) {
      return StillFull(s,
                       "a collection would grow the table, but cannot run "
                       "while this process holds a view, Pin, ReadScope or "
                       "builder: leave the scope, then collect or retry");
    }
    if (collections == kFullTableCollections) return r;
    absl::StatusOr<internal::LocalSession*> session = store.Session();
    if (!session.ok()) return r;
    absl::StatusOr<GcReport> gc =
        internal::Collect(segment, *session, ImplicitCollection());
    if (!gc.ok()) {
      const std::string why =
          absl::StrCat("the collection that would grow the table failed: ",
                       gc.status().message());
      // Another process in scope: try again (it, or another writer's
      // collection, may be done by then), at most kFullTableCollections
      // times in all.
      if (absl::IsDeadlineExceeded(gc.status()) &&
          collections + 1 < kFullTableCollections) {
        continue;
      }
      return StillFull(s, why);
    }
  }
}

absl::Status MovedFrom() {
  return absl::FailedPreconditionError(
      "moved-from Heap: it may only be destroyed or assigned to");
}

}  // namespace

Heap::Heap(std::unique_ptr<Store> store) : store_(std::move(store)) {}
Heap::Heap(Heap&&) noexcept = default;
Heap& Heap::operator=(Heap&&) noexcept = default;
Heap::~Heap() = default;

absl::StatusOr<Heap> Heap::FromSegment(
    absl::StatusOr<std::unique_ptr<Segment>> segment) {
  if (!segment.ok()) return segment.status();
  // Before the first Enter: a collector that died mid-collection is rolled
  // forward by whoever enters next (gc/collector.h, "Recovery").
  internal::InstallCollectionRecovery();
  auto store = std::make_unique<Store>(*std::move(segment));
  // Join now, so that creation and attach report a full registry (and a
  // collector that died mid-way) at once rather than on first use.
  absl::StatusOr<Pin> pin = store->Enter();
  if (!pin.ok()) return pin.status();
  pin->Reset();
  return Heap(std::move(store));
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
  return store_ ? store_->Resolve(key).hash : 0;
}

absl::StatusOr<bool> Heap::AddRaw(Key key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data) {
  if (!store_) return MovedFrom();
  const ResolvedKey resolved = store_->Resolve(key);
  return GrowingWrite(*store_, [&] {
    return store_->Write(resolved, kind, dims, layout, data, false);
  });
}

absl::StatusOr<size_t> Heap::AddMany(std::span<const AddItem> items,
                                     std::span<absl::StatusOr<bool>> results) {
  if (!store_) return MovedFrom();
  return store_->AddMany(items, results);
}

absl::StatusOr<bool> Heap::ReplaceRaw(Key key, Kind kind,
                                      std::span<const int64_t> dims,
                                      Layout layout,
                                      std::span<const std::byte> data) {
  if (!store_) return MovedFrom();
  const ResolvedKey resolved = store_->Resolve(key);
  return GrowingWrite(*store_, [&] {
    return store_->Write(resolved, kind, dims, layout, data, true);
  });
}

absl::StatusOr<RawBuilder> Heap::ReserveRaw(Key key, Kind kind,
                                            std::span<const int64_t> dims,
                                            Layout layout) {
  if (!store_) return MovedFrom();
  const ResolvedKey resolved = store_->Resolve(key);
  absl::StatusOr<Store::Reservation> r =
      store_->Reserve(resolved, kind, dims, layout);
  if (!r.ok()) return r.status();
  RawBuilder b;
  b.store_ = store_.get();
  b.hash_ = resolved.hash;
  b.tag_ = resolved.tag;
  b.has_key_ = resolved.has_key;
  b.key_hashed_ = resolved.key_hashed;
  b.blob_ = r->blob;
  b.payload_ = r->payload;
  b.payload_bytes_ = r->payload_bytes;
  b.key_ = std::string(resolved.bytes);
  b.pin_ = std::move(r->pin);
  return b;
}

absl::StatusOr<bool> RawBuilder::Publish() {
  if (store_ == nullptr || blob_ == 0) {
    return absl::FailedPreconditionError("builder already published");
  }
  ResolvedKey key;
  key.hash = hash_;
  key.tag = tag_;
  key.has_key = has_key_;
  key.key_hashed = key_hashed_;
  key.bytes = key_;
  const uint64_t blob = std::exchange(blob_, 0);
  absl::StatusOr<bool> r = store_->PublishReserved(key, blob, false);
  pin_.Reset();
  if (r.ok()) GrowIfAsked(*store_);
  if (internal::IsTableFull(r.status())) {
    // The reserved blob is garbage to a collection: it cannot collect and
    // retry as Add does.
    return StillFull(r.status(),
                     "a collection would grow the table, but a builder's "
                     "blob does not survive one: collect, then build again");
  }
  return r;
}

absl::StatusOr<ReadScope> Heap::Read() const {
  if (!store_) return MovedFrom();
  absl::StatusOr<Pin> pin = store_->Enter();
  if (!pin.ok()) return pin.status();
  return ReadScope(store_.get(), store_->lookup(), *std::move(pin));
}

absl::StatusOr<RawRef> ReadScope::GetRaw(Key key) const {
  const ResolvedKey resolved = lookup_.ResolveForFind(key);
  std::optional<RawRef> r = lookup_.Find(resolved);
  if (!r) return store_->NotFound(resolved);
  return *r;
}

size_t ReadScope::GetMany(std::span<const Key> keys,
                          std::span<std::optional<RawRef>> out) const noexcept {
  return store_->FindMany(keys, out);
}

size_t ReadScope::ContainsMany(std::span<const Key> keys,
                               std::span<bool> out) const noexcept {
  return store_->ContainsMany(keys, out);
}

absl::StatusOr<RawRef> Heap::GetPinned(Key key, Pin& pin) const {
  if (!store_) return MovedFrom();
  absl::StatusOr<Pin> entered = store_->Enter();
  if (!entered.ok()) return entered.status();
  // In scope now: the table read here stays the live one.
  const internal::Lookup lookup = store_->lookup();
  const ResolvedKey resolved = lookup.ResolveForFind(key);
  std::optional<RawRef> r = lookup.Find(resolved);
  if (!r) return store_->NotFound(resolved);
  pin = *std::move(entered);
  return *r;
}

absl::StatusOr<RawView> Heap::GetRaw(Key key) const {
  Pin pin;
  absl::StatusOr<RawRef> r = GetPinned(key, pin);
  if (!r.ok()) return r.status();
  return r->View(std::move(pin));
}

bool Heap::Contains(Key key) const {
  return store_ && store_->Contains(store_->Resolve(key));
}

absl::Status Heap::Remove(Key key) {
  if (!store_) return MovedFrom();
  return store_->Remove(store_->Resolve(key));
}

absl::StatusOr<size_t> Heap::RemoveMany(std::span<const Key> keys) {
  if (!store_) return MovedFrom();
  return store_->RemoveMany(keys);
}

absl::Status Heap::WaitFor(Key key, absl::Duration timeout) const {
  if (!store_) return MovedFrom();
  return store_->WaitFor(store_->Resolve(key), timeout);
}

void Heap::RequestStop() {
  // Release: what this process published before is visible to a process
  // that sees the flag.
  if (store_)
    store_->segment().header().stop.store(1, std::memory_order_release);
}

void Heap::ClearStop() {
  // Relaxed: clearing publishes nothing.
  if (store_)
    store_->segment().header().stop.store(0, std::memory_order_relaxed);
}

bool Heap::StopRequested() const {
  // Acquire: pairs with RequestStop's release store.
  return store_ &&
         store_->segment().header().stop.load(std::memory_order_acquire) != 0;
}

namespace {

// The dependency table of `store`, in scope (`pin`): the checks every
// dependency call makes, in the order its errors are listed.
absl::StatusOr<internal::DepTable> EnterDeps(const Store& store, Pin& pin) {
  absl::StatusOr<internal::DepTable> deps =
      internal::DepTable::Of(store.segment());
  if (!deps.ok()) return deps.status();
  // In scope, so that a whole-heap reset (with the world stopped) orders
  // each call wholly before or after it (hashtable/deps.h, "Scopes").
  absl::StatusOr<Pin> entered = store.Enter();
  if (!entered.ok()) return entered.status();
  pin = *std::move(entered);
  return deps;
}

}  // namespace

absl::StatusOr<bool> Heap::AddDep(uint32_t key, uint32_t value) {
  if (!store_) return MovedFrom();
  if (absl::Status s = internal::CheckDepId("key", key); !s.ok()) return s;
  if (absl::Status s = internal::CheckDepId("value", value); !s.ok()) return s;
  Pin pin;
  absl::StatusOr<internal::DepTable> deps = EnterDeps(*store_, pin);
  if (!deps.ok()) return deps.status();
  return deps->Add(key, value);
}

absl::StatusOr<std::vector<uint32_t>> Heap::GetDeps(uint32_t key) const {
  if (!store_) return MovedFrom();
  if (absl::Status s = internal::CheckDepId("key", key); !s.ok()) return s;
  Pin pin;
  absl::StatusOr<internal::DepTable> deps = EnterDeps(*store_, pin);
  if (!deps.ok()) return deps.status();
  std::vector<uint32_t> values;
  deps->Get(key, &values);
  return values;
}

absl::StatusOr<size_t> Heap::RemoveDeps(uint32_t key) {
  if (!store_) return MovedFrom();
  if (absl::Status s = internal::CheckDepId("key", key); !s.ok()) return s;
  Pin pin;
  absl::StatusOr<internal::DepTable> deps = EnterDeps(*store_, pin);
  if (!deps.ok()) return deps.status();
  return deps->Remove(key);
}

absl::StatusOr<int64_t> Heap::FetchAdd(Key key, int64_t delta) {
  if (!store_) return MovedFrom();
  return store_->FetchAdd(store_->Resolve(key), delta);
}

absl::Status Heap::Move(Key from, Key to) {
  if (!store_) return MovedFrom();
  const ResolvedKey f = store_->Resolve(from), t = store_->Resolve(to);
  return GrowingWrite(*store_, [&] { return store_->Move(f, t); });
}

absl::StatusOr<Pin> Heap::Enter() const {
  if (!store_) return MovedFrom();
  return store_->Enter();
}

absl::Status Heap::Verify() const {
  if (!store_) return MovedFrom();
  return store_->Verify();
}

absl::StatusOr<GcReport> Heap::Collect(const CollectOptions& options) {
  if (!store_) return MovedFrom();
  absl::StatusOr<internal::LocalSession*> session = store_->Session();
  if (!session.ok()) return session.status();
  return internal::Collect(store_->segment(), *session, options);
}

absl::StatusOr<GcReport> Heap::Clear(const CollectOptions& options) {
  if (!store_) return MovedFrom();
  absl::StatusOr<internal::LocalSession*> session = store_->Session();
  if (!session.ok()) return session.status();
  return internal::Clear(store_->segment(), *session, options);
}

absl::StatusOr<GcReport> Heap::MaybeCollect(double overhead,
                                            const CollectOptions& options) {
  if (!store_) return MovedFrom();
  const Stats s = stats();
  const uint64_t used = s.live_bytes + s.dead_bytes;
  if (s.dead_bytes < store_->segment().header().chunk_bytes ||
      static_cast<double>(used) <
          overhead * static_cast<double>(s.live_bytes)) {
    return GcReport{};
  }
  return Collect(options);
}

const Segment& Heap::segment() const { return store_->segment(); }

std::span<const std::byte> Heap::mapping() const {
  if (!store_) return {};
  return {store_->segment().base(), store_->segment().header().total_bytes};
}

Stats Heap::stats() const { return store_ ? store_->GetStats() : Stats{}; }

}  // namespace shmheap
