// The limits for the table workloads: what a table of the same slot count
// costs when it does nothing but probe.
//
//   bare       a single-process linear-probing array of 2^16 {key, value}
//              uint64 slots, the key being the random 64-bit number behind
//              the 16-byte key (so no hashing, no key comparison beyond one
//              word, no values, no atomics, no sharing). Issue 6's limit.
//   bare_copy  the same array, plus a copy of the value into (and, on get,
//              a read of its first element from) a private arena at a fixed
//              place per key: the floor for any store that copies values in
//              and reads them in place, which the uint64 array is not.
//
// Removal leaves a tombstone (value 0) and a re-add of the same key revives
// it, as in shmheap's table, so the mix's rounds behave alike.

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "bench/harness.h"

namespace shmheap::bench {
namespace {

template <bool kCopy>
class BareArray {
 public:
  // One worker, no fork: the limit is single-process by definition.
  static constexpr Mode kMode = Mode::kThreads;

  explicit BareArray(const Spec& spec)
      : slots_(kSlots), value_bytes_(spec.value_bytes()) {
    if constexpr (kCopy) {
      // Pages are faulted in by the first write, as a fresh heap's are.
      arena_bytes_ = kNumKeys * value_bytes_;
      void* p = mmap(nullptr, arena_bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) std::abort();
      arena_ = static_cast<std::byte*>(p);
    }
  }
  ~BareArray() {
    if (arena_ != nullptr) munmap(arena_, arena_bytes_);
  }
  BareArray(const BareArray&) = delete;
  BareArray& operator=(const BareArray&) = delete;

  void Attach(int) {}
  void Detach() {}
  struct NoScope {};
  NoScope Scope() const { return {}; }
  void AfterMeasurement(const Spec&) {}
  void Clear() { std::memset(slots_.data(), 0, kSlots * sizeof(Slot)); }

  bool Add(uint64_t id, std::span<const float> value) {
    const uint64_t key = Keys::Get().raw(id);
    for (uint64_t i = key & kMask, n = 0; n < kSlots;
         ++n, i = (i + 1) & kMask) {
      Slot& s = slots_[i];
      if (s.key == 0 || s.key == key) {
        if (s.key == key && s.value != 0) return false;  // write-once
        if constexpr (kCopy) {
          std::memcpy(arena_ + id * value_bytes_, value.data(), value_bytes_);
        }
        s.key = key;
        s.value = id + 1;  // 0 marks a tombstone
        return true;
      }
    }
    return false;  // full
  }

  bool Get(uint64_t id, float* first) const {
    const uint64_t key = Keys::Get().raw(id);
    for (uint64_t i = key & kMask, n = 0; n < kSlots;
         ++n, i = (i + 1) & kMask) {
      const Slot& s = slots_[i];
      if (s.key == key) {
        if (s.value == 0) return false;
        if constexpr (kCopy) {
          std::memcpy(first, arena_ + (s.value - 1) * value_bytes_,
                      sizeof(float));
        } else {
          *first = static_cast<float>(s.value);  // == Marker(id)
        }
        return true;
      }
      if (s.key == 0) return false;
    }
    return false;
  }

  bool Remove(uint64_t id) {
    const uint64_t key = Keys::Get().raw(id);
    for (uint64_t i = key & kMask, n = 0; n < kSlots;
         ++n, i = (i + 1) & kMask) {
      Slot& s = slots_[i];
      if (s.key == key) {
        const bool was = s.value != 0;
        s.value = 0;
        return was;
      }
      if (s.key == 0) return false;
    }
    return false;
  }

 private:
  static constexpr uint64_t kMask = kSlots - 1;
  struct Slot {
    uint64_t key;
    uint64_t value;
  };
  std::vector<Slot> slots_;
  uint64_t value_bytes_;
  std::byte* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
};

void RegisterAll() {
  // Single-worker adds of 29k..59k keys take well under a millisecond here:
  // repeat them (cleared between, untimed) for a measurable time.
  constexpr OpCounts kBare = {
      .gets = 2'000'000, .mix = 700'000, .add_rounds = 32};
  constexpr OpCounts kBareCopy = {
      .gets = 1'000'000, .mix = 400'000, .add_rounds = 4};
  auto single = [](const Spec& s) { return s.workers == 1; };
  RegisterTable<BareArray<false>>("bare", kBare, single);
  RegisterTable<BareArray<true>>("bare_copy", kBareCopy, single);
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
