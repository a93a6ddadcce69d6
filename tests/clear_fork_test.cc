// Heap::Clear across processes (gc/clear.h).
//
// ClearRacingReaders. What it proves: Clear is safe against concurrent
// readers in other processes, which never re-attach. Eight forked readers
// loop on Read() scopes and look up every key, checking every value they
// get element by element, while the master, for each generation g, stores
// the state 2g - 1 (seq_cst), Clears, adds every key with generation g's
// contents and stores the state 2g. A reader loads the state s0 before its
// scope and s1 after it. In one scope:
//   - every value found is exactly one generation's contents, and all
//     values found share one generation g' (a Clear stops the world, so no
//     scope sees the old generation beside the new one);
//   - g' lies in [s0 / 2, (s1 + 1) / 2] (a generation's values exist from
//     its adds, after state 2g' - 1, until the next Clear, after state
//     2g' + 1);
//   - when s0 == s1 is even (2g), every key is found with generation g:
//     the load of s1 precedes the master's next state store in the single
//     order of seq_cst accesses, so the scope ended before the next Clear
//     began, and began after every add of generation g.
// A reader counts the scopes of the last kind per generation, and the
// master waits for one before the next generation, so every generation is
// read whole at least once (no timing: a wait, not a sleep).
//
// DeadlineWhileReaderHolds. A forked reader that stays in its scope makes
// a Clear with a short deadline return kDeadlineExceeded with nothing
// changed; once it leaves, Clear succeeds.
//
// KilledClearsFinish. What it proves: a Clear killed by SIGKILL anywhere
// in its clearing phase (after the n-th group of table slots zeroed; top
// reset, pages not yet zeroed; everything done but the phase; or from
// outside at a random moment), and a recovery killed in turn, leave a heap
// that the next process to attach finishes clearing: the phase is idle,
// Verify passes, nothing is found, the statistics say empty, and adds then
// work. (A kill from outside may come before the clear began: the heap is
// then whole, every value exact.) Follows tests/collector_crash_test.cc.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::TestingPoint;
using testing::KeyName;
using testing::ValueFor;

int64_t LenFor(uint64_t key) { return 1 + static_cast<int64_t>(key % 37); }

// Which generation's contents `a` holds for `key`, among [lo, hi]: 0 when
// none matches exactly.
template <class Array>
uint64_t GenerationOf(uint64_t key, const Array& a, uint64_t lo, uint64_t hi) {
  if (a.size() != LenFor(key)) return 0;
  for (uint64_t g = lo; g <= hi; ++g) {
    bool same = true;
    for (int64_t j = 0; j < a.size() && same; ++j) {
      same = a.flat()[j] == ValueFor(key, g, j);
    }
    if (same) return g;
  }
  return 0;
}

absl::Status AddGeneration(Heap& heap, int keys, uint64_t g) {
  for (int k = 0; k < keys; ++k) {
    std::vector<float> v(LenFor(k));
    for (size_t j = 0; j < v.size(); ++j) v[j] = ValueFor(k, g, j);
    const int64_t dims[] = {LenFor(k)};
    absl::StatusOr<bool> r = heap.Add<float>(KeyName(k), v, dims);
    if (!r.ok()) return r.status();
    if (!*r) return absl::InternalError(KeyName(k) + " was present");
  }
  return absl::OkStatus();
}

