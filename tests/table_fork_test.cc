// The table's per-operation concurrency contract (hashtable/table.h), checked
// across real forked processes that share one anonymous heap, plus the
// single-process semantics of every table operation and of stats().
//
// Every child reports what it read back through SharedArrays and its exit
// code; the parent checks every recorded value, and reads everything again
// itself.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <span>
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

using ::shmheap::testing::AddArray;
using ::shmheap::testing::ArrayFor;
using ::shmheap::testing::CreateHeap;
using ::shmheap::testing::DistinctKeysAreAllReadable;
using ::shmheap::testing::KeyName;
using ::shmheap::testing::Mismatches;
using ::shmheap::testing::RaceToAdd;
using ::shmheap::testing::RaceToAddMany;
using ::shmheap::testing::ReadScopesRacingWithWritersAndCollector;
using ::shmheap::testing::ReplaceAndRemoveRacingWithGet;
using ::shmheap::testing::ReplaceArray;
using ::shmheap::testing::RunProcesses;
using ::shmheap::testing::ScenarioRunner;
using ::shmheap::testing::SharedArray;
using ::shmheap::testing::TableTestOptions;

// The shared scenarios (tests/table_scenarios.h) run over forked processes.
ScenarioRunner Processes() { return {RunProcesses, "process", "the parent"}; }

// ---------------------------------------------------------------------------
// a. Distinct keys from many processes.

// Eight processes each publish 20,000 keys of their own (float32 arrays of 1
// to 13 elements derived from the key). Every Add returns true, and after a
// barrier every process, and then the parent, reads all 160,000 keys back
// with the right dims, layout, kind and every element: publications by one
// process are complete and visible to all others, and keys from different
// processes never disturb each other in the shared table.
TEST(TableFork, DistinctKeysFromEightProcessesAreAllReadable) {
  DistinctKeysAreAllReadable(Processes(), /*workers=*/8,
                             /*keys_per_worker=*/20000,
                             /*table_slots_log2=*/18);
}

// ---------------------------------------------------------------------------
// b. Racing adds of the same keys.

// Eight processes race to add the same 1,000 keys, each with contents of its
// own (version = process index + 1). Add is write-once: exactly one Add per
// key returns true, and after a barrier every process, and the parent, reads
// exactly the winner's contents for every key, never a loser's or a mix.
TEST(TableFork, RacingAddsHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(Processes(), /*racers=*/8, /*table_slots_log2=*/14,
            /*via_reserve=*/false);
}

// The same race through Reserve + Publish, where every racer builds its
// value and the slot's compare-and-swap alone decides: exactly one Publish
// per key returns true, and everyone reads the winner's contents.
TEST(TableFork, RacingPublishesHaveExactlyOneWinnerThatEveryoneSees) {
  RaceToAdd(Processes(), /*racers=*/8, /*table_slots_log2=*/14,
            /*via_reserve=*/true);
}

// Eight processes race to add the same 2,048 keys, four with AddMany
// (batches of 64 that also repeat a key within themselves) and four with
// single Adds: exactly one call in all publishes each key, each batch's
// published count equals its true results, everyone (and the parent)
// reads exactly the winner's contents element by element, and Verify finds
// the counters exact.
TEST(TableFork, RacingBatchedAndSingleAddsHaveExactlyOneWinner) {
  RaceToAddMany(Processes(), /*racers=*/8, /*table_slots_log2=*/13);
}

// ---------------------------------------------------------------------------
// c. Replace and remove racing with get.

// Two writer processes Replace (and now and then Remove) 64 keys with new
// versions while four reader processes Get them for about 1.5 seconds. Every
// successful read is entirely the array of one version, never a mix of two
// (replace / get and remove / get in the contract); NotFound is allowed.
// Afterwards stats() agrees with the table: live_blobs is the number of keys
// Contains() reports, every key holds one complete version, and the bytes
// and slots add up.
TEST(TableFork, ReplaceAndRemoveRacingWithGetNeverShowATornValue) {
  ReplaceAndRemoveRacingWithGet(Processes(), /*writers=*/2, /*readers=*/4,
                                /*max_writes_per_writer=*/150000,
                                std::chrono::milliseconds(1500));
}

// ---------------------------------------------------------------------------
// d. 64-bit hash collisions.

constexpr uint64_t kCollidingHash = 0x0123456789abcdefULL;

