// The dependency table (hashtable/deps.h) across real forked processes.
//
// Union: 16 processes add overlapping edge sets to one heap at once (a
// common part in one order, racing for the same slots, then parts of their
// own in shuffled orders); afterwards every process reads every key and checks
// that it holds exactly the union of all the processes' sets, each value once,
// and across processes exactly one AddDep per distinct edge returned true
// (the others false): adding an edge twice, even racing, stores it once.
//
// Crash: over many rounds, workers add overlapping edges and are killed by
// SIGKILL, some inside AddDep right after the claim CAS
// (TestingPoint::kDepClaimed), the rest at a random moment chosen by the
// master. After each round the master checks that Verify passes (every
// edge reachable from its key's home, none stored twice, every word
// well-formed), that every edge a worker acknowledged (AddDep returned) and
// every edge whose claim CAS won before the kill is there, that nothing
// outside the attempted edges appeared, and that a GetDeps never returns a
// value twice. It then removes one key's edges, so later rounds also run
// over removed entries.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using Edge = std::pair<uint32_t, uint32_t>;

Options DepOptions(uint32_t dep_log2) {
  Options o;
  o.heap_bytes = uint64_t{16} << 20;
  o.table_slots_log2 = 8;
  o.max_sessions = 64;
  o.min_available_bytes = 0;
  o.dep_table_slots_log2 = dep_log2;
  return o;
}

// --- Union.

constexpr int kProcesses = 16;
constexpr uint32_t kKeys = 64;
constexpr uint32_t kValues = 48;

constexpr uint32_t kCommonValues = 8;

// Process p's edges. First the edges every process adds, (k, 0..7) for
// every key, in the same order everywhere, so that processes running at
// once race to claim the same slot for the same edge (the loser of the CAS
// must find the winner's edge there and return false). Then a pattern that
// overlaps every other process's, in an order of its own.
std::vector<Edge> EdgesOf(int p) {
  std::vector<Edge> edges, own;
  for (uint32_t k = 0; k < kKeys; ++k) {
    for (uint32_t v = 0; v < kCommonValues; ++v) edges.push_back({k, v});
    for (uint32_t v = kCommonValues; v < kValues; ++v) {
      if ((k * 7 + v + static_cast<uint32_t>(p)) % 5 < 2) own.push_back({k, v});
    }
  }
  std::mt19937 rng(p);
  std::shuffle(own.begin(), own.end(), rng);
  edges.insert(edges.end(), own.begin(), own.end());
  return edges;
}

// Between reading an empty slot and claiming it, give the CPU away now and
// then, so that another process reaches the same slot in the window: races
// for one slot happen in every run, not by luck.
void YieldBeforeClaim(internal::TestingPoint point) {
  static unsigned n = 0;
  if (point == internal::TestingPoint::kDepEmptySeen && ++n % 4 == 0) {
    sched_yield();
  }
}

