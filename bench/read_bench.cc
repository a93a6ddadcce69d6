// Issue 11's read workload: a table shaped like real heaps (Flow: 2^19,
// Pyre: 2^22 slots, GBs of values), read by 1 and 2 forked processes, next
// to the limit for it.
//
// Geometry: 2^20 slots, 500,000 keys of 16 bytes (load 0.48), values of
// 16 or 1,024 float32 (64 B or 4 KiB: 32 MB or 2 GB of values). Misses use
// 500,000 more keys that were never added.
//
// Systems (every one in shared memory, inherited by forked workers):
//   bare   the limit: a linear-probing table of 2^20 {hash, offset} slots
//          (16 bytes each, 16 MiB) plus an arena holding the same values,
//          both MAP_SHARED; no key check, no atomics, no scope.
//   scope  shmheap through a ReadScope (Heap::Read): ReadScope::Contains,
//          Find<float> and GetMany; one scope per kBatch operations.
//   heap   shmheap through the calls that predate the read scope:
//          Heap::Contains and Heap::Get<float>, inside a Pin held per kBatch
//          operations (the documented fast path before issue 11).
// shmheap runs with keys kept (Options::keep_keys, keys passed as
// HashedKey{hash, key}: tag and stored key checked) and with hash only
// (HashedKey{hash, ""}: the hash is trusted).
//
// Every system does the same work: the caller hashes each 16-byte key with
// XXH3-64 (inlined, seeded) in the timed loop and hands the hash (and for
// shmheap the key) to the store; keys are looked up in one random
// permutation of the 500,000 (the same for every system; misses in a
// permutation of the absent keys), read from an array laid out in that
// order, so fetching the key itself is a sequential read for everyone.
//
// Operations (each one key):
//   contains_hit, contains_miss   whether the key is present
//   get_one      look up a present key, read its element 0 (checked
//                against the key's marker)
//   get_all      look up a present key, sum every 8-byte word of its value
//                (every byte read); the sums are folded into a checksum
//                that must equal the expected one
//   get_miss     look up an absent key (must miss)
//   get_batch64  64 keys at once (ReadScope::GetMany; the bare table with
//                the same group prefetching), then element 0 of each
//                (checked); counted per key
// A wrong result fails the benchmark. Every worker first runs its whole
// share once untimed (warm-up: page faults of the freshly forked process,
// the same cache state for every system), then all meet at a barrier and
// run it again, timed (bench/harness.h's RunWorkers).
//
// Memory: one store at a time is alive (the 4 KiB ones take 2 GB each); a
// store is built only when /proc/meminfo's MemAvailable leaves 2 GiB spare
// after it, otherwise its benchmarks fail with an error.

#include <time.h>

// The callers hash with inlined XXH3, as the library does internally.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/harness.h"
#include "benchmark/benchmark.h"
#include "shmheap.h"

namespace shmheap::bench {
namespace {

constexpr int kTableLog2 = 20;
constexpr uint64_t kTableSlots = uint64_t{1} << kTableLog2;
constexpr uint64_t kPresentKeys = 500'000;
constexpr uint64_t kAbsentKeys = 500'000;
constexpr uint64_t kHashSeed = 0x5eed1234abcdULL;
// Lookups per measurement, all workers together: two passes over the
// permutation, so each of 2 workers does one whole pass (the second starting
// half way).
constexpr uint64_t kLookups = 2 * kPresentKeys;
constexpr size_t kManyKeys = 64;
// The bare table's batched probe works on groups of this many keys, as
// shmheap's GetMany does (hashtable/store.h's kLookupGroup).
constexpr size_t kGroup = 16;

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "read_bench: %s\n", status.ToString().c_str());
  std::abort();
}

// The hash every caller computes: XXH3-64 of the 16 bytes, never 0 (0 marks
// an empty slot, as in shmheap's table).
inline uint64_t KeyHash(const char* key) {
  const uint64_t h = XXH3_64bits_withSeed(key, kKeyBytes, kHashSeed);
  return h != 0 ? h : 0x9e3779b97f4a7c15ULL;
}

// Reads every byte of a value: the sum of its 8-byte words.
inline uint64_t SumWords(const std::byte* p, size_t bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    sum += w;
  }
  return sum;
}

