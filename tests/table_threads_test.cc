// The table's per-operation concurrency contract (hashtable/table.h), checked
// with threads that share one Heap object, so that ThreadSanitizer sees every
// access: the same scenarios as tests/table_fork_test.cc (distinct adds,
// racing adds, replace and remove racing with get), scaled down.
//
// Every thread reports what it read back through shared arrays; the main
// thread checks every recorded value, and reads everything again itself.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using ::shmheap::testing::ArrayFor;
using ::shmheap::testing::KeyName;
using ::shmheap::testing::RunThreads;
using ::shmheap::testing::SharedBarrier;
using ::shmheap::testing::ValueFor;

Heap CreateHeap(uint32_t table_slots_log2) {
  Options o;
  o.heap_bytes = uint64_t{1} << 30;  // reserved, not committed
  o.table_slots_log2 = table_slots_log2;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  EXPECT_TRUE(heap.ok()) << heap.status();
  if (!heap.ok()) std::abort();
  return *std::move(heap);
}

// Mismatches between a read and `want`, read as a 1-D float32 array in kC
// layout: 1 for an error status or wrong dims, 1 for a wrong layout or kind,
// plus 1 per element that differs.
int64_t Mismatches(const absl::StatusOr<ArrayView<float>>& got,
                   std::span<const float> want) {
  if (!got.ok()) return 1;
  if (got->ndims() != 1 || got->dim(0) != static_cast<int64_t>(want.size())) {
    return 1;
  }
  int64_t bad = 0;
  if (got->layout() != Layout::kC || got->kind() != Kind::kFloat32) ++bad;
  const std::span<const float> flat = got->flat();
  for (size_t j = 0; j < want.size(); ++j) bad += flat[j] != want[j];
  return bad;
}

absl::StatusOr<bool> AddArray(Heap& heap, const std::string& key,
                              const std::vector<float>& data) {
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  return heap.Add<float>(key, data, dims);
}

absl::StatusOr<bool> ReplaceArray(Heap& heap, const std::string& key,
                                  const std::vector<float>& data) {
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  return heap.Replace<float>(key, data, dims);
}

// Adds `data` with Add, or with Reserve, a copy into the builder and Publish.
// Publish has no early check for a present key (Add returns false before
// building anything when it sees one), so racing publishers always meet at
// the slot's compare-and-swap.
absl::StatusOr<bool> AddOrPublish(Heap& heap, const std::string& key,
                                  const std::vector<float>& data,
                                  bool via_reserve) {
  if (!via_reserve) return AddArray(heap, key, data);
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  absl::StatusOr<Builder<float>> builder = heap.Reserve<float>(key, dims);
  if (!builder.ok()) return builder.status();
  std::copy(data.begin(), data.end(), builder->data().begin());
  return builder->Publish();
}

// Four threads each publish 5,000 keys of their own (float32 arrays of 1 to
// 13 elements derived from the key). Every Add returns true, and after a
// barrier every thread, and then the main thread, reads all 20,000 keys
// back with the right dims, layout, kind and every element.
TEST(TableThreads, DistinctKeysFromFourThreadsAreAllReadable) {
  constexpr int kThreads = 4;
  constexpr int kKeysPerThread = 5000;
  constexpr int kKeys = kThreads * kKeysPerThread;
  Heap heap = CreateHeap(16);
  SharedBarrier barrier(kThreads);
  std::vector<int64_t> failed_adds(kThreads, -1);
  std::vector<int64_t> mismatches(kThreads, -1);

  const std::vector<int> codes = RunThreads(kThreads, [&](int t) {
    int64_t failed = 0;
    for (int i = t * kKeysPerThread; i < (t + 1) * kKeysPerThread; ++i) {
      const absl::StatusOr<bool> added =
          AddArray(heap, KeyName(i), ArrayFor(i, 0, i % 13 + 1));
      if (!added.ok() || !*added) ++failed;
    }
    failed_adds[t] = failed;
    barrier.Wait();
    int64_t bad = 0;
    for (int i = 0; i < kKeys; ++i) {
      bad +=
          Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, i % 13 + 1));
    }
    mismatches[t] = bad;
    return static_cast<int>(std::min<int64_t>(failed + bad, 255));
  });

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(codes[t], 0) << "thread " << t;
    EXPECT_EQ(failed_adds[t], 0) << "thread " << t;
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  }
  int64_t main_bad = 0;
  for (int i = 0; i < kKeys; ++i) {
    main_bad +=
        Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, i % 13 + 1));
  }
  EXPECT_EQ(main_bad, 0);
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, uint64_t{kKeys});
  EXPECT_EQ(s.table_used, uint64_t{kKeys});
  EXPECT_EQ(s.table_tombstones, 0u);
}