TEST(DepsForkTest, SixteenProcessesReadExactlyTheUnion) {
  // 4096 slots for the union's edges: a load near 3/4, so runs of
  // different keys interleave.
  absl::StatusOr<Heap> heap = Heap::Create(DepOptions(12));
  ASSERT_TRUE(heap.ok()) << heap.status();
  std::map<uint32_t, std::vector<uint32_t>> want;
  {
    std::set<Edge> all;
    for (int p = 0; p < kProcesses; ++p) {
      for (const Edge& e : EdgesOf(p)) all.insert(e);
    }
    for (const auto& [k, v] : all) want[k].push_back(v);  // sorted
  }
  size_t union_size = 0;
  for (const auto& [k, vs] : want) union_size += vs.size();
  testing::SharedArray<uint64_t> stored(kProcesses);
  testing::SharedArray<uint64_t> mismatches(kProcesses);
  testing::SharedBarrier start(kProcesses), added(kProcesses);
  const std::vector<int> codes = testing::RunProcessesWithin(
      kProcesses,
      [&](int p) {
        internal::SetTestingHook(&YieldBeforeClaim);
        start.Wait();
        for (const Edge& e : EdgesOf(p)) {
          absl::StatusOr<bool> r = heap->AddDep(e.first, e.second);
          if (!r.ok()) return 10;
          stored[p] += *r;
        }
        added.Wait();
        for (uint32_t k = 0; k < kKeys; ++k) {
          absl::StatusOr<std::vector<uint32_t>> got = heap->GetDeps(k);
          if (!got.ok()) return 11;
          std::sort(got->begin(), got->end());
          if (*got != want[k]) ++mismatches[p];
        }
        return 0;
      },
      std::chrono::seconds(60));
  uint64_t total_stored = 0;
  for (int p = 0; p < kProcesses; ++p) {
    EXPECT_EQ(codes[p], 0) << "process " << p;
    EXPECT_EQ(mismatches[p], 0u) << "process " << p << " read other sets";
    total_stored += stored[p];
  }
  EXPECT_EQ(total_stored, union_size)
      << "one AddDep per distinct edge returns true";
  for (uint32_t k = 0; k < kKeys; ++k) {
    absl::StatusOr<std::vector<uint32_t>> got = heap->GetDeps(k);
    ASSERT_TRUE(got.ok());
    std::sort(got->begin(), got->end());
    EXPECT_EQ(*got, want[k]) << "key " << k;
  }
  EXPECT_EQ(heap->stats().dep_used, union_size);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

// --- Crash.

constexpr int kWorkers = 8;
constexpr int kRounds = 60;
constexpr uint32_t kCrashKeys = 32;
constexpr uint32_t kValuesPerRound = 16;
constexpr int kEdgesPerWorker = 96;

// Edge i of worker w in round r: keys cycle, values overlap other workers'.
Edge CrashEdge(int round, int worker, int i) {
  const uint32_t k = static_cast<uint32_t>(i) % kCrashKeys;
  const uint32_t v = static_cast<uint32_t>(round) * kValuesPerRound +
                     (static_cast<uint32_t>(i / kCrashKeys) * 5 +
                      static_cast<uint32_t>(worker + i)) %
                         kValuesPerRound;
  return {k, v};
}

struct Record {
  uint32_t type;  // kAcked or kDying
  uint32_t key;
  uint32_t value;
  uint32_t pad;
};
constexpr uint32_t kAcked = 1;
constexpr uint32_t kDying = 2;

int g_pipe = -1;
int g_countdown = 0;  // die at this many-th won claim (0: not by the hook)
Edge g_current;

void WriteRecord(uint32_t type, const Edge& e) {
  const Record r{type, e.first, e.second, 0};
  // A 16-byte write to a pipe is atomic.
  if (write(g_pipe, &r, sizeof r) != sizeof r) _exit(3);
}

void Hook(internal::TestingPoint point) {
  if (point != internal::TestingPoint::kDepClaimed || g_countdown <= 0 ||
      --g_countdown != 0) {
    return;
  }
  WriteRecord(kDying, g_current);
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

[[noreturn]] void RunWorker(Heap& heap, int round, int worker, int pipe_fd) {
  g_pipe = pipe_fd;
  std::mt19937 rng(round * kWorkers + worker);
  // Half the workers die by the hook, inside AddDep; the rest run until the
  // master's kill (or to the end of their list).
  g_countdown = worker % 2 == 0 ? 1 + static_cast<int>(rng() % 24) : 0;
  internal::SetTestingHook(&Hook);
  // The others go over their list again and again (adds of edges that are
  // there, which scan the runs), so the master's kill lands inside an
  // AddDep most of the time.
  const int passes = worker % 2 == 0 ? 1 : 200;
  for (int pass = 0; pass < passes; ++pass) {
    for (int i = 0; i < kEdgesPerWorker; ++i) {
      g_current = CrashEdge(round, worker, i);
      absl::StatusOr<bool> r = heap.AddDep(g_current.first, g_current.second);
      if (!r.ok()) _exit(4);
      if (pass == 0) WriteRecord(kAcked, g_current);
    }
  }
  _exit(0);
}

TEST(DepsForkTest, KilledInsideAddDepLeavesAConsistentTable) {
  absl::StatusOr<Heap> heap = Heap::Create(DepOptions(16));
  ASSERT_TRUE(heap.ok()) << heap.status();
  std::mt19937 rng(12345);
  // Edges that must be present (acknowledged or claimed, not removed since).
  std::set<Edge> required;
  // Every edge any worker may have added, not removed since.
  std::set<Edge> attempted;
  int hook_kills = 0, random_kills = 0, exits = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    for (int w = 0; w < kWorkers; ++w) {
      for (int i = 0; i < kEdgesPerWorker; ++i) {
        attempted.insert(CrashEdge(round, w, i));
      }
    }
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    std::vector<pid_t> pids;
    for (int w = 0; w < kWorkers; ++w) {
      const pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        RunWorker(*heap, round, w, fds[1]);
      }
      pids.push_back(pid);
    }
    close(fds[1]);
    // A random kill of everyone left, somewhere in their runs.
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    for (pid_t pid : pids) kill(pid, SIGKILL);
    Record r;
    int dying_records = 0;
    while (read(fds[0], &r, sizeof r) == sizeof r) {
      if (r.type == kDying) ++dying_records;
      required.insert({r.key, r.value});
    }
    close(fds[0]);
    int signalled = 0;
    for (pid_t pid : pids) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      if (WIFEXITED(status)) {
        ASSERT_EQ(WEXITSTATUS(status), 0) << "an AddDep failed";
        ++exits;
      } else {
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        ++signalled;
      }
    }
    hook_kills += dying_records;
    random_kills += signalled - dying_records;

    ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
    uint64_t live = 0;
    for (uint32_t k = 0; k < kCrashKeys; ++k) {
      absl::StatusOr<std::vector<uint32_t>> got = heap->GetDeps(k);
      ASSERT_TRUE(got.ok()) << got.status();
      std::set<uint32_t> values(got->begin(), got->end());
      ASSERT_EQ(values.size(), got->size()) << "key " << k << ": a duplicate";
      for (uint32_t v : values) {
        ASSERT_TRUE(attempted.count({k, v})) << k << " -> " << v;
      }
      for (auto it = required.lower_bound({k, 0});
           it != required.end() && it->first == k; ++it) {
        ASSERT_TRUE(values.count(it->second))
            << "lost edge " << k << " -> " << it->second;
      }
      live += values.size();
    }
    const Stats s = heap->stats();
    EXPECT_EQ(s.dep_used - s.dep_removed, live);
    // Remove one key's edges: later rounds add next to removed entries.
    const uint32_t gone = static_cast<uint32_t>(round) % kCrashKeys;
    ASSERT_TRUE(heap->RemoveDeps(gone).ok());
    required.erase(required.lower_bound({gone, 0}),
                   required.lower_bound({gone + 1, 0}));
    attempted.erase(attempted.lower_bound({gone, 0}),
                    attempted.lower_bound({gone + 1, 0}));
  }
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  std::fprintf(stderr,
               "deps_fork_test: %d rounds, %d killed inside AddDep by the "
               "hook, %d killed at random, %d ran to the end\n",
               kRounds, hook_kills, random_kills, exits);
  // The hook's window must actually be hit, or the test proves nothing.
  EXPECT_GT(hook_kills, kRounds);
}

}  // namespace
}  // namespace shmheap
