// The table's per-operation concurrency contract (hashtable/table.h), checked
// with threads that share one Heap object, so that ThreadSanitizer sees every
// access: the same scenarios as tests/table_fork_test.cc (distinct adds,
// racing adds, replace and remove racing with get), scaled down.
//
// Every thread reports what it read back through shared arrays; the main
// thread checks every recorded value, and reads everything again itself.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "shmheap.h"
#include "tests/table_scenarios.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using ::shmheap::testing::DistinctKeysAreAllReadable;
using ::shmheap::testing::RaceToAdd;
using ::shmheap::testing::RaceToAddMany;
using ::shmheap::testing::ReadScopesRacingWithWritersAndCollector;
using ::shmheap::testing::ReplaceAndRemoveRacingWithGet;
using ::shmheap::testing::RunThreads;
using ::shmheap::testing::ScenarioRunner;

// The shared scenarios (tests/table_scenarios.h) run over threads.
ScenarioRunner Threads() { return {RunThreads, "thread", "the main thread"}; }

// Four threads each publish 5,000 keys of their own (float32 arrays of 1 to
// 13 elements derived from the key). Every Add returns true, and after a
// barrier every thread, and then the main thread, reads all 20,000 keys
// back with the right dims, layout, kind and every element.
TEST(TableThreads, DistinctKeysFromFourThreadsAreAllReadable) {
  DistinctKeysAreAllReadable(Threads(), /*workers=*/4,
                             /*keys_per_worker=*/5000,
                             /*table_slots_log2=*/16);
}

// Four threads race to add the same 1,000 keys, each with contents of its
// own (version = thread index + 1). Exactly one Add per key returns true,
// and after a barrier every thread, and the main thread, reads exactly the
// winner's contents for every key.
TEST(TableThreads, RacingAddsHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(Threads(), /*racers=*/4, /*table_slots_log2=*/12,
            /*via_reserve=*/false);
}

// The same race through Reserve + Publish, where every racer builds its
// value and the slot's compare-and-swap alone decides: exactly one Publish
// per key returns true, and everyone reads the winner's contents.
TEST(TableThreads, RacingPublishesHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(Threads(), /*racers=*/4, /*table_slots_log2=*/12,
            /*via_reserve=*/true);
}

// Four threads of one session race to add the same 2,048 keys, two with
// AddMany (batches that also repeat a key within themselves) and two with
// single Adds: exactly one call publishes each key, everyone reads the
// winner's contents, and the counters, which both paths update without a
// locked instruction under the session's allocation lock, agree with the
// table exactly (Verify).
TEST(TableThreads, RacingBatchedAndSingleAddsHaveOneWinnerAndExactCounters) {
  RaceToAddMany(Threads(), /*racers=*/4, /*table_slots_log2=*/13);
}

// The counters' single-writer rule under load: four threads of one session,
// started together, each add 40,000 keys of their own (two threads with
// single Adds, two with AddMany batches of 64), then remove every fourth
// one. Each thread's updates are a relaxed load and store under the
// session's allocation lock (heap/session.h, "Counters"); an update made
// outside it would lose other threads' counts. Afterwards stats() counts
// exactly the live keys, used slots and live bytes, and Verify agrees with
// the table; every value reads back.
TEST(TableThreads, WritersOfOneSessionKeepItsCountersExact) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 40000;
  constexpr int kBatch = 64;
  Heap heap = ::shmheap::testing::CreateHeap(/*table_slots_log2=*/18);
  ::shmheap::testing::SharedBarrier start(kThreads);
  const int64_t dims[] = {2};
  const std::vector<int> codes = RunThreads(kThreads, [&](int t) {
    int bad = 0;
    std::vector<std::string> names(kBatch);
    std::vector<std::vector<float>> values(kBatch);
    std::vector<AddItem> items(kBatch);
    std::vector<absl::StatusOr<bool>> results(kBatch);
    start.Wait();
    for (int i = t * kPerThread; i < (t + 1) * kPerThread; i += kBatch) {
      for (int j = 0; j < kBatch; ++j) {
        names[j] = ::shmheap::testing::KeyName(i + j);
        values[j] = ::shmheap::testing::ArrayFor(i + j, 0, 2);
        items[j] = AddItem::Of<float>(names[j], values[j], dims);
      }
      if (t % 2 == 0) {
        const absl::StatusOr<size_t> n = heap.AddMany(items, results);
        bad += !n.ok() || *n != kBatch;
      } else {
        for (int j = 0; j < kBatch; ++j) {
          const absl::StatusOr<bool> r =
              heap.Add<float>(names[j], values[j], dims);
          bad += !r.ok() || !*r;
        }
      }
    }
    for (int i = t * kPerThread; i < (t + 1) * kPerThread; i += 4) {
      bad += !heap.Remove(::shmheap::testing::KeyName(i)).ok();
    }
    return bad;
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(codes[t], 0) << "thread " << t;
  int64_t mismatches = 0;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    const std::string k = ::shmheap::testing::KeyName(i);
    if (i % 4 == 0) {
      mismatches += heap.Contains(k);
    } else {
      mismatches += ::shmheap::testing::Mismatches(
          heap.Get<float>(k), ::shmheap::testing::ArrayFor(i, 0, 2));
    }
  }
  EXPECT_EQ(mismatches, 0);
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, uint64_t{kThreads * kPerThread * 3 / 4});
  EXPECT_EQ(s.table_used, uint64_t{kThreads * kPerThread});
  const absl::Status verified = heap.Verify();
  EXPECT_TRUE(verified.ok()) << verified;
}

// Two writer threads Replace (and now and then Remove) 64 keys with new
// versions while two reader threads Get them for about a second. Every
// successful read is entirely the array of one version, never a mix of two;
// NotFound is allowed. Afterwards stats() agrees with the table.
TEST(TableThreads, ReplaceAndRemoveRacingWithGetNeverShowATornValue) {
  ReplaceAndRemoveRacingWithGet(Threads(), /*writers=*/2, /*readers=*/2,
                                /*max_writes_per_writer=*/50000,
                                std::chrono::milliseconds(1000));
}

// Read scopes (Heap::Read) racing with writers and a collector: a
// collector, two writers and reader threads that look keys up every way a
// scope offers, reading every returned value in full inside its scope. No
// value is ever torn or moved under a scope, batches agree with themselves,
// collections run between scopes, and the heap verifies afterwards
// (tests/table_scenarios.h, scenario d).
TEST(TableThreads, ReadScopesRacingWithWritersAndCollectorNeverSeeAMovedValue) {
  ReadScopesRacingWithWritersAndCollector(
      Threads(), /*writers=*/2, /*readers=*/2, /*max_writes_per_writer=*/20000,
      std::chrono::milliseconds(1000), std::chrono::microseconds(300));
}

}  // namespace
}  // namespace shmheap