// Every racer adds the same 1,000 keys, its own contents under each (version
// = racer index + 1), with Add or with Reserve + Publish; then, after a
// barrier, reads them all back.
void RaceToAdd(bool via_reserve) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 1000;
  constexpr size_t kLen = 16;
  Heap heap = CreateHeap(12);
  SharedBarrier start(kThreads);
  SharedBarrier added(kThreads);
  std::vector<uint8_t> won(kThreads * kKeys, 0);
  std::vector<int32_t> seen(kThreads * kKeys, -2);
  std::vector<int64_t> errors(kThreads, -1);

  // The index of the thread whose contents `got` holds, or -1.
  auto writer_of = [](const absl::StatusOr<ArrayView<float>>& got, int key) {
    for (int t = 0; t < kThreads; ++t) {
      if (Mismatches(got, ArrayFor(key, t + 1, kLen)) == 0) return t;
    }
    return -1;
  };

  const std::vector<int> codes = RunThreads(kThreads, [&](int t) {
    start.Wait();
    int64_t bad = 0;
    for (int k = 0; k < kKeys; ++k) {
      const absl::StatusOr<bool> r =
          AddOrPublish(heap, KeyName(k), ArrayFor(k, t + 1, kLen), via_reserve);
      if (!r.ok()) ++bad;
      won[t * kKeys + k] = r.ok() && *r ? 1 : 0;
    }
    errors[t] = bad;
    added.Wait();
    for (int k = 0; k < kKeys; ++k) {
      seen[t * kKeys + k] = writer_of(heap.Get<float>(KeyName(k)), k);
    }
    return 0;
  });

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(codes[t], 0) << "thread " << t;
    EXPECT_EQ(errors[t], 0) << "thread " << t;
  }
  int total_wins = 0;
  for (int k = 0; k < kKeys; ++k) {
    int winner = -1;
    int wins = 0;
    for (int t = 0; t < kThreads; ++t) {
      if (won[t * kKeys + k]) {
        ++wins;
        winner = t;
      }
    }
    total_wins += wins;
    ASSERT_EQ(wins, 1) << "key " << k;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(seen[t * kKeys + k], winner)
          << "thread " << t << " read key " << k;
    }
    ASSERT_EQ(writer_of(heap.Get<float>(KeyName(k)), k), winner)
        << "the main thread read key " << k;
  }
  EXPECT_EQ(total_wins, kKeys);
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, uint64_t{kKeys});
  EXPECT_EQ(s.table_used, uint64_t{kKeys});
}

// Four threads race to add the same 1,000 keys, each with contents of its
// own (version = thread index + 1). Exactly one Add per key returns true,
// and after a barrier every thread, and the main thread, reads exactly the
// winner's contents for every key.
TEST(TableThreads, RacingAddsHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(/*via_reserve=*/false);
}

// The same race through Reserve + Publish, where every racer builds its
// value and the slot's compare-and-swap alone decides: exactly one Publish
// per key returns true, and everyone reads the winner's contents.
TEST(TableThreads, RacingPublishesHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(/*via_reserve=*/true);
}

constexpr int kRaceKeys = 64;
constexpr size_t kRaceLen = 256;

// The array for version v of `key`: element 0 holds v (exact in a float for
// v < 2^24), the others ValueFor(key, v, j).
std::vector<float> VersionedArray(uint64_t key, uint64_t v) {
  std::vector<float> a = ArrayFor(key, v, kRaceLen);
  a[0] = static_cast<float>(v);
  return a;
}

// The version whose array `got` holds in full, or 0 when it is not one
// version's array (torn, malformed, or an error).
uint64_t VersionOf(const absl::StatusOr<ArrayView<float>>& got, uint64_t key) {
  if (!got.ok() || got->ndims() != 1 ||
      got->dim(0) != static_cast<int64_t>(kRaceLen) ||
      got->layout() != Layout::kC || got->kind() != Kind::kFloat32) {
    return 0;
  }
  const std::span<const float> flat = got->flat();
  const float f = flat[0];
  if (!(f >= 1.0f && f < 16777216.0f)) return 0;
  const uint64_t v = static_cast<uint64_t>(f);
  if (static_cast<float>(v) != f) return 0;
  for (size_t j = 1; j < kRaceLen; ++j) {
    if (flat[j] != ValueFor(key, v, j)) return 0;
  }
  return v;
}