// Two keys forced onto one 64-bit hash through the HashedKey API, with keys
// kept: the second key can neither take nor read nor replace nor remove the
// first key's value (kAlreadyExists / kNotFound), and the first key's value
// survives every attempt.
TEST(TableFork, CollidingKeysAreToldApartInOneProcess) {
  Heap heap = CreateHeap(10);
  const HashedKey alpha{kCollidingHash, "alpha"};
  const HashedKey beta{kCollidingHash, "beta"};
  const std::vector<float> a = ArrayFor(1, 1, 8);
  const std::vector<float> b = ArrayFor(2, 2, 8);
  const int64_t dims[] = {8};

  absl::StatusOr<bool> added = heap.Add<float>(alpha, a, dims);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(*added);
  added = heap.Add<float>(beta, b, dims);
  EXPECT_EQ(added.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(heap.Get<float>(beta).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(heap.Contains(beta));
  EXPECT_EQ(heap.Replace<float>(beta, b, dims).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(heap.Remove(beta).code(), absl::StatusCode::kNotFound);

  EXPECT_TRUE(heap.Contains(alpha));
  EXPECT_EQ(Mismatches(heap.Get<float>(alpha), a), 0);
  // An empty key trusts the hash alone, so it reads whatever holds it.
  EXPECT_EQ(Mismatches(heap.Get<float>(HashedKey{kCollidingHash, ""}), a), 0);
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, 1u);
  EXPECT_EQ(s.table_used, 1u);
}

// The same across processes: a child adds alpha; a second child, and then
// the parent, try beta under the same hash and get kAlreadyExists /
// kNotFound, and read alpha's data intact.
TEST(TableFork, CollidingKeysAreToldApartAcrossProcesses) {
  Heap heap = CreateHeap(10);
  const HashedKey alpha{kCollidingHash, "alpha"};
  const HashedKey beta{kCollidingHash, "beta"};
  const std::vector<float> a = ArrayFor(1, 1, 8);
  const std::vector<float> b = ArrayFor(2, 2, 8);
  const int64_t dims[] = {8};

  std::vector<int> codes = RunProcesses(1, [&](int) {
    absl::StatusOr<bool> r = heap.Add<float>(alpha, a, dims);
    return r.ok() && *r ? 0 : 1;
  });
  ASSERT_EQ(codes[0], 0);

  // What the second child saw: [0] Add, [1] Get, [2] Replace, [3] Remove of
  // beta as status codes, [4] Contains(beta), [5] mismatches reading alpha.
  SharedArray<int32_t> child(6);
  codes = RunProcesses(1, [&](int) {
    child[0] =
        static_cast<int32_t>(heap.Add<float>(beta, b, dims).status().code());
    child[1] = static_cast<int32_t>(heap.Get<float>(beta).status().code());
    child[2] = static_cast<int32_t>(
        heap.Replace<float>(beta, b, dims).status().code());
    child[3] = static_cast<int32_t>(heap.Remove(beta).code());
    child[4] = heap.Contains(beta) ? 1 : 0;
    child[5] = static_cast<int32_t>(Mismatches(heap.Get<float>(alpha), a));
    return 0;
  });
  ASSERT_EQ(codes[0], 0);
  EXPECT_EQ(child[0], static_cast<int32_t>(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(child[1], static_cast<int32_t>(absl::StatusCode::kNotFound));
  EXPECT_EQ(child[2], static_cast<int32_t>(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(child[3], static_cast<int32_t>(absl::StatusCode::kNotFound));
  EXPECT_EQ(child[4], 0);
  EXPECT_EQ(child[5], 0);

  EXPECT_EQ(heap.Add<float>(beta, b, dims).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(heap.Get<float>(beta).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(heap.Replace<float>(beta, b, dims).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(heap.Remove(beta).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Mismatches(heap.Get<float>(alpha), a), 0);
  EXPECT_EQ(heap.stats().live_blobs, 1u);
}

// ---------------------------------------------------------------------------
// e. A full table.

// A table of 64 slots takes exactly 64 keys; the 65th Add is
// kResourceExhausted (never an endless probe), is not visible afterwards, and
// every one of the 64 still reads back intact.
TEST(TableFork, FullTableRefusesTheNextKeyAndKeepsTheOthers) {
  constexpr int kSlots = 64;
  Heap heap = CreateHeap(6);
  ASSERT_EQ(heap.stats().table_slots, uint64_t{kSlots});
  for (int i = 0; i < kSlots; ++i) {
    const absl::StatusOr<bool> added =
        AddArray(heap, KeyName(i), ArrayFor(i, 0, 4));
    ASSERT_TRUE(added.ok()) << "key " << i << ": " << added.status();
    EXPECT_TRUE(*added) << "key " << i;
  }
  const absl::StatusOr<bool> extra =
      AddArray(heap, KeyName(kSlots), ArrayFor(kSlots, 0, 4));
  EXPECT_EQ(extra.status().code(), absl::StatusCode::kResourceExhausted)
      << extra.status();
  EXPECT_FALSE(heap.Contains(KeyName(kSlots)));
  EXPECT_EQ(heap.Get<float>(KeyName(kSlots)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ReplaceArray(heap, KeyName(kSlots), ArrayFor(kSlots, 0, 4))
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  for (int i = 0; i < kSlots; ++i) {
    EXPECT_TRUE(heap.Contains(KeyName(i))) << "key " << i;
    EXPECT_EQ(Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, 4)), 0)
        << "key " << i;
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.table_used, uint64_t{kSlots});
  EXPECT_EQ(s.live_blobs, uint64_t{kSlots});
}

// 64 keys whose hashes all start their probe at slot 1 of a 64-slot table
// form one cluster, so the last of them probes every slot and wraps past the
// end: every Add succeeds, every key reads back its own value, and a 65th key
// on the same start slot is kResourceExhausted for Add and kNotFound for Get
// (the probe ends after one full turn).
TEST(TableFork, OneClusterFillsTheTableAcrossTheWrapAround) {
  constexpr int kSlots = 64;
  Heap heap = CreateHeap(6);
  std::vector<std::string> names;
  for (int i = 0; i <= kSlots; ++i) names.push_back("cluster:" + KeyName(i));
  auto key = [&](int i) {
    return HashedKey{(static_cast<uint64_t>(i) << 6) | 1, names[i]};
  };
  const int64_t dims[] = {3};
  for (int i = 0; i < kSlots; ++i) {
    const absl::StatusOr<bool> added =
        heap.Add<float>(key(i), ArrayFor(i, 5, 3), dims);
    ASSERT_TRUE(added.ok()) << "key " << i << ": " << added.status();
    EXPECT_TRUE(*added) << "key " << i;
  }
  for (int i = 0; i < kSlots; ++i) {
    EXPECT_EQ(Mismatches(heap.Get<float>(key(i)), ArrayFor(i, 5, 3)), 0)
        << "key " << i;
  }
  EXPECT_EQ(heap.Add<float>(key(kSlots), ArrayFor(kSlots, 5, 3), dims)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(heap.Get<float>(key(kSlots)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(heap.Contains(key(kSlots)));
  EXPECT_EQ(heap.stats().table_used, uint64_t{kSlots});
}

// ---------------------------------------------------------------------------
// Views across fork.

// A view that the parent holds keeps the parent in scope, whatever a child
// does with its inherited copy: shmheap.h says views "do not survive fork",
// so a child that destroys its copy (as unwinding or returning from main
// does) must not unpin the parent. A collection from another child then
// times out (kDeadlineExceeded) instead of moving the parent's data, and
// the parent's view still reads its value.
//
// Fails today: Pin's destructor calls LocalSession::DropPin on the parent's
// LocalSession object that the child inherited, which takes the count to 0
// and runs LeaveShared(), storing pinned = 0 into the parent's shared
// registry entry (heap/session.cc, DropPin / LeaveShared). The collector
// then slides the blob under the parent's live view.
TEST(TableFork, ChildDroppingAnInheritedViewKeepsTheParentPinned) {
  Heap heap = CreateHeap(10);
  const std::vector<float> want = ArrayFor(2, 2, 1024);
  // Garbage below the value, so that a collection would move it.
  ASSERT_TRUE(*AddArray(heap, "garbage", ArrayFor(1, 1, 1024)));
  ASSERT_TRUE(heap.Remove("garbage").ok());
  ASSERT_TRUE(*AddArray(heap, "value", want));
  absl::StatusOr<ArrayView<float>> view = heap.Get<float>("value");
  ASSERT_TRUE(view.ok()) << view.status();

  std::vector<int> codes = RunProcesses(1, [&](int) {
    *view = ArrayView<float>();  // drops the child's copy of the pin
    return 0;
  });
  ASSERT_EQ(codes[0], 0);
  SharedArray<int32_t> collect_code(1);
  codes = RunProcesses(1, [&](int) {
    CollectOptions options;
    options.deadline = std::chrono::milliseconds(300);
    collect_code[0] =
        static_cast<int32_t>(heap.Collect(options).status().code());
    return 0;
  });
  ASSERT_EQ(codes[0], 0);
  EXPECT_EQ(collect_code[0],
            static_cast<int32_t>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(Mismatches(*view, want), 0);
}

// ---------------------------------------------------------------------------
// g. Iteration.

// Mismatches between a borrowed value and `want` (as Mismatches above).
int64_t RefMismatches(const RawRef& ref, std::span<const float> want) {
  absl::StatusOr<ArrayRef<float>> a = ref.As<float>();
  if (!a.ok() || a->ndims() != 1 ||
      a->dim(0) != static_cast<int64_t>(want.size())) {
    return 1;
  }
  int64_t bad = 0;
  for (size_t j = 0; j < want.size(); ++j) bad += a->flat()[j] != want[j];
  return bad;
}

// Eight processes publish 500 keys each and 100 values by hash alone; the
// parent then removes one key and replaces another. In a read scope,
// ForEach gives every remaining entry exactly once: a key with its own
// hash and every element of its latest contents, a hash-only value with an
// empty key and its contents; a callback that returns false stops it.
TEST(TableFork, ForEachGivesEveryPublishedEntryOnce) {
  constexpr int kWorkers = 8;
  constexpr int kKeys = 500;
  constexpr int kHashOnly = 100;
  constexpr uint64_t kFirstHash = 0x5000;
  Heap heap = CreateHeap(14);
  const std::vector<int> codes = RunProcesses(kWorkers, [&](int p) {
    for (int i = p * kKeys; i < (p + 1) * kKeys; ++i) {
      absl::StatusOr<bool> added =
          AddArray(heap, KeyName(i), ArrayFor(i, 0, i % 13 + 1));
      if (!added.ok() || !*added) return 1;
    }
    for (int j = p * kHashOnly; j < (p + 1) * kHashOnly; ++j) {
      const std::vector<float> v = ArrayFor(j, 5, 3);
      const int64_t dims[] = {3};
      absl::StatusOr<bool> added =
          heap.Add<float>(HashedKey{kFirstHash + j, ""}, v, dims);
      if (!added.ok() || !*added) return 1;
    }
    return 0;
  });
  for (int c : codes) ASSERT_EQ(c, 0);
  ASSERT_TRUE(heap.Remove(KeyName(0)).ok());
  ASSERT_TRUE(*ReplaceArray(heap, KeyName(1), ArrayFor(1, 2, 4)));

  absl::StatusOr<ReadScope> r = heap.Read();
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<int> seen_keys(kWorkers * kKeys, 0);
  std::vector<int> seen_hashes(kWorkers * kHashOnly, 0);
  int64_t bad = 0;
  const size_t given = r->ForEach([&](const ReadScope::Entry& e) {
    if (e.key.empty()) {
      const uint64_t j = e.hash - kFirstHash;
      if (e.hash < kFirstHash || j >= seen_hashes.size()) {
        ++bad;
        return true;
      }
      ++seen_hashes[j];
      bad += RefMismatches(e.value, ArrayFor(j, 5, 3));
      return true;
    }
    const std::string key(e.key);
    // KeyName(i) is "key:<i>".
    int i = -1;
    if (key.rfind("key:", 0) == 0 && key.size() > 4) {
      i = std::atoi(key.c_str() + 4);
    }
    if (i < 0 || i >= kWorkers * kKeys || KeyName(i) != key ||
        e.hash != heap.Hash(key)) {
      ++bad;
      return true;
    }
    ++seen_keys[i];
    bad += RefMismatches(
        e.value, i == 1 ? ArrayFor(1, 2, 4) : ArrayFor(i, 0, i % 13 + 1));
    return true;
  });
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(given, size_t{kWorkers * kKeys - 1 + kWorkers * kHashOnly});
  EXPECT_EQ(seen_keys[0], 0);
  for (int i = 1; i < kWorkers * kKeys; ++i) EXPECT_EQ(seen_keys[i], 1) << i;
  for (int j = 0; j < kWorkers * kHashOnly; ++j) {
    EXPECT_EQ(seen_hashes[j], 1) << j;
  }
  int calls = 0;
  EXPECT_EQ(r->ForEach([&](const ReadScope::Entry&) { return ++calls < 10; }),
            10u);
  EXPECT_EQ(calls, 10);
}

// Four processes remove overlapping batches of 2,000 keys at once (every
// key is in two processes' batches, and each batch also names 100 keys that
// were never added): every key is unlinked exactly once (the removals
// counted over all processes equal the keys), the keys left read back with
// every element, and the counters and Verify agree.
TEST(TableFork, RemoveManyFromFourProcessesUnlinksEachKeyOnce) {
  constexpr int kKeys = 4000;
  constexpr int kWorkers = 4;
  Heap heap = CreateHeap(14);
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_TRUE(*AddArray(heap, KeyName(i), ArrayFor(i, 0, i % 7 + 1)));
  }
  // Key i < 3000 is removed by processes i % 4 and (i + 1) % 4; keys from
  // 3000 on stay.
  SharedArray<int64_t> removed(kWorkers);
  const std::vector<int> codes = RunProcesses(kWorkers, [&](int p) {
    std::vector<std::string> names;
    for (int i = 0; i < 3000; ++i) {
      if (i % kWorkers == p || (i + 1) % kWorkers == p) {
        names.push_back(KeyName(i));
      }
    }
    for (int j = 0; j < 100; ++j) names.push_back(KeyName(kKeys + p * 100 + j));
    const std::vector<Key> keys(names.begin(), names.end());
    absl::StatusOr<size_t> n = heap.RemoveMany(keys);
    if (!n.ok()) return 1;
    removed[p] = static_cast<int64_t>(*n);
    return 0;
  });
  for (int c : codes) ASSERT_EQ(c, 0);
  int64_t total = 0;
  for (int p = 0; p < kWorkers; ++p) total += removed[p];
  EXPECT_EQ(total, 3000);
  for (int i = 0; i < kKeys; ++i) {
    if (i < 3000) {
      EXPECT_FALSE(heap.Contains(KeyName(i))) << i;
    } else {
      EXPECT_EQ(
          Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, i % 7 + 1)), 0)
          << i;
    }
  }
  EXPECT_EQ(heap.stats().live_blobs, uint64_t{kKeys - 3000});
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
  // Nothing left to remove: zero, not an error.
  const std::vector<Key> gone = {Key("key:0"), Key("never")};
  EXPECT_EQ(*heap.RemoveMany(gone), 0u);
}

// ---------------------------------------------------------------------------
// h. Counters.

// Eight processes each take 1,000 ids from one counter (FetchAdd(key, 1),
// the counter created by whichever comes first) in a heap that keeps
// checksums, while the parent collects: the ids handed out are exactly
// 0..7,999, each once; the counter then reads 8,000, survives the
// collections and Verify accepts the heap (a counter carries no checksum).
// A key holding another kind or shape is not a counter.
TEST(TableFork, FetchAddHandsOutEveryIdOnceAcrossProcesses) {
  constexpr int kWorkers = 8;
  constexpr int kIds = 1000;
  Options o = ::shmheap::testing::TableTestOptions(10);
  o.checksums = true;
  absl::StatusOr<Heap> created = Heap::Create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  Heap& heap = *created;
  SharedArray<int64_t> ids(kWorkers * kIds);
  SharedArray<int32_t> collections(1);
  const std::vector<int> codes = RunProcesses(kWorkers + 1, [&](int p) {
    if (p == kWorkers) {  // a collector racing the counter's users
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<GcReport> r = heap.Collect();
        if (!r.ok()) return 1;
        collections[0] += r->ran;
      }
      return 0;
    }
    for (int i = 0; i < kIds; ++i) {
      absl::StatusOr<int64_t> id = heap.FetchAdd("ids");
      if (!id.ok()) return 2;
      ids[p * kIds + i] = *id;
    }
    return 0;
  });
  for (int c : codes) ASSERT_EQ(c, 0);
  std::vector<int64_t> all(kWorkers * kIds);
  for (int i = 0; i < kWorkers * kIds; ++i) all[i] = ids[i];
  std::sort(all.begin(), all.end());
  for (int i = 0; i < kWorkers * kIds; ++i) ASSERT_EQ(all[i], i) << i;
  EXPECT_EQ(*heap.FetchAdd("ids", 0), kWorkers * kIds);
  EXPECT_EQ(*heap.FetchAdd("ids", -5), kWorkers * kIds);
  ASSERT_TRUE(heap.Collect().ok());
  EXPECT_EQ(*heap.FetchAdd("ids", 0), kWorkers * kIds - 5);
  absl::StatusOr<ArrayView<int64_t>> v = heap.Get<int64_t>("ids");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->ndims(), 0);
  EXPECT_EQ(v->flat()[0], kWorkers * kIds - 5);
  v = absl::UnknownError("dropped");
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();

  ASSERT_TRUE(*AddArray(heap, "floats", ArrayFor(1, 0, 3)));
  EXPECT_EQ(heap.FetchAdd("floats").status().code(),
            absl::StatusCode::kInvalidArgument);
  const int64_t one[] = {7};
  const int64_t dims[] = {1};
  ASSERT_TRUE(*heap.Add<int64_t>("vector", one, dims));
  EXPECT_EQ(heap.FetchAdd("vector").status().code(),
            absl::StatusCode::kInvalidArgument);
  // An int64 scalar published by Add carries a checksum in this heap:
  // changing it in place would make Verify call the heap damaged.
  ASSERT_TRUE(*heap.Add<int64_t>("sealed", one, {}));
  EXPECT_EQ(heap.FetchAdd("sealed").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
}

// ---------------------------------------------------------------------------
// i. Cancellation.

// Eight workers take ids from a counter until they see the stop flag; the
// parent publishes a value, then requests the stop once 2,000 ids are out.
// Every worker stops (none runs to its 10^6 limit), and every worker that
// saw the flag reads the value the parent published before it. ClearStop
// clears it for every process.
TEST(TableFork, WorkersStopWhenTheFlagIsSetAndSeeWhatCameBefore) {
  constexpr int kWorkers = 8;
  Heap heap = CreateHeap(10);
  EXPECT_FALSE(heap.StopRequested());
  SharedArray<int32_t> outcome(kWorkers + 1);
  const std::vector<int> codes = RunProcesses(kWorkers + 1, [&](int p) {
    if (p == kWorkers) {  // the master
      for (;;) {
        absl::StatusOr<int64_t> out = heap.FetchAdd("ids", 0);
        if (!out.ok()) return 1;
        if (*out >= 2000) break;
      }
      if (!*AddArray(heap, "before-stop", ArrayFor(3, 0, 5))) return 2;
      heap.RequestStop();
      return 0;
    }
    for (int i = 0; i < 1000000; ++i) {
      if (heap.StopRequested()) {
        // The flag's acquire load: what the master published first is here.
        outcome[p] =
            Mismatches(heap.Get<float>("before-stop"), ArrayFor(3, 0, 5)) == 0
                ? 1
                : 2;
        return 0;
      }
      if (!heap.FetchAdd("ids").ok()) return 3;
    }
    return 4;  // never stopped
  });
  for (int c : codes) EXPECT_EQ(c, 0);
  for (int p = 0; p < kWorkers; ++p) EXPECT_EQ(outcome[p], 1) << p;
  EXPECT_TRUE(heap.StopRequested());
  heap.ClearStop();
  EXPECT_FALSE(heap.StopRequested());
  const std::vector<int> after =
      RunProcesses(1, [&](int) { return heap.StopRequested() ? 1 : 0; });
  EXPECT_EQ(after[0], 0);
}

// ---------------------------------------------------------------------------
// f. Single-process semantics of each operation.

// Add is write-once: a second Add of a present key, of any contents or kind,
// returns false and leaves the first value unchanged.
TEST(TableOps, AddOfAPresentKeyReturnsFalseAndKeepsTheValue) {
  Heap heap = CreateHeap(10);
  const std::vector<float> first = ArrayFor(7, 1, 5);
  absl::StatusOr<bool> r = AddArray(heap, "k", first);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  r = AddArray(heap, "k", ArrayFor(7, 2, 5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  const std::vector<double> other = {1.0, 2.0};
  const int64_t dims[] = {2};
  r = heap.Add<double>("k", other, dims);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  EXPECT_EQ(Mismatches(heap.Get<float>("k"), first), 0);
  EXPECT_EQ(heap.stats().live_blobs, 1u);
}

// Replace reports whether the key had a value: false for an absent key (and
// the value is published all the same), true for a present one; Get reads
// the latest value each time.
TEST(TableOps, ReplaceReportsWhetherTheKeyWasPresent) {
  Heap heap = CreateHeap(10);
  absl::StatusOr<bool> r = ReplaceArray(heap, "k", ArrayFor(8, 1, 6));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  EXPECT_EQ(Mismatches(heap.Get<float>("k"), ArrayFor(8, 1, 6)), 0);
  r = ReplaceArray(heap, "k", ArrayFor(8, 2, 3));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
  EXPECT_EQ(Mismatches(heap.Get<float>("k"), ArrayFor(8, 2, 3)), 0);
  // A removed key is absent again for Replace.
  ASSERT_TRUE(heap.Remove("k").ok());
  r = ReplaceArray(heap, "k", ArrayFor(8, 3, 2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(*r);
  EXPECT_EQ(Mismatches(heap.Get<float>("k"), ArrayFor(8, 3, 2)), 0);
}

// Remove of an absent key is kNotFound; of a present one OK, after which the
// key is absent for Contains, Get and a second Remove.
TEST(TableOps, RemoveOfAnAbsentKeyIsNotFound) {
  Heap heap = CreateHeap(10);
  EXPECT_EQ(heap.Remove("never").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(*AddArray(heap, "k", ArrayFor(9, 1, 4)));
  EXPECT_TRUE(heap.Remove("k").ok());
  EXPECT_FALSE(heap.Contains("k"));
  EXPECT_EQ(heap.Get<float>("k").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(heap.Remove("k").code(), absl::StatusCode::kNotFound);
}

// Move carries the contents (dims, kind, every element) to an absent key and
// leaves the source absent; it refuses an existing target (kAlreadyExists,
// both values unchanged) and an absent source (kNotFound).
TEST(TableOps, MoveCarriesTheValueAndRefusesAnExistingTarget) {
  Heap heap = CreateHeap(10);
  const std::vector<float> from = ArrayFor(10, 1, 11);
  ASSERT_TRUE(*AddArray(heap, "from", from));
  ASSERT_TRUE(heap.Move("from", "to").ok());
  EXPECT_FALSE(heap.Contains("from"));
  EXPECT_EQ(heap.Get<float>("from").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Mismatches(heap.Get<float>("to"), from), 0);

  const std::vector<float> x = ArrayFor(11, 1, 3);
  const std::vector<float> y = ArrayFor(12, 1, 4);
  ASSERT_TRUE(*AddArray(heap, "x", x));
  ASSERT_TRUE(*AddArray(heap, "y", y));
  EXPECT_EQ(heap.Move("x", "y").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Mismatches(heap.Get<float>("x"), x), 0);
  EXPECT_EQ(Mismatches(heap.Get<float>("y"), y), 0);

  EXPECT_EQ(heap.Move("absent", "z").code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(heap.Contains("z"));
  EXPECT_EQ(heap.stats().live_blobs, 3u);
}

// Reserve builds a value in place: Publish returns true and Get reads the
// dims and every element written through data(). A second Reserve + Publish
// of the same key returns false and leaves the first value.
TEST(TableOps, ReserveAndPublishIsWriteOnce) {
  Heap heap = CreateHeap(10);
  const int64_t dims[] = {2, 3};
  absl::StatusOr<Builder<double>> b = heap.Reserve<double>("built", dims);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->data().size(), 6u);
  for (size_t j = 0; j < 6; ++j) b->data()[j] = 1.5 * j - 2.0;
  EXPECT_FALSE(heap.Contains("built"));  // not before Publish
  absl::StatusOr<bool> published = b->Publish();
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_TRUE(*published);

  absl::StatusOr<Builder<double>> again = heap.Reserve<double>("built", dims);
  ASSERT_TRUE(again.ok()) << again.status();
  for (size_t j = 0; j < 6; ++j) again->data()[j] = -1.0;
  published = again->Publish();
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_FALSE(*published);

  absl::StatusOr<ArrayView<double>> got = heap.Get<double>("built");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->ndims(), 2);
  EXPECT_EQ(got->dim(0), 2);
  EXPECT_EQ(got->dim(1), 3);
  EXPECT_EQ(got->kind(), Kind::kFloat64);
  EXPECT_EQ(got->layout(), Layout::kC);
  for (size_t j = 0; j < 6; ++j) EXPECT_EQ(got->flat()[j], 1.5 * j - 2.0);
  EXPECT_EQ((*got)(1, 2), 1.5 * 5 - 2.0);
  // Stored as float64: not readable as float32.
  EXPECT_EQ(heap.Get<float>("built").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// AddRaw checks the data against dims and kind: too few or too many bytes
// is kInvalidArgument and publishes nothing.
TEST(TableOps, AddRawWithTheWrongByteSizeIsInvalidArgument) {
  Heap heap = CreateHeap(10);
  const int64_t dims[] = {4};
  const std::vector<std::byte> bytes(20);
  for (size_t n : {size_t{12}, size_t{20}, size_t{0}}) {
    const absl::StatusOr<bool> r = heap.AddRaw(
        "raw", Kind::kFloat32, dims, Layout::kC, std::span(bytes).first(n));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << n << " bytes";
  }
  EXPECT_FALSE(heap.Contains("raw"));
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, 0u);
  EXPECT_EQ(s.table_used, 0u);
  // 16 bytes is right for 4 float32s.
  absl::StatusOr<bool> r = heap.AddRaw("raw", Kind::kFloat32, dims, Layout::kC,
                                       std::span(bytes).first(16));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(*r);
}

// AddMany, per item: a new key publishes (true), a present key or a key an
// earlier item of the batch published answers false and keeps the first
// value, bad dims, kind, layout or data size fail their item alone with
// kInvalidArgument and claim no slot; the other items go on. The count is
// the number of true results, every value reads back element by element,
// and the counters are exact (Verify).
TEST(TableOps, AddManyIsWriteOncePerItemAndReportsEachOutcome) {
  Heap heap = CreateHeap(10);
  ASSERT_TRUE(AddArray(heap, "present", ArrayFor(1, 1, 4)).ok());
  const int64_t dims[] = {4};
  const int64_t negative[] = {-1};
  const std::vector<float> a = ArrayFor(2, 1, 4), a2 = ArrayFor(2, 2, 4);
  const std::vector<float> b = ArrayFor(3, 1, 4), other = ArrayFor(1, 9, 4);
  const std::vector<float> three = ArrayFor(4, 1, 3);
  const std::vector<AddItem> items = {
      AddItem::Of<float>("a", a, dims),
      AddItem::Of<float>("present", other, dims),
      AddItem::Of<float>("a", a2, dims),  // the batch's own "a": present
      AddItem::Of<float>("short", three, dims),
      AddItem::Of<float>("negative", a, negative),
      {"kind", static_cast<Kind>(99), dims, Layout::kC,
       std::as_bytes(std::span(a))},
      {"layout", Kind::kFloat32, dims, static_cast<Layout>(7),
       std::as_bytes(std::span(a))},
      AddItem::Of<float>("b", b, dims),
  };
  std::vector<absl::StatusOr<bool>> results(items.size());
  absl::StatusOr<size_t> n = heap.AddMany(items, results);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);
  ASSERT_TRUE(results[0].ok() && *results[0]) << results[0].status();
  ASSERT_TRUE(results[1].ok() && !*results[1]) << results[1].status();
  ASSERT_TRUE(results[2].ok() && !*results[2]) << results[2].status();
  for (size_t i : {3, 4, 5, 6}) {
    EXPECT_EQ(results[i].status().code(), absl::StatusCode::kInvalidArgument)
        << "item " << i;
  }
  EXPECT_NE(results[3].status().message().find("short"), std::string::npos)
      << results[3].status();
  ASSERT_TRUE(results[7].ok() && *results[7]) << results[7].status();
  EXPECT_EQ(Mismatches(heap.Get<float>("a"), a), 0);
  EXPECT_EQ(Mismatches(heap.Get<float>("b"), b), 0);
  EXPECT_EQ(Mismatches(heap.Get<float>("present"), ArrayFor(1, 1, 4)), 0);
  for (const char* k : {"short", "negative", "kind", "layout"}) {
    EXPECT_FALSE(heap.Contains(k)) << k;
  }
  Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, 3u);
  EXPECT_EQ(s.table_used, 3u);  // invalid items claimed nothing
  absl::Status v = heap.Verify();
  EXPECT_TRUE(v.ok()) << v;

  // The same batch again: nothing new; the same items fail the same way.
  n = heap.AddMany(items, results);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(results[0].ok() && !*results[0]);
  EXPECT_TRUE(results[7].ok() && !*results[7]);
  EXPECT_EQ(results[3].status().code(), absl::StatusCode::kInvalidArgument);

  // A results span of the wrong size is refused before anything is added.
  std::vector<absl::StatusOr<bool>> short_results(1,
                                                  absl::StatusOr<bool>(true));
  const AddItem fresh[] = {AddItem::Of<float>("fresh", a, dims),
                           AddItem::Of<float>("fresher", a, dims)};
  n = heap.AddMany(fresh, short_results);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(short_results[0].ok() && *short_results[0]);
  EXPECT_FALSE(heap.Contains("fresh"));
  // An empty batch publishes nothing.
  n = heap.AddMany({}, {});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(heap.stats().live_blobs, 3u);
}

// AddMany with keys kept: an item whose 64-bit hash is held by another key,
// stored before the batch or by an earlier item of it, fails alone with
// kAlreadyExists naming both keys; the stored values survive.
TEST(TableOps, AddManyReportsHashCollisionsPerItem) {
  Heap heap = CreateHeap(10);
  const HashedKey alpha{kCollidingHash, "alpha"};
  const HashedKey beta{kCollidingHash, "beta"};
  const HashedKey gamma{kCollidingHash + 1, "gamma"};
  const HashedKey delta{kCollidingHash + 1, "delta"};
  const int64_t dims[] = {8};
  const std::vector<float> va = ArrayFor(1, 1, 8), vb = ArrayFor(2, 1, 8);
  const std::vector<float> vg = ArrayFor(3, 1, 8), vd = ArrayFor(4, 1, 8);
  ASSERT_TRUE(heap.Add<float>(alpha, va, dims).ok());
  const AddItem items[] = {
      AddItem::Of<float>(beta, vb, dims),   // collides with the stored alpha
      AddItem::Of<float>(gamma, vg, dims),  // new
      AddItem::Of<float>(delta, vd, dims),  // collides with item 1
  };
  absl::StatusOr<bool> results[3];
  absl::StatusOr<size_t> n = heap.AddMany(items, results);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(results[0].status().message().find("alpha"), std::string::npos)
      << results[0].status();
  ASSERT_TRUE(results[1].ok() && *results[1]) << results[1].status();
  EXPECT_EQ(results[2].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(results[2].status().message().find("gamma"), std::string::npos)
      << results[2].status();
  EXPECT_EQ(Mismatches(heap.Get<float>(alpha), va), 0);
  EXPECT_EQ(Mismatches(heap.Get<float>(gamma), vg), 0);
  EXPECT_EQ(heap.Get<float>(beta).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(heap.Get<float>(delta).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(heap.stats().live_blobs, 2u);
  // delta's blob was built and lost at the slot: its bytes are dead, and
  // the counters still agree with the table.
  absl::Status v = heap.Verify();
  EXPECT_TRUE(v.ok()) << v;
}

// Partial failure: a batch that outgrows the table fails exactly the items
// that find no slot, and one that outgrows the heap fails exactly the items
// that do not fit (a later, smaller item still does); every other item is
// published and reads back, and the counters agree (Verify).
TEST(TableOps, AddManyFailsOnlyTheItemsThatDoNotFit) {
  Options o = TableTestOptions(4);  // 16 slots
  o.heap_bytes = uint64_t{4} << 20;
  o.chunk_bytes = uint64_t{64} << 10;
  absl::StatusOr<Heap> created = Heap::Create(o);
  ASSERT_TRUE(created.ok()) << created.status();
  Heap& heap = *created;
  const int64_t dims[] = {4};
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
  for (int i = 0; i < 20; ++i) {
    names.push_back(KeyName(i));
    values.push_back(ArrayFor(i, 1, 4));
  }
  std::vector<AddItem> items;
  for (int i = 0; i < 20; ++i) {
    items.push_back(AddItem::Of<float>(names[i], values[i], dims));
  }
  std::vector<absl::StatusOr<bool>> results(items.size());
  absl::StatusOr<size_t> n = heap.AddMany(items, results);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 16u);
  for (int i = 0; i < 20; ++i) {
    if (i < 16) {
      ASSERT_TRUE(results[i].ok() && *results[i]) << i << results[i].status();
      EXPECT_EQ(Mismatches(heap.Get<float>(names[i]), values[i]), 0) << i;
    } else {
      EXPECT_EQ(results[i].status().code(),
                absl::StatusCode::kResourceExhausted)
          << i;
    }
  }
  absl::Status v = heap.Verify();
  EXPECT_TRUE(v.ok()) << v;

  // The heap: 5 MiB cannot fit in a 4 MiB heap; the small items around it
  // are published.
  Options small = TableTestOptions(10);
  small.heap_bytes = uint64_t{4} << 20;
  small.chunk_bytes = uint64_t{64} << 10;
  absl::StatusOr<Heap> created2 = Heap::Create(small);
  ASSERT_TRUE(created2.ok()) << created2.status();
  Heap& heap2 = *created2;
  const std::vector<float> big((uint64_t{5} << 20) / sizeof(float), 1.0f);
  const int64_t big_dims[] = {static_cast<int64_t>(big.size())};
  const AddItem mixed[] = {AddItem::Of<float>("before", values[0], dims),
                           AddItem::Of<float>("big", big, big_dims),
                           AddItem::Of<float>("after", values[1], dims)};
  absl::StatusOr<bool> r[3];
  n = heap2.AddMany(mixed, r);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);
  ASSERT_TRUE(r[0].ok() && *r[0]) << r[0].status();
  EXPECT_EQ(r[1].status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r[1].status().message().find("big"), std::string::npos)
      << r[1].status();
  ASSERT_TRUE(r[2].ok() && *r[2]) << r[2].status();
  EXPECT_EQ(Mismatches(heap2.Get<float>("before"), values[0]), 0);
  EXPECT_EQ(Mismatches(heap2.Get<float>("after"), values[1]), 0);
  EXPECT_FALSE(heap2.Contains("big"));
  v = heap2.Verify();
  EXPECT_TRUE(v.ok()) << v;
}

// stats() follows each operation: live blobs and bytes rise with adds, a
// Replace turns the old value's bytes dead, a Remove turns its slot into a
// tombstone and its bytes dead, and an Add of the removed key reuses the
// tombstone.
TEST(TableOps, StatsAgreeWithTheOperations) {
  Heap heap = CreateHeap(10);
  Stats s = heap.stats();
  EXPECT_EQ(s.table_slots, 1024u);
  EXPECT_EQ(s.live_blobs, 0u);
  EXPECT_EQ(s.table_used, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_GE(s.heap_capacity, uint64_t{1} << 30);

  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(*AddArray(heap, KeyName(i), ArrayFor(i, 0, 100)));
  }
  s = heap.stats();
  EXPECT_EQ(s.live_blobs, 3u);
  EXPECT_EQ(s.table_used, 3u);
  EXPECT_EQ(s.table_tombstones, 0u);
  EXPECT_GE(s.live_bytes, 3 * 100 * sizeof(float));
  EXPECT_GT(s.heap_top, 0u);
  const uint64_t live_after_adds = s.live_bytes;
  const uint64_t dead_after_adds = s.dead_bytes;

  ASSERT_TRUE(*ReplaceArray(heap, KeyName(0), ArrayFor(0, 1, 100)));
  s = heap.stats();
  EXPECT_EQ(s.live_blobs, 3u);
  EXPECT_EQ(s.table_used, 3u);
  EXPECT_EQ(s.live_bytes, live_after_adds);  // same size replaced
  EXPECT_GE(s.dead_bytes, dead_after_adds + 100 * sizeof(float));
  const uint64_t dead_after_replace = s.dead_bytes;

  ASSERT_TRUE(heap.Remove(KeyName(1)).ok());
  s = heap.stats();
  EXPECT_EQ(s.live_blobs, 2u);
  EXPECT_EQ(s.table_used, 3u);
  EXPECT_EQ(s.table_tombstones, 1u);
  EXPECT_LE(s.live_bytes, live_after_adds - 100 * sizeof(float));
  EXPECT_GE(s.dead_bytes, dead_after_replace + 100 * sizeof(float));

  ASSERT_TRUE(*AddArray(heap, KeyName(1), ArrayFor(1, 2, 100)));
  s = heap.stats();
  EXPECT_EQ(s.live_blobs, 3u);
  EXPECT_EQ(s.table_used, 3u);
  EXPECT_EQ(s.table_tombstones, 0u);
  EXPECT_EQ(s.live_bytes, live_after_adds);
}

// Read scopes (Heap::Read) racing with writers and a collector: a
// collector, two writers and reader processes that look keys up every way a
// scope offers, reading every returned value in full inside its scope. No
// value is ever torn or moved under a scope, batches agree with themselves,
// collections run between scopes, and the heap verifies afterwards
// (tests/table_scenarios.h, scenario d).
TEST(TableFork, ReadScopesRacingWithWritersAndCollectorNeverSeeAMovedValue) {
  ReadScopesRacingWithWritersAndCollector(
      Processes(), /*writers=*/2, /*readers=*/4,
      /*max_writes_per_writer=*/20000, std::chrono::milliseconds(1500),
      std::chrono::microseconds(0));
}

}  // namespace
}  // namespace shmheap
