// Boost.Interprocess on the table workloads of bench/harness.h: a
// managed_shared_memory segment holding a boost::unordered_map from the
// 16-byte key to an interprocess::vector<float>, guarded by one
// interprocess_upgradable_mutex (shared for gets, exclusive for adds and
// removes). This is how one shares a map of arrays between processes with
// Boost alone.
//
// Workers are forked processes that inherit the mapping (it is the same
// segment at the same address, and everything in it is offset_ptr based).
// To be kind to Boost, an add builds its vector (an allocation in the
// segment, under the segment manager's own lock) before taking the map's
// exclusive lock, so the lock covers only the insertion. The map has 2^16
// buckets, like the other tables, and never rehashes (max load 1.0).

#include <xxhash.h>

#include <array>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_upgradable_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/interprocess/sync/sharable_lock.hpp>
#include <boost/unordered_map.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "bench/harness.h"

namespace shmheap::bench {
namespace {

namespace bip = boost::interprocess;

using SegmentManager = bip::managed_shared_memory::segment_manager;
using FloatAllocator = bip::allocator<float, SegmentManager>;
using FloatVector = bip::vector<float, FloatAllocator>;

struct Key16 {
  std::array<char, kKeyBytes> bytes;
  bool operator==(const Key16& other) const = default;
};

// XXH3, as shmheap hashes keys: the comparison is of the stores, not of
// their hash functions.
struct Key16Hash {
  size_t operator()(const Key16& k) const {
    return XXH3_64bits(k.bytes.data(), k.bytes.size());
  }
};

using MapAllocator =
    bip::allocator<std::pair<const Key16, FloatVector>, SegmentManager>;
using Map = boost::unordered_map<Key16, FloatVector, Key16Hash,
                                 std::equal_to<Key16>, MapAllocator>;

Key16 MakeKey(uint64_t id) {
  Key16 k;
  std::memcpy(k.bytes.data(), Keys::Get().str(id).data(), kKeyBytes);
  return k;
}

class BoostStore {
 public:
  static constexpr Mode kMode = Mode::kProcesses;

  explicit BoostStore(const Spec& spec)
      : name_("shmheap-bench-boost-" + std::to_string(getpid()) + "-" +
              std::to_string(next_id_++)) {
    bip::shared_memory_object::remove(name_.c_str());
    // Room for every key this store can hold (present, mix and absent
    // never all at once, but it is only reserved address space), with the
    // allocator's per-block overhead, the map's nodes and buckets.
    const uint64_t bytes =
        kNumKeys * (spec.value_bytes() + 256) + kSlots * 16 + (64 << 20);
    segment_ = std::make_unique<bip::managed_shared_memory>(
        bip::create_only, name_.c_str(), bytes);
    mutex_ = segment_->construct<bip::interprocess_upgradable_mutex>("mutex")();
    map_ = segment_->construct<Map>("map")(
        kSlots, Key16Hash(), std::equal_to<Key16>(),
        MapAllocator(segment_->get_segment_manager()));
    map_->max_load_factor(1.0f);
  }
  ~BoostStore() {
    segment_.reset();
    bip::shared_memory_object::remove(name_.c_str());
  }
  BoostStore(const BoostStore&) = delete;
  BoostStore& operator=(const BoostStore&) = delete;

  void Attach(int) {}
  void Detach() {}
  struct NoScope {};
  NoScope Scope() const { return {}; }
  void AfterMeasurement(const Spec&) {}

  bool Add(uint64_t id, std::span<const float> value) {
    FloatVector v(value.begin(), value.end(),
                  FloatAllocator(segment_->get_segment_manager()));
    const Key16 key = MakeKey(id);
    bip::scoped_lock<bip::interprocess_upgradable_mutex> lock(*mutex_);
    return map_->emplace(key, boost::move(v)).second;
  }

  bool Get(uint64_t id, float* first) const {
    const Key16 key = MakeKey(id);
    bip::sharable_lock<bip::interprocess_upgradable_mutex> lock(*mutex_);
    auto it = map_->find(key);
    if (it == map_->end()) return false;
    *first = it->second.front();
    return true;
  }

  bool Remove(uint64_t id) {
    const Key16 key = MakeKey(id);
    bip::scoped_lock<bip::interprocess_upgradable_mutex> lock(*mutex_);
    return map_->erase(key) == 1;
  }

 private:
  static inline int next_id_ = 0;
  std::string name_;
  std::unique_ptr<bip::managed_shared_memory> segment_;
  bip::interprocess_upgradable_mutex* mutex_ = nullptr;
  Map* map_ = nullptr;
};

void RegisterAll() {
  constexpr OpCounts kCounts = {
      .gets = 200'000, .mix = 100'000, .add_rounds = 1};
  RegisterTable<BoostStore>("boost", kCounts, [](const Spec&) { return true; });
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
