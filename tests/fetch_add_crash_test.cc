// Crash injection inside Heap::FetchAdd (hashtable/store.cc).
//
// What it proves: processes killed by SIGKILL anywhere inside FetchAdd
// leave every counter consistent: no acknowledged increment is lost, none
// is counted twice, and the heap verifies. Each round makes three fresh
// counters (so their creation races every round) and forks six children;
// child i does kOps FetchAdd(counter[(i + j) % 3], 1), j = 0, 1, ..., and
// after each one writes {j, returned value} to its own pipe. By a testing
// hook, child i of round r dies (mode (r * 6 + i) % 5):
//   0  kSlotClaimed:  creating a counter, its slot claimed, no blob yet;
//   1  kBlobWritten:  the counter's blob written at 0, not yet published;
//   2  kPublished:    the counter's blob published, the add not yet made;
//   3  kFetchAddAdded: at its n-th add (n uniform in [1, kOps]), right
//      after the atomic add, before FetchAdd returns;
//   4  not at all (it runs to the end).
// A child in modes 0..2 dies only if it is the one that creates the
// counter at that point (else it runs to the end): either way its
// in-flight operation added nothing. After every round, with every child
// gone, the master checks, for each counter c, with a_c the acknowledged
// increments and k_c the children killed in mode 3 while on c:
//   - Verify passes;
//   - the value is exactly a_c + k_c (an add killed after it was made
//     counts, one killed before adds nothing), so a_c <= value <= a_c +
//     (children killed on c);
//   - the acknowledged return values are distinct and each below the
//     value;
// then Collect runs (the counters move with their blobs, the dead
// sessions are freed), Verify passes again with exact counters, and each
// value is read again unchanged.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::TestingPoint;

constexpr int kChildren = 6;
constexpr int kCounters = 3;
constexpr int kOps = 100;
constexpr int kModes = 5;
constexpr int kRounds = 250;

constexpr TestingPoint kModePoints[] = {
    TestingPoint::kSlotClaimed, TestingPoint::kBlobWritten,
    TestingPoint::kPublished, TestingPoint::kFetchAddAdded};
constexpr const char* kModeNames[] = {"slot claimed", "blob written",
                                      "published", "after the add", "survived"};

struct Ack {
  int64_t op;
  int64_t value;
};

TEST(FetchAddCrash, KilledInsideFetchAddLoseNothing) {
  Options options;
  options.heap_bytes = uint64_t{64} << 20;
  options.table_slots_log2 = 12;
  options.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> created = Heap::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Heap& heap = *created;
  std::mt19937_64 rng(20261204);
  int kills[kModes] = {};
  int64_t acked_total = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::string names[kCounters];
    for (int c = 0; c < kCounters; ++c) {
      names[c] = absl::StrCat("r", round, "c", c);
    }
    pid_t pids[kChildren];
    int fds[kChildren];
    int modes[kChildren];
    for (int i = 0; i < kChildren; ++i) {
      modes[i] = (round * kChildren + i) % kModes;
      // Modes 0..3 die at a point (after the add: at a random one of the
      // child's adds); mode 4 survives.
      const int nth = modes[i] >= 4   ? 0
                      : modes[i] == 3 ? 1 + static_cast<int>(rng() % kOps)
                                      : 1;
      int p[2];
      ASSERT_EQ(pipe(p), 0);
      pids[i] = fork();
      if (pids[i] == 0) {
        close(p[0]);
        if (nth > 0) shmheap::testing::DieAtNthPass(kModePoints[modes[i]], nth);
        for (int64_t j = 0; j < kOps; ++j) {
          absl::StatusOr<int64_t> v =
              heap.FetchAdd(names[(i + j) % kCounters], 1);
          if (!v.ok()) _exit(3);
          const Ack ack{j, *v};
          if (write(p[1], &ack, sizeof(ack)) != sizeof(ack)) _exit(4);
        }
        _exit(0);
      }
      close(p[1]);
      fds[i] = p[0];
    }
    int64_t acked[kCounters] = {}, added_dying[kCounters] = {};
    int64_t killed_on[kCounters] = {};
    std::vector<int64_t> values[kCounters];
    for (int i = 0; i < kChildren; ++i) {
      int status = 0;
      ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
      int64_t n = 0;
      Ack ack;
      while (read(fds[i], &ack, sizeof(ack)) == sizeof(ack)) {
        ASSERT_EQ(ack.op, n) << "round " << round << " child " << i;
        const int c = static_cast<int>((i + n) % kCounters);
        ++acked[c];
        values[c].push_back(ack.value);
        ++n;
      }
      close(fds[i]);
      const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
      ASSERT_TRUE(killed || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
          << "round " << round << " child " << i << " status " << status;
      if (killed) {
        ASSERT_LT(modes[i], 4) << "round " << round;
        ++kills[modes[i]];
        const int c = static_cast<int>((i + n) % kCounters);
        ++killed_on[c];
        if (modes[i] == 3) ++added_dying[c];
      } else {
        ASSERT_EQ(n, kOps) << "round " << round << " child " << i;
        if (modes[i] < 4) ++kills[4];  // its creation point went elsewhere
      }
    }
    const std::string where = absl::StrCat("round ", round);
    ASSERT_TRUE(heap.Verify().ok()) << where << ": " << heap.Verify();
    int64_t final_values[kCounters];
    for (int c = 0; c < kCounters; ++c) {
      absl::StatusOr<int64_t> v = heap.FetchAdd(names[c], 0);
      ASSERT_TRUE(v.ok()) << where << ": " << v.status();
      final_values[c] = *v;
      ASSERT_GE(*v, acked[c]) << where << " " << names[c];
      ASSERT_LE(*v, acked[c] + killed_on[c]) << where << " " << names[c];
      ASSERT_EQ(*v, acked[c] + added_dying[c]) << where << " " << names[c];
      std::set<int64_t> distinct(values[c].begin(), values[c].end());
      ASSERT_EQ(distinct.size(), values[c].size())
          << where << " " << names[c] << ": a value handed out twice";
      if (!distinct.empty()) {
        ASSERT_GE(*distinct.begin(), 0) << where;
        ASSERT_LT(*distinct.rbegin(), *v) << where;
      }
      acked_total += acked[c];
    }
    absl::StatusOr<GcReport> gc = heap.Collect();
    ASSERT_TRUE(gc.ok()) << where << ": " << gc.status();
    ASSERT_TRUE(heap.Verify().ok()) << where << ": " << heap.Verify();
    for (int c = 0; c < kCounters; ++c) {
      ASSERT_EQ(*heap.FetchAdd(names[c], 0), final_values[c]) << where;
    }
  }
  int total = 0;
  for (int m = 0; m < kModes; ++m) {
    std::printf("fetch_add_crash_test: %-14s %4d\n", kModeNames[m], kills[m]);
    if (m < 4) total += kills[m];
  }
  std::printf("fetch_add_crash_test: %d kills, %lld acknowledged adds\n", total,
              static_cast<long long>(acked_total));
  // Every round kills in mode 3 (all of its children); creations die in
  // most rounds.
  EXPECT_GE(kills[3], kRounds * kChildren / kModes - 1);
  EXPECT_GE(kills[0] + kills[1] + kills[2], kRounds / 4);
  EXPECT_GE(total, 500);
}

}  // namespace
}  // namespace shmheap
