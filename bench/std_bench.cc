// The in-process baseline on the table workloads of bench/harness.h: a
// std::unordered_map from the 16-byte key to a std::vector<float> under one
// std::shared_mutex (shared for gets, exclusive for adds and removes), with
// threads instead of processes. It is what one writes when the workers can
// be threads; shmheap has to beat the cost of crossing processes with it.
//
// As for Boost, the value is built before the exclusive lock is taken, the
// key is hashed with XXH3, and the map has 2^16 buckets and never rehashes.

#include <xxhash.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench/harness.h"

namespace shmheap::bench {
namespace {

struct Key16 {
  std::array<char, kKeyBytes> bytes;
  bool operator==(const Key16& other) const = default;
};

struct Key16Hash {
  size_t operator()(const Key16& k) const {
    return XXH3_64bits(k.bytes.data(), k.bytes.size());
  }
};

Key16 MakeKey(uint64_t id) {
  Key16 k;
  std::memcpy(k.bytes.data(), Keys::Get().str(id).data(), kKeyBytes);
  return k;
}

class StdStore {
 public:
  static constexpr Mode kMode = Mode::kThreads;

  explicit StdStore(const Spec&) {
    map_.max_load_factor(1.0f);
    map_.rehash(kSlots);
  }

  void Attach(int) {}
  void Detach() {}
  struct NoScope {};
  NoScope Scope() const { return {}; }
  void AfterMeasurement(const Spec&) {}

  bool Add(uint64_t id, std::span<const float> value) {
    std::vector<float> v(value.begin(), value.end());
    const Key16 key = MakeKey(id);
    std::unique_lock<std::shared_mutex> lock(mutex_);
    return map_.emplace(key, std::move(v)).second;
  }

  bool Get(uint64_t id, float* first) const {
    const Key16 key = MakeKey(id);
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    *first = it->second.front();
    return true;
  }

  bool Remove(uint64_t id) {
    const Key16 key = MakeKey(id);
    std::unique_lock<std::shared_mutex> lock(mutex_);
    return map_.erase(key) == 1;
  }

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<Key16, std::vector<float>, Key16Hash> map_;
};

void RegisterAll() {
  constexpr OpCounts kCounts = {
      .gets = 400'000, .mix = 160'000, .add_rounds = 1};
  RegisterTable<StdStore>("std", kCounts, [](const Spec&) { return true; });
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