TEST(ClearFork, ClearRacingReaders) {
  constexpr int kReaders = 8;
  constexpr int kKeys = 200;
  constexpr uint64_t kGenerations = 40;
  Options options;
  options.heap_bytes = uint64_t{64} << 20;
  options.table_slots_log2 = 10;
  options.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> created = Heap::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Heap& heap = *created;
  testing::SharedArray<std::atomic<uint64_t>> state(1);
  // whole[g]: scopes that read generation g whole; done: readers stop.
  testing::SharedArray<std::atomic<uint64_t>> whole(kGenerations + 1);
  testing::SharedArray<std::atomic<uint64_t>> done(1);
  testing::SharedArray<std::atomic<uint64_t>> checked(kReaders);

  std::vector<pid_t> readers;
  for (int r = 0; r < kReaders; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int rc = 0;
      std::vector<std::string> names;
      for (int k = 0; k < kKeys; ++k) names.push_back(KeyName(k));
      while (done[0].load(std::memory_order_acquire) == 0 && rc == 0) {
        // seq_cst: the argument above needs these loads in the single
        // order with the master's state stores and the scope's handshake.
        const uint64_t s0 = state[0].load(std::memory_order_seq_cst);
        uint64_t seen = 0;  // the scope's one generation
        int found = 0;
        {
          absl::StatusOr<ReadScope> scope = heap.Read();
          if (!scope.ok()) _exit(10);
          for (int k = 0; k < kKeys; ++k) {
            std::optional<ArrayRef<float>> a = scope->Find<float>(names[k]);
            if (!a) continue;
            ++found;
            // hi is not known until the scope ends: accept any generation
            // up to the last, and check the window below.
            const uint64_t g = GenerationOf(k, *a, 1, kGenerations);
            if (g == 0) _exit(11);                  // contents of no generation
            if (seen != 0 && g != seen) _exit(12);  // two generations
            seen = g;
            checked[r].fetch_add(a->size(), std::memory_order_relaxed);
          }
        }
        const uint64_t s1 = state[0].load(std::memory_order_seq_cst);
        if (found > 0 && (seen < s0 / 2 || seen > (s1 + 1) / 2)) _exit(13);
        if (s0 == s1 && s0 % 2 == 0 && s0 != 0) {
          if (found != kKeys || seen != s0 / 2) _exit(14);
          // Relaxed: a statistic the master waits on; nothing is
          // published through it.
          whole[s0 / 2].fetch_add(1, std::memory_order_relaxed);
        }
      }
      _exit(rc);
    }
    readers.push_back(pid);
  }

  for (uint64_t g = 1; g <= kGenerations; ++g) {
    state[0].store(2 * g - 1, std::memory_order_seq_cst);
    absl::StatusOr<GcReport> r = heap.Clear();
    ASSERT_TRUE(r.ok()) << "generation " << g << ": " << r.status();
    ASSERT_EQ(heap.stats().live_blobs, 0u) << "generation " << g;
    ASSERT_TRUE(AddGeneration(heap, kKeys, g).ok()) << "generation " << g;
    state[0].store(2 * g, std::memory_order_seq_cst);
    while (whole[g].load(std::memory_order_relaxed) == 0) {
      std::this_thread::yield();
      // A reader that failed has exited: stop waiting for it.
      int status;
      bool any_exited = false;
      for (pid_t pid : readers) {
        any_exited |= waitpid(pid, &status, WNOHANG) == pid;
      }
      ASSERT_FALSE(any_exited) << "a reader exited early, generation " << g;
    }
  }
  done[0].store(1, std::memory_order_release);
  uint64_t total = 0;
  // A reader that never ends (it would be a bug) fails the test instead of
  // hanging it: none runs on for long once `done` is set.
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (int r = 0; r < kReaders; ++r) {
    int status = 0;
    while (waitpid(readers[r], &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > give_up) {
        for (pid_t pid : readers) kill(pid, SIGKILL);
        FAIL() << "reader " << r << " did not stop";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "reader " << r << " status " << status;
    total += checked[r].load();
  }
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
  uint64_t whole_scopes = 0;
  for (uint64_t g = 1; g <= kGenerations; ++g) whole_scopes += whole[g];
  std::printf(
      "clear_fork_test: %llu generations, %llu whole scopes, %llu elements "
      "checked\n",
      static_cast<unsigned long long>(kGenerations),
      static_cast<unsigned long long>(whole_scopes),
      static_cast<unsigned long long>(total));
}

TEST(ClearFork, DeadlineWhileReaderHolds) {
  Options options;
  options.heap_bytes = uint64_t{16} << 20;
  options.table_slots_log2 = 8;
  absl::StatusOr<Heap> created = Heap::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Heap& heap = *created;
  ASSERT_TRUE(AddGeneration(heap, 50, 1).ok());
  testing::SharedArray<std::atomic<int>> flag(2);
  const pid_t child = fork();
  if (child == 0) {
    absl::StatusOr<ReadScope> scope = heap.Read();
    if (!scope.ok()) _exit(1);
    flag[0].store(1, std::memory_order_release);
    while (flag[1].load(std::memory_order_acquire) == 0) {
      std::this_thread::yield();
    }
    _exit(0);
  }
  while (flag[0].load(std::memory_order_acquire) == 0) {
    std::this_thread::yield();
  }
  CollectOptions quick;
  quick.deadline = std::chrono::milliseconds(50);
  absl::StatusOr<GcReport> r = heap.Clear(quick);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_EQ(heap.stats().live_blobs, 50u);
  for (int k = 0; k < 50; ++k) {
    absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(k));
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(v->size(), LenFor(k));
    for (int64_t j = 0; j < v->size(); ++j) {
      ASSERT_EQ(v->flat()[j], ValueFor(k, 1, j));
    }
  }
  flag[1].store(1, std::memory_order_release);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(heap.Clear(quick).ok());
  EXPECT_EQ(heap.stats().live_blobs, 0u);
  EXPECT_TRUE(heap.Verify().ok());
}

