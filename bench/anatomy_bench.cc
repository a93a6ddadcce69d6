// Where the time of one shmheap get goes, one process, 16-float values,
// load 0.75 (the table benchmark's get_hit/floats:16/load:75/workers:1),
// built up from the bare array one ingredient at a time:
//
//   probe           the bare array: random key, linear probe of 2^16 slots
//   probe+blob      + follow the slot to a 112-byte record in a 5.5 MB
//                   arena laid out like shmheap's heap, compare the stored
//                   16-byte key, read the first float (a dependent miss)
//   +xxh3           + hash the 16-byte key with XXH3-64 (seeded)
//   +2 rmw          + two locked read-modify-writes on a process-local
//                   counter (what entering and leaving a Pin costs)
//   +4 rmw          + four (what Get<T> did before RawView::As moved its pin)
//   probe+blob+N    probe+blob plus N independent register additions per
//                   lookup (N = 64, 128, 192): no memory access and no
//                   dependence between lookups, a few ns of ALU work. What
//                   they take away is overlap: consecutive lookups are
//                   independent, so the core runs the next ones while one
//                   waits for its blob's cache miss, but only as many as
//                   its reorder buffer holds (a few hundred instructions).
//                   Every instruction a lookup adds pushes the next
//                   lookup's miss later, until the misses no longer
//                   overlap at all and each lookup pays a whole miss.
//   shmheap Contains / GetRaw / Get<float>, inside a held Pin
//   shmheap Contains / Get<float> of absent keys
//   the same through a held ReadScope (Heap::Read, issue 11): Contains,
//   Get<float> (a StatusOr), Find<float> (an optional), and Find<float> and
//   Contains of absent keys
//
// The gap between the last model step and Contains is the rest of the
// operation (session lookup, out-of-line probe, Status plumbing); between
// Contains and GetRaw, building a RawView (and, before CopyDims in
// heap/array_view.h, its `rep stosq`/`rep movsq`); between GetRaw and Get,
// RawView::As and a second StatusOr.

#include <xxhash.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "bench/harness.h"
#include "benchmark/benchmark.h"
#include "shmheap.h"

namespace shmheap::bench {
namespace {

constexpr int kFloats = 16;
constexpr uint64_t kPresent = kSlots * 75 / 100;
constexpr uint64_t kRecordBytes = 112;  // shmheap's blob for these values
constexpr uint64_t kSeed = 0x1234567;

struct Slot {
  uint64_t key;
  uint64_t value;
};

// The slot key of `id`: the random number behind the key (the bare array),
// or the key's XXH3 hash (shmheap).
template <bool kHash>
uint64_t SlotKey(uint64_t id) {
  const Keys& keys = Keys::Get();
  if constexpr (kHash) {
    return XXH3_64bits_withSeed(keys.str(id).data(), kKeyBytes, kSeed) | 1;
  } else {
    return keys.raw(id);
  }
}

// The bare array of limit_bench, plus records laid out like blobs: header,
// hash, dim, key length, key, then the payload.
template <bool kHash>
class Model {
 public:
  Model() : slots_(kSlots), arena_(kPresent * kRecordBytes) {
    const Keys& keys = Keys::Get();
    for (uint64_t id = 0; id < kPresent; ++id) {
      const uint64_t k = SlotKey<kHash>(id);
      uint64_t i = k & (kSlots - 1);
      while (slots_[i].key != 0) i = (i + 1) & (kSlots - 1);
      slots_[i] = {k, id * kRecordBytes};
      std::byte* r = arena_.data() + id * kRecordBytes;
      std::memcpy(r + 32, keys.str(id).data(), kKeyBytes);
      const float marker = Marker(id);
      std::memcpy(r + 48, &marker, sizeof marker);
    }
  }
  // The record of `key`, or null.
  const std::byte* Find(uint64_t key) const {
    for (uint64_t i = key & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
      if (slots_[i].key == key) return arena_.data() + slots_[i].value;
      if (slots_[i].key == 0) return nullptr;
    }
  }