// A lookup order: the keys, in the order they are looked up, laid out one
// after the other, with their ids.
class Sequence {
 public:
  Sequence(const KeyStrings& keys, uint64_t first_id, uint64_t n, uint64_t seed)
      : ids_(n), text_(n * kKeyBytes) {
    for (uint64_t i = 0; i < n; ++i) ids_[i] = static_cast<uint32_t>(i);
    // Fisher-Yates with a fixed seed: the same permutation for every system.
    Rng rng(seed);
    for (uint64_t i = n - 1; i > 0; --i) {
      std::swap(ids_[i], ids_[rng.Below(i + 1)]);
    }
    for (uint64_t i = 0; i < n; ++i) {
      ids_[i] += static_cast<uint32_t>(first_id);
      std::memcpy(text_.data() + i * kKeyBytes, keys.str(ids_[i]).data(),
                  kKeyBytes);
    }
  }
  uint64_t size() const { return ids_.size(); }
  uint32_t id(uint64_t i) const { return ids_[i]; }
  const char* key(uint64_t i) const { return text_.data() + i * kKeyBytes; }

 private:
  std::vector<uint32_t> ids_;
  std::vector<char> text_;
};

const KeyStrings& AllKeys() {
  static const KeyStrings* keys = new KeyStrings(kPresentKeys + kAbsentKeys);
  return *keys;
}
const Sequence& Hits() {
  static const Sequence* s = new Sequence(AllKeys(), 0, kPresentKeys, 11);
  return *s;
}
const Sequence& Misses() {
  static const Sequence* s =
      new Sequence(AllKeys(), kPresentKeys, kAbsentKeys, 12);
  return *s;
}

// What SumWords gives for key `id`'s value (harness.h's ValueBuffer: the
// same elements for every key but the first and the last, its marker).
class ValueSums {
 public:
  explicit ValueSums(int floats) : buffer_(floats) {
    const std::span<const float> v = buffer_.For(0);
    bytes_ = v.size_bytes();
    middle_ = SumWords(AsBytes(v) + 8, bytes_ - 16);
  }
  uint64_t For(uint64_t id) {
    const std::byte* v = AsBytes(buffer_.For(id));
    return middle_ + SumWords(v, 8) + SumWords(v + bytes_ - 8, 8);
  }

 private:
  static const std::byte* AsBytes(std::span<const float> v) {
    return reinterpret_cast<const std::byte*>(v.data());
  }
  ValueBuffer buffer_;
  size_t bytes_ = 0;
  uint64_t middle_ = 0;
};

// One value as a store returns it: null data for a miss.
struct Value {
  const std::byte* data = nullptr;
  size_t bytes = 0;
};

// ---------------------------------------------------------------------------
// The limit: a bare linear-probing table in shared memory.

class BareTable {
 public:
  explicit BareTable(int floats)
      : value_bytes_(uint64_t(floats) * sizeof(float)),
        slots_(kTableSlots),
        arena_(kPresentKeys * value_bytes_) {
    ValueBuffer value(floats);
    for (uint64_t id = 0; id < kPresentKeys; ++id) {
      const uint64_t h = KeyHash(AllKeys().str(id).data());
      uint64_t i = h & kMask;
      while (slots_[i].hash != 0) i = (i + 1) & kMask;
      const uint64_t offset = id * value_bytes_;
      std::memcpy(&arena_[offset], value.For(id).data(), value_bytes_);
      slots_[i] = {h, offset};
    }
  }

  bool Contains(uint64_t h) const {
    for (uint64_t i = h & kMask;; i = (i + 1) & kMask) {
      const uint64_t s = slots_[i].hash;
      if (s == h) return true;
      if (s == 0) return false;
    }
  }
  Value Find(uint64_t h) const {
    for (uint64_t i = h & kMask;; i = (i + 1) & kMask) {
      const Slot& s = slots_[i];
      if (s.hash == h) return {&arena_[s.offset], value_bytes_};
      if (s.hash == 0) return {};
    }
  }
  // out[k] := Find(hashes[k]), with shmheap's group prefetching (Chen et
  // al., ICDE 2004): prefetch a group's slots, then probe them and prefetch
  // the values; the caller reads the values.
  void FindMany(const uint64_t* hashes, size_t n, Value* out) const {
    for (size_t base = 0; base < n; base += kGroup) {
      const size_t m = std::min(kGroup, n - base);
      for (size_t k = 0; k < m; ++k) {
        __builtin_prefetch(&slots_[hashes[base + k] & kMask], 0, 3);
      }
      for (size_t k = 0; k < m; ++k) {
        out[base + k] = Find(hashes[base + k]);
        if (out[base + k].data != nullptr) {
          __builtin_prefetch(out[base + k].data, 0, 3);
        }
      }
    }
  }

