// Heap::WaitFor (hashtable/store.h, "Waiting"): a reader sleeps until
// another process publishes its key. Each test forks real processes; a
// process is taken to be asleep in its wait once Header::waiters counts it
// and /proc says it sleeps (state 'S'), so the publish that follows is one
// that must wake it, not one its first check finds.
//
// What this proves:
//   1. Eight waiter processes, each waiting for a key of its own, are woken
//      one by one as the master publishes their keys (the others, woken
//      too, go back to sleep), and each reads back the value published.
//   2. A key that nobody publishes: kDeadlineExceeded after at least the
//      timeout; a zero timeout checks once; a negative one and a moved-from
//      Heap are refused; waiters counts nobody afterwards.
//   3. A key that is already present returns at once without counting a
//      waiter.
//   4. Every publishing path (Add, AddMany, a Reserve's Publish, Replace of
//      an absent key, Move, a FetchAdd that creates its counter) wakes a
//      sleeping waiter, which then reads the value that path published.
//   5. A waiter holds no scope: a collection with a short deadline succeeds
//      while one sleeps, and the waiter still wakes afterwards.
//   6. A waiter killed while asleep leaves its count in Header::waiters
//      until its session entry is reclaimed, by the next Collect or by a
//      process that joins in its place; then the count is 0 again.
//   7. Waits racing publishes, key by key (four waiter processes, 200
//      keys, each published once all waiters returned from the last) are
//      never lost: every wait returns ok and reads its value.
//   8. A waiter interrupted by signals (EINTR from FUTEX_WAIT) sleeps
//      again instead of returning, and is woken by the publish.
//
// Every wait has a finite timeout shorter than kWaitRecheck, so a publish
// that fails to wake its waiter shows up as that waiter's
// kDeadlineExceeded (an exit code naming the path), not as a hang, nor as a
// late success found by the waiter's periodic re-check. Shared atomics are
// read with the default order, seq_cst: the strongest, where speed is no
// concern.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "hashtable/store.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::ArrayFor;
using testing::KeyName;
using testing::RunProcessesWithin;
using testing::SharedArray;

// A wait in a test: long enough for a loaded machine to deliver a wake,
// shorter than the waiter's periodic re-check, so a missing wake fails.
constexpr absl::Duration kWait = absl::Seconds(6);
static_assert(kWait < internal::kWaitRecheck);
// How long the master waits for the waiters to fall asleep or to finish.
constexpr std::chrono::seconds kSettle{10};
constexpr int kValueLength = 9;

Heap NewHeap(uint32_t max_sessions = 64) {
  Options o;
  o.heap_bytes = uint64_t{64} << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  o.min_available_bytes = 0;
  o.max_sessions = max_sessions;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  if (!heap.ok()) {
    ADD_FAILURE() << heap.status();
    std::abort();
  }
  return *std::move(heap);
}

const internal::Header& HeaderOf(const Heap& heap) {
  return heap.segment().header();
}

uint32_t Waiters(const Heap& heap) { return HeaderOf(heap).waiters.load(); }