 private:
  std::vector<Slot> slots_;
  std::vector<std::byte> arena_;
};

template <bool kHash>
const Model<kHash>& TheModel() {
  static const Model<kHash>* m = new Model<kHash>();
  return *m;
}

// kPad groups of 16 register additions on four independent chains.
template <int kPad>
[[gnu::always_inline]] inline void Pad() {
  for (int p = 0; p < kPad; ++p) {
#define SHMHEAP_ADD4 \
  "add $1, %%r8\n add $1, %%r9\n add $1, %%r10\n add $1, %%r11\n"
    asm volatile(SHMHEAP_ADD4 SHMHEAP_ADD4 SHMHEAP_ADD4 SHMHEAP_ADD4 ::
                     : "r8", "r9", "r10", "r11");
#undef SHMHEAP_ADD4
  }
}

template <bool kBlob, bool kHash, int kRmw, int kPad = 0>
void BM_Model(benchmark::State& state) {
  const Model<kHash>& model = TheModel<kHash>();
  const Keys& keys = Keys::Get();
  std::atomic<int64_t> pins{1};
  Rng rng(1);
  uint64_t bad = 0;
  for (auto _ : state) {
    for (int i = 0; i < kRmw / 2; ++i) {
      pins.fetch_add(1, std::memory_order_acquire);
    }
    const uint64_t id = rng.Below(kPresent);
    const std::byte* r = model.Find(SlotKey<kHash>(id));
    float first = 0;
    if constexpr (kBlob) {
      if (r == nullptr ||
          std::memcmp(r + 32, keys.str(id).data(), kKeyBytes) != 0) {
        ++bad;
      }
      std::memcpy(&first, r + 48, sizeof first);
    } else {
      first = r != nullptr ? 1.0f : 0.0f;
    }
    benchmark::DoNotOptimize(first);
    for (int i = 0; i < kRmw / 2; ++i) {
      pins.fetch_sub(1, std::memory_order_release);
    }
    Pad<kPad>();
  }
  if (bad) state.SkipWithError("model lookup failed");
}

std::optional<Heap>& TheHeap() {
  static std::optional<Heap>* heap = [] {
    Options options;
    options.table_slots_log2 = kSlotsLog2;
    options.heap_bytes = uint64_t{256} << 20;
    absl::StatusOr<Heap> h = Heap::Create(options);
    if (!h.ok()) std::abort();
    auto* out = new std::optional<Heap>(*std::move(h));
    std::vector<float> v(kFloats, 0.5f);
    const int64_t dims[] = {kFloats};
    for (uint64_t id = 0; id < kPresent; ++id) {
      v[0] = Marker(id);
      if (!(*out)->Add<float>(Keys::Get().str(id), v, dims).ok()) std::abort();
    }
    return out;
  }();
  return *heap;
}

// One lookup per iteration. For a present key (kAbsentKey false), `lookup`
// returns element 0 of its value (the marker, so it is checked; Contains
// returns the marker when it answers true), or 0 when it was not found; for
// a key never added (a miss at the end of its probe), nonzero when it was
// found.
template <bool kAbsentKey, class Lookup>
void LookupLoop(benchmark::State& state, Lookup lookup) {
  const Keys& keys = Keys::Get();
  Rng rng(1);
  uint64_t bad = 0;
  for (auto _ : state) {
    if constexpr (kAbsentKey) {
      const uint64_t id = kFirstAbsent + rng.Below(kAbsent);
      if (lookup(keys.str(id), id) != 0) ++bad;
    } else {
      const uint64_t id = rng.Below(kPresent);
      const float first = lookup(keys.str(id), id);
      if (first != Marker(id)) ++bad;
      benchmark::DoNotOptimize(first);
    }
  }
  if (bad) state.SkipWithError("shmheap lookup failed");
}

enum class Call { kContains, kGetRaw, kGet, kContainsAbsent, kGetAbsent };

// Heap's own calls, inside a Pin held across the loop.
template <Call kCall>
void BM_Shmheap(benchmark::State& state) {
  Heap& heap = *TheHeap();
  absl::StatusOr<Pin> pin = heap.Enter();
  if (!pin.ok()) std::abort();
  constexpr bool kAbsentKey =
      kCall == Call::kContainsAbsent || kCall == Call::kGetAbsent;
  LookupLoop<kAbsentKey>(state, [&](std::string_view key, uint64_t id) {
    float first = 0;
    if constexpr (kCall == Call::kContains || kCall == Call::kContainsAbsent) {
      first = heap.Contains(key) ? Marker(id) : 0;
    } else if constexpr (kCall == Call::kGetRaw) {
      absl::StatusOr<RawView> v = heap.GetRaw(key);
      if (v.ok()) std::memcpy(&first, v->bytes().data(), sizeof first);
    } else {
      absl::StatusOr<ArrayView<float>> v = heap.Get<float>(key);
      if (v.ok()) first = v->data()[0];
    }
    return first;
  });
}

enum class ScopeCall { kContains, kGet, kFind, kContainsAbsent, kFindAbsent };

// The same lookups through one ReadScope held across the loop (issue 11).
template <ScopeCall kCall>
void BM_Scope(benchmark::State& state) {
  absl::StatusOr<ReadScope> scope = TheHeap()->Read();
  if (!scope.ok()) std::abort();
  constexpr bool kAbsentKey =
      kCall == ScopeCall::kContainsAbsent || kCall == ScopeCall::kFindAbsent;
  LookupLoop<kAbsentKey>(state, [&](std::string_view key, uint64_t id) {
    float first = 0;
    if constexpr (kCall == ScopeCall::kContains ||
                  kCall == ScopeCall::kContainsAbsent) {
      first = scope->Contains(key) ? Marker(id) : 0;
    } else if constexpr (kCall == ScopeCall::kGet) {
      absl::StatusOr<ArrayRef<float>> a = scope->Get<float>(key);
      if (a.ok()) first = a->data()[0];
    } else {
      std::optional<ArrayRef<float>> a = scope->Find<float>(key);
      if (a) first = a->data()[0];
    }
    return first;
  });
}

void RegisterAll() {
  // 0.2 s each is plenty for a loop of independent gets.
  auto add = [](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)->MinTime(0.2);
  };
  add("anatomy/probe", BM_Model<false, false, 0>);
  add("anatomy/probe+blob", BM_Model<true, false, 0>);
  add("anatomy/probe+blob+xxh3", BM_Model<true, true, 0>);
  add("anatomy/probe+blob+xxh3+2rmw", BM_Model<true, true, 2>);
  add("anatomy/probe+blob+xxh3+4rmw", BM_Model<true, true, 4>);
  add("anatomy/probe+blob+64", BM_Model<true, false, 0, 4>);
  add("anatomy/probe+blob+128", BM_Model<true, false, 0, 8>);
  add("anatomy/probe+blob+192", BM_Model<true, false, 0, 12>);
  add("anatomy/shmheap_contains", BM_Shmheap<Call::kContains>);
  add("anatomy/shmheap_getraw", BM_Shmheap<Call::kGetRaw>);
  add("anatomy/shmheap_get", BM_Shmheap<Call::kGet>);
  // Misses: Get builds a kNotFound status whose message names the heap and
  // the (escaped) key; Contains does not.
  add("anatomy/shmheap_contains_absent", BM_Shmheap<Call::kContainsAbsent>);
  add("anatomy/shmheap_get_absent", BM_Shmheap<Call::kGetAbsent>);
  add("anatomy/scope_contains", BM_Scope<ScopeCall::kContains>);
  add("anatomy/scope_get", BM_Scope<ScopeCall::kGet>);
  add("anatomy/scope_find", BM_Scope<ScopeCall::kFind>);
  add("anatomy/scope_contains_absent", BM_Scope<ScopeCall::kContainsAbsent>);
  add("anatomy/scope_find_absent", BM_Scope<ScopeCall::kFindAbsent>);
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