 private:
  static constexpr uint64_t kMask = kTableSlots - 1;
  struct Slot {
    uint64_t hash;
    uint64_t offset;
  };
  uint64_t value_bytes_;
  SharedArray<Slot> slots_;
  SharedArray<std::byte> arena_;
};

// The bare table as a system of the workload loop.
class BareSystem {
 public:
  explicit BareSystem(const BareTable& t) : t_(t) {}
  struct Scope {};
  void Attach() const {}
  Scope Enter() const { return {}; }
  bool Contains(const Scope&, const char*, uint64_t h) const {
    return t_.Contains(h);
  }
  Value Find(const Scope&, const char*, uint64_t h) const { return t_.Find(h); }
  void FindMany(const Scope&, const char* const*, const uint64_t* hashes,
                size_t n, Value* out) const {
    t_.FindMany(hashes, n, out);
  }

 private:
  const BareTable& t_;
};

// ---------------------------------------------------------------------------
// shmheap.

class ShmheapTable {
 public:
  ShmheapTable(int floats, bool keep_keys) : keep_keys_(keep_keys) {
    Options options;
    options.table_slots_log2 = kTableLog2;
    options.keep_keys = keep_keys;
    // Reserved, not committed: 500,000 blobs of 4,160 bytes and chunk slack.
    options.heap_bytes = uint64_t{3} << 30;
    absl::StatusOr<Heap> heap = Heap::Create(options);
    if (!heap.ok()) Die(heap.status());
    heap_.emplace(*std::move(heap));
    ValueBuffer value(floats);
    const int64_t dims[] = {floats};
    for (uint64_t id = 0; id < kPresentKeys; ++id) {
      const char* k = AllKeys().str(id).data();
      absl::StatusOr<bool> added =
          heap_->Add<float>(MakeKey(k, KeyHash(k)), value.For(id), dims);
      if (!added.ok()) Die(added.status());
      if (!*added) std::abort();
    }
  }

  const Heap& heap() const { return *heap_; }
  HashedKey MakeKey(const char* key, uint64_t h) const {
    return keep_keys_ ? HashedKey{h, std::string_view(key, kKeyBytes)}
                      : HashedKey{h, {}};
  }

 private:
  bool keep_keys_;
  std::optional<Heap> heap_;
};

// Joins this process's session (in a freshly forked worker, untimed).
void JoinSession(const Heap& heap) {
  absl::StatusOr<Pin> pin = heap.Enter();
  if (!pin.ok()) Die(pin.status());
}

// Through a ReadScope, one per batch of kBatch lookups.
class ScopeSystem {
 public:
  explicit ScopeSystem(const ShmheapTable& t)
      : t_(t), keys_(kManyKeys, Key("")), refs_(kManyKeys) {}
  using Scope = ReadScope;
  void Attach() const { JoinSession(t_.heap()); }
  ReadScope Enter() const {
    absl::StatusOr<ReadScope> r = t_.heap().Read();
    if (!r.ok()) Die(r.status());
    return *std::move(r);
  }
  bool Contains(const ReadScope& r, const char* key, uint64_t h) const {
    return r.Contains(t_.MakeKey(key, h));
  }
  Value Find(const ReadScope& r, const char* key, uint64_t h) const {
    const std::optional<ArrayRef<float>> a = r.Find<float>(t_.MakeKey(key, h));
    if (!a) return {};
    return {reinterpret_cast<const std::byte*>(a->data()), a->size_bytes()};
  }
  void FindMany(const ReadScope& r, const char* const* keys,
                const uint64_t* hashes, size_t n, Value* out) const {
    for (size_t k = 0; k < n; ++k) keys_[k] = t_.MakeKey(keys[k], hashes[k]);
    r.GetMany(std::span<const Key>(keys_.data(), n),
              std::span<std::optional<RawRef>>(refs_.data(), n));
    for (size_t k = 0; k < n; ++k) {
      out[k] =
          refs_[k] ? Value{refs_[k]->data(), refs_[k]->size_bytes()} : Value{};
    }
  }

 private:
  const ShmheapTable& t_;
  // The batch's keys and results (allocated once, outside the timed loop).
  mutable std::vector<Key> keys_;
  mutable std::vector<std::optional<RawRef>> refs_;
};