struct Target {
  const char* name;
  TestingPoint point;
  int max_nth;  // dies at the n-th arrival, n uniform in [1, max_nth]
  bool external;
  bool kill_recovery;  // a second process, recovering, dies too
};

// Forks a child that runs `body` with the hook armed for `point` and the
// countdown `nth` (0: no hook); `kill_after_us` > 0 kills it from outside
// after that long. Returns whether it was killed (false: it exited 0);
// nullopt when it failed.
std::optional<bool> RunDying(TestingPoint point, int nth,
                             uint64_t kill_after_us,
                             const std::function<bool()>& body) {
  const pid_t child = fork();
  if (child == 0) {
    testing::DieAtNthPass(point, nth);
    _exit(body() ? 0 : 3);
  }
  if (kill_after_us > 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(kill_after_us));
    kill(child, SIGKILL);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return std::nullopt;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return false;
  return std::nullopt;
}

TEST(ClearFork, KilledClearsFinish) {
  constexpr Target kTargets[] = {
      {"slots zeroed", TestingPoint::kClearSlotsZeroed, 16, false, false},
      {"top reset", TestingPoint::kClearTopReset, 1, false, false},
      {"all but the phase", TestingPoint::kClearFinished, 1, false, false},
      {"slots zeroed, recovery killed", TestingPoint::kClearSlotsZeroed, 16,
       false, true},
      {"from outside", TestingPoint::kClearTopReset, 0, true, false},
  };
  constexpr int kNumTargets = sizeof(kTargets) / sizeof(kTargets[0]);
  constexpr int kRoundsPerTarget = 30;
  constexpr int kKeys = 300;
  Options options;
  options.heap_bytes = uint64_t{64} << 20;
  options.table_slots_log2 = 10;  // 1024 slots: 16 hook points
  options.chunk_bytes = 64 << 10;
  const std::string name = testing::UniqueName("clear-crash");
  Heap::UnlinkNamed(name).IgnoreError();
  absl::StatusOr<Heap> created = Heap::CreateNamed(name, options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::optional<Heap> heap(*std::move(created));
  std::mt19937_64 rng(20261203);
  int kills[kNumTargets] = {};
  uint64_t external_delay_us = 2000;
  for (int round = 0; round < kNumTargets * kRoundsPerTarget; ++round) {
    const int t = round % kNumTargets;
    const Target& target = kTargets[t];
    const std::string where =
        absl::StrCat("round ", round, " (", target.name, ")");
    const uint64_t g = round + 1;
    ASSERT_TRUE(AddGeneration(*heap, kKeys, g).ok()) << where;
    // Garbage and a tombstone, so the clear has more than values to drop.
    ASSERT_TRUE(heap->Remove(KeyName(0)).ok());
    ASSERT_TRUE(heap->FetchAdd("counter").ok());
    ASSERT_TRUE(heap->AddDep(static_cast<uint32_t>(round), 1).ok());
    const int nth =
        target.external ? 0 : 1 + static_cast<int>(rng() % target.max_nth);
    const uint64_t delay = target.external ? rng() % external_delay_us : 0;
    std::optional<bool> killed =
        RunDying(target.point, nth, delay + target.external,
                 [&] { return heap->Clear().ok(); });
    ASSERT_TRUE(killed.has_value()) << where << ": the clearing child failed";
    if (*killed) ++kills[t];
    if (target.external && !*killed) {
      external_delay_us = std::max<uint64_t>(50, external_delay_us * 3 / 4);
    }
    if (target.kill_recovery && *killed) {
      // The next process to attach rolls the clear forward; kill it too,
      // inside the redone clearing.
      std::optional<bool> again = RunDying(
          TestingPoint::kClearSlotsZeroed, 1 + static_cast<int>(rng() % 16), 0,
          [&] { return Heap::OpenNamed(name).ok(); });
      ASSERT_TRUE(again.has_value() && *again) << where;
    }
    heap.reset();
    absl::StatusOr<Heap> reopened = Heap::OpenNamed(name);
    ASSERT_TRUE(reopened.ok()) << where << ": " << reopened.status();
    heap.emplace(*std::move(reopened));
    const internal::Header& h = heap->segment().header();
    ASSERT_EQ(h.phase.load(), internal::kPhaseIdle) << where;
    ASSERT_TRUE(heap->Verify().ok()) << where << ": " << heap->Verify();
    const Stats s = heap->stats();
    if (s.live_blobs != 0) {
      // Only a kill from outside before the clear began leaves values.
      ASSERT_TRUE(target.external) << where;
      ASSERT_EQ(s.live_blobs, kKeys) << where;  // 299 values + the counter
      for (int k = 1; k < kKeys; ++k) {
        absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(k));
        ASSERT_TRUE(v.ok()) << where << " " << KeyName(k);
        ASSERT_EQ(GenerationOf(k, *v, g, g), g) << where;
      }
      ASSERT_TRUE(heap->Clear().ok()) << where;
    } else {
      ASSERT_EQ(s.heap_top, 0u) << where;
      ASSERT_EQ(s.table_used, 0u) << where;
      ASSERT_EQ(s.dead_bytes, 0u) << where;
      ASSERT_EQ(h.top.load(), h.heap_start) << where;
      for (int k = 0; k < kKeys; k += 7) {
        ASSERT_FALSE(heap->Contains(KeyName(k))) << where;
      }
      ASSERT_FALSE(heap->Contains("counter")) << where;
      ASSERT_EQ(s.dep_used, 0u) << where;
    }
    ASSERT_EQ(*heap->FetchAdd("counter"), 0) << where;
    ASSERT_TRUE(heap->Remove("counter").ok()) << where;
  }
  int total = 0;
  for (int t = 0; t < kNumTargets; ++t) {
    std::printf("clear_fork_test: %-32s %3d kills in %d rounds\n",
                kTargets[t].name, kills[t], kRoundsPerTarget);
    total += kills[t];
    if (!kTargets[t].external) {
      EXPECT_EQ(kills[t], kRoundsPerTarget) << kTargets[t].name;
    }
  }
  EXPECT_GE(total, 4 * kRoundsPerTarget);
  heap.reset();
  Heap::UnlinkNamed(name).IgnoreError();
}

}  // namespace
}  // namespace shmheap