// Two writer threads Replace (and now and then Remove) 64 keys with new
// versions while two reader threads Get them for about a second. Every
// successful read is entirely the array of one version, never a mix of two;
// NotFound is allowed. Afterwards stats() agrees with the table.
TEST(TableThreads, ReplaceAndRemoveRacingWithGetNeverShowATornValue) {
  constexpr int kWriters = 2;
  constexpr int kReaders = 2;
  constexpr int kMaxWritesPerWriter = 50000;  // bounds the heap's growth
  constexpr auto kReadFor = std::chrono::milliseconds(1000);
  Heap heap = CreateHeap(12);
  SharedBarrier start(kWriters + kReaders);
  std::atomic<int> readers_done{0};
  std::vector<int64_t> writer_errors(kWriters, -1);
  std::vector<int64_t> writes(kWriters, 0);
  std::vector<int64_t> reads(kReaders, 0);
  std::vector<int64_t> mismatches(kReaders, -1);
  std::vector<int64_t> changes(kReaders, 0);

  const std::vector<int> codes = RunThreads(kWriters + kReaders, [&](int i) {
    start.Wait();
    if (i < kWriters) {
      const int w = i;
      int64_t errors = 0;
      int64_t n = 0;
      // Relaxed: a stop hint; nothing is published through it.
      for (; n < kMaxWritesPerWriter &&
             readers_done.load(std::memory_order_relaxed) < kReaders;
           ++n) {
        const uint64_t key = (n * 7 + w * 31) % kRaceKeys;
        if (n % 16 == 15) {
          const absl::Status s = heap.Remove(KeyName(key));
          if (!s.ok() && s.code() != absl::StatusCode::kNotFound) ++errors;
        } else {
          const uint64_t v = 2 * static_cast<uint64_t>(n) + w + 1;
          if (!ReplaceArray(heap, KeyName(key), VersionedArray(key, v)).ok()) {
            ++errors;
          }
        }
      }
      writer_errors[w] = errors;
      writes[w] = n;
      return errors == 0 ? 0 : 1;
    }
    const int r = i - kWriters;
    int64_t ok = 0, bad = 0, changed = 0;
    std::vector<uint64_t> last(kRaceKeys, 0);
    const auto until = std::chrono::steady_clock::now() + kReadFor;
    for (uint64_t n = 0; std::chrono::steady_clock::now() < until; ++n) {
      const uint64_t key = (n * 13 + r * 5) % kRaceKeys;
      const absl::StatusOr<ArrayView<float>> got =
          heap.Get<float>(KeyName(key));
      if (!got.ok() && got.status().code() == absl::StatusCode::kNotFound) {
        continue;
      }
      const uint64_t v = VersionOf(got, key);
      if (v == 0) {
        ++bad;
        continue;
      }
      ++ok;
      if (last[key] != 0 && last[key] != v) ++changed;
      last[key] = v;
    }
    reads[r] = ok;
    mismatches[r] = bad;
    changes[r] = changed;
    readers_done.fetch_add(1, std::memory_order_relaxed);
    return bad == 0 ? 0 : 1;
  });

  int64_t total_reads = 0, total_changes = 0;
  for (int i = 0; i < kWriters + kReaders; ++i) {
    EXPECT_EQ(codes[i], 0) << "thread " << i;
  }
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_EQ(writer_errors[w], 0) << "writer " << w;
    EXPECT_GT(writes[w], kRaceKeys) << "writer " << w;
  }
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_EQ(mismatches[r], 0) << "reader " << r;
    total_reads += reads[r];
    total_changes += changes[r];
  }
  EXPECT_GT(total_reads, 1000);
  // The readers did race with the writers: they saw values change.
  EXPECT_GT(total_changes, 0);

  uint64_t present = 0;
  for (int key = 0; key < kRaceKeys; ++key) {
    if (!heap.Contains(KeyName(key))) {
      EXPECT_EQ(heap.Get<float>(KeyName(key)).status().code(),
                absl::StatusCode::kNotFound);
      continue;
    }
    ++present;
    EXPECT_NE(VersionOf(heap.Get<float>(KeyName(key)), key), 0u)
        << "key " << key;
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, present);
  EXPECT_EQ(s.table_used, uint64_t{kRaceKeys});
  EXPECT_EQ(s.table_tombstones, kRaceKeys - present);
  EXPECT_GE(s.live_bytes, present * kRaceLen * sizeof(float));
  // Each Replace built one array; all but the live ones are dead now.
  uint64_t replaces = 0;
  for (int w = 0; w < kWriters; ++w) replaces += writes[w] - writes[w] / 16;
  ASSERT_GE(replaces, present);
  EXPECT_GE(s.dead_bytes, (replaces - present) * kRaceLen * sizeof(float));
}

}  // namespace
}  // namespace shmheap