// Through Heap::Contains and Heap::Get, inside a Pin per batch.
class HeapSystem {
 public:
  explicit HeapSystem(const ShmheapTable& t) : t_(t) {}
  using Scope = Pin;
  void Attach() const { JoinSession(t_.heap()); }
  Pin Enter() const {
    // The last batch's view goes first, so that the process leaves the
    // scope between batches as the ReadScope system does.
    last_.reset();
    absl::StatusOr<Pin> pin = t_.heap().Enter();
    if (!pin.ok()) Die(pin.status());
    return *std::move(pin);
  }
  bool Contains(const Pin&, const char* key, uint64_t h) const {
    return t_.heap().Contains(t_.MakeKey(key, h));
  }
  // The view is kept until the next lookup, so the bytes stay readable
  // (replacing it drops its pin, as a view going out of scope would).
  Value Find(const Pin&, const char* key, uint64_t h) const {
    absl::StatusOr<ArrayView<float>> v =
        t_.heap().Get<float>(t_.MakeKey(key, h));
    if (!v.ok()) {
      if (!absl::IsNotFound(v.status())) Die(v.status());
      last_.reset();
      return {};
    }
    last_ = *std::move(v);
    return {reinterpret_cast<const std::byte*>(last_->data()),
            last_->size_bytes()};
  }

 private:
  const ShmheapTable& t_;
  mutable std::optional<ArrayView<float>> last_;
};

// ---------------------------------------------------------------------------
// The workload loop, written once for every system.

enum class ReadOp {
  kContainsHit,
  kContainsMiss,
  kGetOne,
  kGetAll,
  kGetMiss,
  kGetBatch
};

const char* ReadOpName(ReadOp op) {
  switch (op) {
    case ReadOp::kContainsHit:
      return "contains_hit";
    case ReadOp::kContainsMiss:
      return "contains_miss";
    case ReadOp::kGetOne:
      return "get_one";
    case ReadOp::kGetAll:
      return "get_all";
    case ReadOp::kGetMiss:
      return "get_miss";
    case ReadOp::kGetBatch:
      return "get_batch64";
  }
  return "?";
}

constexpr bool IsMiss(ReadOp op) {
  return op == ReadOp::kContainsMiss || op == ReadOp::kGetMiss;
}

// Whether element 0 of `v` is key `id`'s marker.
inline bool HasMarker(const Value& v, uint32_t id) {
  if (v.data == nullptr) return false;
  float first;
  std::memcpy(&first, v.data, sizeof first);
  benchmark::DoNotOptimize(first);
  return first == Marker(id);
}

// Looks up positions [begin, end) of the op's sequence (cyclically) and
// returns how many results were wrong; for get_all, the checksum of the
// values read must equal `expected_sum`.
template <ReadOp kOp, class S>
uint64_t RunLookups(const S& s, size_t value_bytes, uint64_t begin,
                    uint64_t end, uint64_t expected_sum) {
  const Sequence& seq = IsMiss(kOp) ? Misses() : Hits();
  uint64_t i = begin % seq.size();
  auto advance = [&] {
    if (++i == seq.size()) i = 0;
  };
  uint64_t bad = 0;
  uint64_t checksum = 0;
  const char* keys[kManyKeys];
  uint64_t hashes[kManyKeys];
  uint32_t ids[kManyKeys];
  Value values[kManyKeys];
  for (uint64_t p = begin; p < end;) {
    const typename S::Scope scope = s.Enter();
    const uint64_t batch_end = std::min<uint64_t>(end, p + kBatch);
    if constexpr (kOp == ReadOp::kGetBatch) {
      while (p < batch_end) {
        const size_t n = std::min<uint64_t>(kManyKeys, batch_end - p);
        for (size_t k = 0; k < n; ++k, advance()) {
          keys[k] = seq.key(i);
          ids[k] = seq.id(i);
          hashes[k] = KeyHash(keys[k]);
        }
        s.FindMany(scope, keys, hashes, n, values);
        for (size_t k = 0; k < n; ++k) bad += !HasMarker(values[k], ids[k]);
        p += n;
      }
      continue;
    }
    for (; p < batch_end; ++p, advance()) {
      const char* key = seq.key(i);
      const uint64_t h = KeyHash(key);
      if constexpr (kOp == ReadOp::kContainsHit) {
        bad += !s.Contains(scope, key, h);
      } else if constexpr (kOp == ReadOp::kContainsMiss) {
        bad += s.Contains(scope, key, h);
      } else if constexpr (kOp == ReadOp::kGetOne) {
        bad += !HasMarker(s.Find(scope, key, h), seq.id(i));
      } else if constexpr (kOp == ReadOp::kGetAll) {
        const Value v = s.Find(scope, key, h);
        if (v.data == nullptr || v.bytes != value_bytes) {
          ++bad;
          continue;
        }
        uint64_t sum = SumWords(v.data, v.bytes);
        benchmark::DoNotOptimize(sum);
        checksum += sum;
      } else {
        bad += s.Find(scope, key, h).data != nullptr;
      }
    }
  }
  if (kOp == ReadOp::kGetAll && checksum != expected_sum) ++bad;
  return bad;
}