// Waits until `n` waiters are counted and every process in `pids` sleeps;
// false if that does not happen within kSettle.
bool AsleepWithin(const Heap& heap, uint32_t n,
                  const std::vector<pid_t>& pids) {
  const auto end = std::chrono::steady_clock::now() + kSettle;
  while (std::chrono::steady_clock::now() < end) {
    bool asleep = Waiters(heap) == n;
    for (pid_t pid : pids)
      asleep = asleep && internal::ProcessState(pid) == 'S';
    if (asleep) {
      // Still so a moment later: not a waiter passing between its count
      // and its sleep.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      asleep = Waiters(heap) == n;
      for (pid_t pid : pids)
        asleep = asleep && internal::ProcessState(pid) == 'S';
      if (asleep) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Polls `done` until it is nonzero; false after kSettle.
bool SetWithin(std::atomic<int32_t>& done) {
  const auto end = std::chrono::steady_clock::now() + kSettle;
  while (done.load() == 0) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The float32 value of `key` compared with `want`: 0 when equal.
int Mismatch(const Heap& heap, const std::string& key,
             const std::vector<float>& want) {
  absl::StatusOr<ArrayView<float>> v = heap.Get<float>(key);
  if (!v.ok() || v->size() != static_cast<int64_t>(want.size())) return 1;
  for (size_t j = 0; j < want.size(); ++j) {
    if ((*v)(static_cast<int64_t>(j)) != want[j]) return 1;
  }
  return 0;
}

// A waiter's exit code for a wait's outcome: 0 ok, 3 deadline, 4 other.
int WaitCode(const absl::Status& s) {
  if (s.ok()) return 0;
  if (s.code() == absl::StatusCode::kDeadlineExceeded) return 3;
  return 4;
}

// 1.
TEST(WaitFor, EightWaitersAreWokenOneByOneAndReadTheirValues) {
  constexpr int kWaiters = 8;
  Heap heap = NewHeap();
  SharedArray<std::atomic<pid_t>> pids(kWaiters);
  // 1: woken and read the value; 2: woken, wrong value.
  SharedArray<std::atomic<int32_t>> outcome(kWaiters);
  const std::vector<int> codes = RunProcessesWithin(
      kWaiters + 1,
      [&](int p) {
        if (p < kWaiters) {
          pids[p] = getpid();
          const absl::Status s = heap.WaitFor(KeyName(p), kWait);
          if (!s.ok()) return WaitCode(s);
          outcome[p] =
              Mismatch(heap, KeyName(p), ArrayFor(p, 0, kValueLength)) == 0 ? 1
                                                                            : 2;
          return 0;
        }
        // The master: every waiter asleep, then one key at a time.
        std::vector<pid_t> asleep;
        const auto end = std::chrono::steady_clock::now() + kSettle;
        for (int i = 0; i < kWaiters; ++i) {
          while (pids[i].load() == 0) {
            if (std::chrono::steady_clock::now() >= end) return 10;
            std::this_thread::yield();
          }
          asleep.push_back(pids[i].load());
        }
        if (!AsleepWithin(heap, kWaiters, asleep)) return 11;
        for (int i = 0; i < kWaiters; ++i) {
          const std::vector<float> v = ArrayFor(i, 0, kValueLength);
          const int64_t dims[] = {kValueLength};
          absl::StatusOr<bool> added = heap.Add<float>(KeyName(i), v, dims);
          if (!added.ok() || !*added) return 12;
          if (!SetWithin(outcome[i])) return 20 + i;  // waiter i not woken
          // The others were woken too, and went back to sleep.
          asleep.erase(asleep.begin());
          if (!AsleepWithin(heap, kWaiters - 1 - i, asleep)) return 40 + i;
        }
        return 0;
      },
      std::chrono::seconds(60));
  for (int p = 0; p <= kWaiters; ++p) EXPECT_EQ(codes[p], 0) << "process " << p;
  for (int p = 0; p < kWaiters; ++p) EXPECT_EQ(outcome[p], 1) << "waiter " << p;
  EXPECT_EQ(Waiters(heap), 0u);
}

// 2.
TEST(WaitFor, AnAbsentKeyTimesOutAndBadCallsAreRefused) {
  Heap heap = NewHeap();
  const auto start = std::chrono::steady_clock::now();
  const absl::Status s = heap.WaitFor("absent", absl::Milliseconds(50));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("absent"), std::string::npos) << s;
  // A lower bound only: the machine may be slow, never early.
  EXPECT_GE(elapsed, std::chrono::milliseconds(50));
  EXPECT_EQ(Waiters(heap), 0u);
  EXPECT_EQ(heap.WaitFor("absent", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(heap.WaitFor("absent", absl::Milliseconds(-1)).code(),
            absl::StatusCode::kInvalidArgument);
  Heap moved = std::move(heap);
  EXPECT_EQ(heap.WaitFor("absent", absl::Milliseconds(1)).code(),  // NOLINT
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Waiters(moved), 0u);
}

// 3.
TEST(WaitFor, APresentKeyReturnsAtOnce) {
  Heap heap = NewHeap();
  const std::vector<float> v = ArrayFor(1, 0, kValueLength);
  const int64_t dims[] = {kValueLength};
  ASSERT_TRUE(*heap.Add<float>("here", v, dims));
  EXPECT_TRUE(heap.WaitFor("here", absl::ZeroDuration()).ok());
  EXPECT_TRUE(heap.WaitFor("here", absl::InfiniteDuration()).ok());
  // A view held by this process does not matter: the wait takes no scope.
  absl::StatusOr<ArrayView<float>> view = heap.Get<float>("here");
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(heap.WaitFor("here", kWait).ok());
  EXPECT_EQ(Waiters(heap), 0u);
}

// One sleeping waiter for `key`, woken by `publish` (run by the parent
// once the waiter sleeps); the waiter then checks the value with `check`.
// Returns the waiter's exit code: 0 woken and the value right, 3 not woken
// in time, 5 woken and the value wrong, other codes: setup failures.
int WakeOne(Heap& heap, const std::string& key,
            const std::function<bool(Heap&)>& publish,
            const std::function<bool(const Heap&)>& check) {
  SharedArray<std::atomic<pid_t>> pid(1);
  const std::vector<int> codes = RunProcessesWithin(
      2,
      [&](int p) {
        if (p == 0) {
          pid[0] = getpid();
          const absl::Status s = heap.WaitFor(key, kWait);
          if (!s.ok()) return WaitCode(s);
          return check(heap) ? 0 : 5;
        }
        const auto end = std::chrono::steady_clock::now() + kSettle;
        while (pid[0].load() == 0) {
          if (std::chrono::steady_clock::now() >= end) return 10;
          std::this_thread::yield();
        }
        if (!AsleepWithin(heap, 1, {pid[0].load()})) return 11;
        return publish(heap) ? 0 : 12;
      },
      std::chrono::seconds(30));
  EXPECT_EQ(codes[1], 0) << key << ": the publisher";
  return codes[0];
}

// 4.
TEST(WaitFor, EveryPublishingPathWakesAWaiter) {
  Heap heap = NewHeap();
  const int64_t dims[] = {kValueLength};
  auto value = [](int i) { return ArrayFor(i, 0, kValueLength); };
  auto has = [&](const std::string& key, int i) {
    return [key, i, value](const Heap& h) {
      return Mismatch(h, key, value(i)) == 0;
    };
  };
  EXPECT_EQ(WakeOne(
                heap, "add",
                [&](Heap& h) {
                  absl::StatusOr<bool> r = h.Add<float>("add", value(1), dims);
                  return r.ok() && *r;
                },
                has("add", 1)),
            0)
      << "Add did not wake its waiter (3: timed out)";
  EXPECT_EQ(WakeOne(
                heap, "many",
                [&](Heap& h) {
                  const std::vector<float> a = value(2);
                  const AddItem items[] = {
                      AddItem::Of<float>("many-other", a, dims),
                      AddItem::Of<float>("many", a, dims)};
                  absl::StatusOr<bool> results[2];
                  absl::StatusOr<size_t> n = h.AddMany(items, results);
                  return n.ok() && *n == 2;
                },
                has("many", 2)),
            0)
      << "AddMany did not wake its waiter (3: timed out)";
  EXPECT_EQ(WakeOne(
                heap, "reserved",
                [&](Heap& h) {
                  absl::StatusOr<Builder<float>> b =
                      h.Reserve<float>("reserved", dims);
                  if (!b.ok()) return false;
                  const std::vector<float> v = value(3);
                  std::copy(v.begin(), v.end(), b->data().begin());
                  absl::StatusOr<bool> r = b->Publish();
                  return r.ok() && *r;
                },
                has("reserved", 3)),
            0)
      << "a Reserve's Publish did not wake its waiter (3: timed out)";
  EXPECT_EQ(WakeOne(
                heap, "replaced",
                [&](Heap& h) {
                  absl::StatusOr<bool> r =
                      h.Replace<float>("replaced", value(4), dims);
                  return r.ok() && !*r;  // the key was absent
                },
                has("replaced", 4)),
            0)
      << "Replace did not wake its waiter (3: timed out)";
  ASSERT_TRUE(*heap.Add<float>("move-source", value(5), dims));
  EXPECT_EQ(WakeOne(
                heap, "moved",
                [&](Heap& h) { return h.Move("move-source", "moved").ok(); },
                has("moved", 5)),
            0)
      << "Move did not wake its waiter (3: timed out)";
  EXPECT_EQ(WakeOne(
                heap, "counter",
                [&](Heap& h) {
                  absl::StatusOr<int64_t> before = h.FetchAdd("counter", 7);
                  return before.ok() && *before == 0;
                },
                [](const Heap& h) {
                  absl::StatusOr<ArrayView<int64_t>> c =
                      h.Get<int64_t>("counter");
                  // Created at 0 (the publish that wakes), then 7 added:
                  // the waiter may read it between the two.
                  return c.ok() && c->ndims() == 0 &&
                         (*c->data() == 0 || *c->data() == 7);
                }),
            0)
      << "FetchAdd's creation did not wake its waiter (3: timed out)";
  EXPECT_EQ(*heap.FetchAdd("counter", 0), 7);
  EXPECT_EQ(Waiters(heap), 0u);
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
}

// 5.
TEST(WaitFor, ACollectionRunsWhileAWaiterSleeps) {
  Heap heap = NewHeap();
  const int64_t dims[] = {kValueLength};
  // Garbage for the collection to move.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        *heap.Add<float>(KeyName(i), ArrayFor(i, 0, kValueLength), dims));
    if (i % 2 == 0) {
      ASSERT_TRUE(heap.Remove(KeyName(i)).ok());
    }
  }
  EXPECT_EQ(
      WakeOne(
          heap, "after-gc",
          [&](Heap& h) {
            CollectOptions o;
            o.deadline = std::chrono::milliseconds(500);
            absl::StatusOr<GcReport> r = h.Collect(o);
            if (!r.ok()) {
              ADD_FAILURE()
                  << "Collect beside a sleeping waiter: " << r.status();
              return false;
            }
            absl::StatusOr<bool> added =
                h.Add<float>("after-gc", ArrayFor(99, 0, kValueLength), dims);
            return added.ok() && *added;
          },
          [&](const Heap& h) {
            for (int i = 1; i < 50; i += 2) {
              if (Mismatch(h, KeyName(i), ArrayFor(i, 0, kValueLength)) != 0) {
                return false;
              }
            }
            return Mismatch(h, "after-gc", ArrayFor(99, 0, kValueLength)) == 0;
          }),
      0);
}

// 7. Waits racing publishes, key by key: four waiter processes each wait
// for keys 0..kKeys-1 in order; one publisher publishes key k as soon as
// every waiter has returned from key k-1 (after a pause of 0 to ~60 us, so
// that the publish falls before, during and after the waiters' checks and
// sleeps), then waits for all of them to return from k. Each key is thus a
// fresh race between a wait's start and the one publish that can wake it
// (a later publish, which would wake it too, waits for it), so a lost
// wakeup shows up as that key's timeout (below the re-check period). Every
// wait returns ok and reads its key's value.
TEST(WaitFor, WaitsRacingPublishesAreNeverLost) {
  constexpr int kWaitersN = 4;
  constexpr int kKeys = 200;
  Heap heap = NewHeap();
  SharedArray<std::atomic<int32_t>> returned(kWaitersN);
  const std::vector<int> codes = RunProcessesWithin(
      kWaitersN + 1,
      [&](int p) {
        const int64_t dims[] = {kValueLength};
        if (p == kWaitersN) {
          for (int k = 0; k < kKeys; ++k) {
            const auto pause = std::chrono::steady_clock::now() +
                               std::chrono::microseconds(k * 7 % 61);
            while (std::chrono::steady_clock::now() < pause) {
            }
            absl::StatusOr<bool> added =
                heap.Add<float>(KeyName(k), ArrayFor(k, 0, kValueLength), dims);
            if (!added.ok() || !*added) return 12;
            const auto end = std::chrono::steady_clock::now() + kSettle;
            for (int w = 0; w < kWaitersN; ++w) {
              while (returned[w].load() <= k) {
                if (std::chrono::steady_clock::now() >= end) return 13;
              }
            }
          }
          return 0;
        }
        for (int k = 0; k < kKeys; ++k) {
          const absl::Status s = heap.WaitFor(KeyName(k), kWait);
          if (!s.ok()) return WaitCode(s);
          if (Mismatch(heap, KeyName(k), ArrayFor(k, 0, kValueLength)) != 0) {
            return 5;
          }
          returned[p] = k + 1;
        }
        return 0;
      },
      std::chrono::seconds(120));
  for (int p = 0; p <= kWaitersN; ++p) {
    EXPECT_EQ(codes[p], 0) << "process " << p << " (3: a wait timed out)";
  }
  for (int p = 0; p < kWaitersN; ++p) EXPECT_EQ(returned[p], kKeys) << p;
  EXPECT_EQ(Waiters(heap), 0u);
  // Publishers found waiters (each such publish bumps the word): the waits
  // did sleep, rather than always finding their keys present.
  EXPECT_GT(HeaderOf(heap).publish_seq.load(), 0u);
  std::printf("publishes that found waiters: %u of %d\n",
              HeaderOf(heap).publish_seq.load(), kKeys);
}

// 8.
void OnSignal(int) {}

TEST(WaitFor, ASignalledWaiterSleepsAgainAndIsWoken) {
  Heap heap = NewHeap();
  SharedArray<std::atomic<pid_t>> pid(1);
  const std::vector<int> codes = RunProcessesWithin(
      2,
      [&](int p) {
        if (p == 0) {
          // No SA_RESTART: each signal ends the FUTEX_WAIT with EINTR.
          struct sigaction sa = {};
          sa.sa_handler = OnSignal;
          if (sigaction(SIGUSR1, &sa, nullptr) != 0) return 10;
          pid[0] = getpid();
          const absl::Status s = heap.WaitFor("signalled", kWait);
          if (!s.ok()) return WaitCode(s);
          return Mismatch(heap, "signalled", ArrayFor(8, 0, kValueLength)) == 0
                     ? 0
                     : 5;
        }
        const auto end = std::chrono::steady_clock::now() + kSettle;
        while (pid[0].load() == 0) {
          if (std::chrono::steady_clock::now() >= end) return 20;
          std::this_thread::yield();
        }
        for (int i = 0; i < 5; ++i) {
          if (!AsleepWithin(heap, 1, {pid[0].load()})) return 21;
          kill(pid[0].load(), SIGUSR1);
        }
        // Back asleep after the last signal, still counted as waiting.
        if (!AsleepWithin(heap, 1, {pid[0].load()})) return 22;
        const int64_t dims[] = {kValueLength};
        absl::StatusOr<bool> added =
            heap.Add<float>("signalled", ArrayFor(8, 0, kValueLength), dims);
        return added.ok() && *added ? 0 : 23;
      },
      std::chrono::seconds(30));
  EXPECT_EQ(codes[0], 0) << "the waiter (5: returned before the publish)";
  EXPECT_EQ(codes[1], 0) << "the signaller and publisher";
  EXPECT_EQ(Waiters(heap), 0u);
}

// Forks a waiter for an absent key, waits until it sleeps and kills it.
// Returns its pid (reaped), or -1.
pid_t KillASleepingWaiter(Heap& heap) {
  const pid_t pid = fork();
  if (pid == 0) {
    (void)heap.WaitFor("never", absl::Seconds(60));
    _exit(0);
  }
  const bool asleep = AsleepWithin(heap, 1, {pid});
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return asleep && WIFSIGNALED(status) ? pid : -1;
}

// The share of Header::waiters recorded in entries owned by `pid`.
uint64_t ShareOf(const Heap& heap, pid_t pid) {
  const internal::Segment& seg = heap.segment();
  uint64_t share = 0;
  for (uint32_t i = 0; i < seg.header().max_sessions; ++i) {
    if (seg.registry()[i].owner_pid.load() == static_cast<uint64_t>(pid)) {
      share += seg.registry()[i].waiting.load();
    }
  }
  return share;
}

// 6a.
TEST(WaitFor, AKilledWaitersCountIsTakenOffByTheNextCollection) {
  Heap heap = NewHeap();
  const pid_t pid = KillASleepingWaiter(heap);
  ASSERT_GT(pid, 0) << "the waiter did not fall asleep";
  // Dead while counted: its entry holds its share.
  EXPECT_EQ(Waiters(heap), 1u);
  EXPECT_EQ(ShareOf(heap, pid), 1u);
  absl::StatusOr<GcReport> r = heap.Collect();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Waiters(heap), 0u) << "the dead waiter's count outlived Collect";
  EXPECT_EQ(ShareOf(heap, pid), 0u);
  // And waiting still works.
  const int64_t dims[] = {kValueLength};
  EXPECT_EQ(
      WakeOne(
          heap, "later",
          [&](Heap& h) {
            return *h.Add<float>("later", ArrayFor(1, 0, kValueLength), dims);
          },
          [](const Heap& h) {
            return Mismatch(h, "later", ArrayFor(1, 0, kValueLength)) == 0;
          }),
      0);
}

// 6b.
TEST(WaitFor, AKilledWaitersCountIsTakenOffByTheProcessThatTakesItsEntry) {
  // Two entries: this process's and the waiter's, so the next joiner must
  // reclaim the dead waiter's.
  Heap heap = NewHeap(/*max_sessions=*/2);
  ASSERT_TRUE(heap.Enter().ok());  // this process joins
  const pid_t pid = KillASleepingWaiter(heap);
  ASSERT_GT(pid, 0) << "the waiter did not fall asleep";
  EXPECT_EQ(Waiters(heap), 1u);
  const std::vector<int> codes = RunProcessesWithin(
      1,
      [&](int) {
        const int64_t dims[] = {kValueLength};
        absl::StatusOr<bool> added =
            heap.Add<float>("joined", ArrayFor(2, 0, kValueLength), dims);
        return added.ok() && *added ? 0 : 1;
      },
      std::chrono::seconds(30));
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(Waiters(heap), 0u)
      << "the dead waiter's count outlived the reclaim of its entry";
}

}  // namespace
}  // namespace shmheap