// The checksum get_all must find over positions [begin, end).
uint64_t ExpectedSum(int floats, uint64_t begin, uint64_t end) {
  ValueSums sums(floats);
  const Sequence& seq = Hits();
  uint64_t total = 0;
  for (uint64_t p = begin; p < end; ++p)
    total += sums.For(seq.id(p % seq.size()));
  return total;
}

template <class S>
uint64_t Lookups(ReadOp op, const S& s, size_t value_bytes, uint64_t begin,
                 uint64_t end, uint64_t expected_sum) {
  switch (op) {
    case ReadOp::kContainsHit:
      return RunLookups<ReadOp::kContainsHit>(s, value_bytes, begin, end, 0);
    case ReadOp::kContainsMiss:
      return RunLookups<ReadOp::kContainsMiss>(s, value_bytes, begin, end, 0);
    case ReadOp::kGetOne:
      return RunLookups<ReadOp::kGetOne>(s, value_bytes, begin, end, 0);
    case ReadOp::kGetAll:
      return RunLookups<ReadOp::kGetAll>(s, value_bytes, begin, end,
                                         expected_sum);
    case ReadOp::kGetMiss:
      return RunLookups<ReadOp::kGetMiss>(s, value_bytes, begin, end, 0);
    case ReadOp::kGetBatch:
      if constexpr (requires(const S& x) { &S::FindMany; }) {
        return RunLookups<ReadOp::kGetBatch>(s, value_bytes, begin, end, 0);
      }
      break;
  }
  return end - begin;  // not supported: every result wrong
}

// ---------------------------------------------------------------------------
// Stores and benchmarks.

// MemAvailable from /proc/meminfo, in bytes (0 if unreadable).
uint64_t MemAvailable() {
  std::ifstream f("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (f >> name >> kib >> unit) {
    if (name == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

// The one store alive, and the name of the store it is.
struct CurrentStore {
  std::string name;
  std::shared_ptr<void> store;
};
CurrentStore& Current() {
  static CurrentStore* c = new CurrentStore();
  return *c;
}

// The store `name`, built by make() after the previous one is dropped; null
// (and *error set) when memory is short.
template <class T, class Make>
const T* StoreFor(const std::string& name, uint64_t bytes, Make make,
                  std::string* error) {
  CurrentStore& c = Current();
  if (c.name != name) {
    c.store.reset();
    c.name.clear();
    const uint64_t spare = uint64_t{2} << 30;
    if (MemAvailable() < bytes + spare) {
      *error = "not enough memory for " + name + ": MemAvailable " +
               std::to_string(MemAvailable() >> 20) + " MiB";
      return nullptr;
    }
    c.store = make();
    c.name = name;
  }
  return static_cast<const T*>(c.store.get());
}

enum class System { kBare, kScope, kHeap };

struct ReadSpec {
  System system;
  ReadOp op;
  int floats;
  bool keep_keys;  // shmheap only
  int workers;
};

template <class S>
void Measure(benchmark::State& state, const S& s, const ReadSpec& spec) {
  const size_t value_bytes = size_t(spec.floats) * sizeof(float);
  const int workers = spec.workers;
  WorkerHooks hooks;
  // Per worker process: its share's checksum (computed in prepare, read in
  // work; each forked worker has its own copy).
  uint64_t expected = 0;
  // Worker w's positions in the sequence (cyclic): kLookups / workers of
  // them from w / workers of the way in, so that two workers never read the
  // same keys at the same moment (each would find lines the other fetched).
  const uint64_t b0 = kPresentKeys / workers;
  auto begin = [&](int w) { return uint64_t(w) * b0; };
  auto end = [&](int w) { return begin(w) + kLookups / workers; };
  hooks.prepare = [&](int w) -> uint64_t {
    s.Attach();
    if (spec.op == ReadOp::kGetAll) {
      expected = ExpectedSum(spec.floats, begin(w), end(w));
    }
    return Lookups(spec.op, s, value_bytes, begin(w), end(w), expected);
  };
  // Each worker's CPU time in the timed part: on a machine shared with other
  // work, lookups per CPU-second are steadier than wall time (but show no
  // scaling).
  SharedArray<int64_t> cpu_ns(kMaxWorkers);
  hooks.work = [&](int w, int) -> uint64_t {
    const int64_t t0 = ThreadCpuNs();
    const uint64_t bad =
        Lookups(spec.op, s, value_bytes, begin(w), end(w), expected);
    cpu_ns[w] = ThreadCpuNs() - t0;
    return bad;
  };
  const RunResult r = RunWorkers(Mode::kProcesses, workers, 1, hooks);
  if (!r.error.empty() || r.failures != 0) {
    const std::string why = r.error.empty()
                                ? std::to_string(r.failures) + " wrong results"
                                : r.error;
    state.SkipWithError(why.c_str());
    return;
  }
  state.SetIterationTime(r.seconds);
  state.counters["ops_per_s"] = double(kLookups) / r.seconds;
  int64_t cpu_total = 0;
  for (int w = 0; w < workers; ++w) cpu_total += cpu_ns[w];
  state.counters["cpu_ops_per_s"] = double(kLookups) * 1e9 / double(cpu_total);
  state.counters["workers"] = workers;
  state.counters["value_bytes"] = double(value_bytes);
}

void RunReadBenchmark(benchmark::State& state, const ReadSpec& spec) {
  const uint64_t values =
      kPresentKeys * (uint64_t(spec.floats) * sizeof(float) + 64);
  for (auto _ : state) {
    std::string error;
    if (spec.system == System::kBare) {
      const BareTable* t = StoreFor<BareTable>(
          "bare/" + std::to_string(spec.floats), values,
          [&] { return std::make_shared<BareTable>(spec.floats); }, &error);
      if (t == nullptr) {
        state.SkipWithError(error.c_str());
        return;
      }
      Measure(state, BareSystem(*t), spec);
      continue;
    }
    const ShmheapTable* t = StoreFor<ShmheapTable>(
        "shmheap/" + std::to_string(spec.floats) +
            (spec.keep_keys ? "/kept" : "/hash"),
        values,
        [&] {
          return std::make_shared<ShmheapTable>(spec.floats, spec.keep_keys);
        },
        &error);
    if (t == nullptr) {
      state.SkipWithError(error.c_str());
      return;
    }
    if (spec.system == System::kScope) {
      Measure(state, ScopeSystem(*t), spec);
    } else {
      Measure(state, HeapSystem(*t), spec);
    }
  }
}

// Registers "read20/<system>/<op>/bytes:<n>/keys:<kept|hash|none>/
// workers:<n>", grouped by store so that each is built once.
void RegisterAll() {
  constexpr ReadOp kOps[] = {ReadOp::kContainsHit, ReadOp::kContainsMiss,
                             ReadOp::kGetOne,      ReadOp::kGetAll,
                             ReadOp::kGetMiss,     ReadOp::kGetBatch};
  auto add = [](const ReadSpec& spec) {
    static const char* const kSystems[] = {"bare", "scope", "heap"};
    const std::string name =
        std::string("read20/") + kSystems[static_cast<int>(spec.system)] + "/" +
        ReadOpName(spec.op) +
        "/bytes:" + std::to_string(spec.floats * sizeof(float)) + "/keys:" +
        (spec.system == System::kBare ? "none"
         : spec.keep_keys             ? "kept"
                                      : "hash") +
        "/workers:" + std::to_string(spec.workers);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [spec](benchmark::State& state) { RunReadBenchmark(state, spec); })
        ->UseManualTime()
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  };
  for (int floats : kValueFloats) {
    for (ReadOp op : kOps) {
      for (int workers : {1, 2}) {
        add({System::kBare, op, floats, false, workers});
      }
    }
    for (bool keep : {true, false}) {
      for (System system : {System::kScope, System::kHeap}) {
        for (ReadOp op : kOps) {
          // Batched lookups exist through a ReadScope only.
          if (system == System::kHeap && op == ReadOp::kGetBatch) continue;
          for (int workers : {1, 2}) {
            add({system, op, floats, keep, workers});
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
