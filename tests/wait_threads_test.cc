// Heap::WaitFor between threads of one process: the counterpart of
// wait_test (which forks, and so does not run under TSan), so that the
// sanitizer sees the waiter's and the publisher's accesses to
// Header::waiters, Header::publish_seq, the entry's share and the slots.
//
// What this proves:
//   1. Four waiter threads, each waiting for a key of its own, all sleep
//      (Header::waiters counts them) and are woken by another thread's
//      publishes, one key at a time; each reads the value published.
//   2. Waits racing publishes, key by key (four waiter threads, one
//      publisher that publishes key k once every waiter returned from
//      k-1): every wait returns ok and reads its value; afterwards nobody
//      is counted as waiting, in the header or in this session's entry.
// Every wait's timeout is below kWaitRecheck, so a lost wakeup is a
// kDeadlineExceeded, not a late success.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "hashtable/store.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::ArrayFor;
using testing::KeyName;
using testing::RunThreads;

constexpr absl::Duration kWait = absl::Seconds(6);
static_assert(kWait < internal::kWaitRecheck);
constexpr int kValueLength = 5;

Heap NewHeap() {
  Options o;
  o.heap_bytes = uint64_t{16} << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  o.min_available_bytes = 0;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  if (!heap.ok()) {
    ADD_FAILURE() << heap.status();
    std::abort();
  }
  return *std::move(heap);
}

uint32_t Waiters(const Heap& heap) {
  return heap.segment().header().waiters.load();
}

bool Holds(const Heap& heap, int k) {
  absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(k));
  const std::vector<float> want = ArrayFor(k, 0, kValueLength);
  if (!v.ok() || v->size() != kValueLength) return false;
  for (int j = 0; j < kValueLength; ++j) {
    if ((*v)(j) != want[j]) return false;
  }
  return true;
}

bool Publish(Heap& heap, int k) {
  const int64_t dims[] = {kValueLength};
  absl::StatusOr<bool> added =
      heap.Add<float>(KeyName(k), ArrayFor(k, 0, kValueLength), dims);
  return added.ok() && *added;
}

// 1.
TEST(WaitForThreads, SleepingWaitersAreWokenByAnotherThreadsPublishes) {
  constexpr int kWaiters = 4;
  Heap heap = NewHeap();
  std::atomic<int> publisher_code{-1};
  std::thread publisher([&] {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (Waiters(heap) != kWaiters) {
      if (std::chrono::steady_clock::now() >= end) {
        publisher_code = 1;  // the waiters never all waited
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int k = 0; k < kWaiters; ++k) {
      if (!Publish(heap, k)) {
        publisher_code = 2;
        return;
      }
    }
    publisher_code = 0;
  });
  const std::vector<int> codes = RunThreads(kWaiters, [&](int t) {
    const absl::Status s = heap.WaitFor(KeyName(t), kWait);
    if (!s.ok()) return s.code() == absl::StatusCode::kDeadlineExceeded ? 3 : 4;
    return Holds(heap, t) ? 0 : 5;
  });
  publisher.join();
  EXPECT_EQ(publisher_code, 0);
  for (int t = 0; t < kWaiters; ++t) {
    EXPECT_EQ(codes[t], 0) << "waiter " << t << " (3: timed out)";
  }
  EXPECT_EQ(Waiters(heap), 0u);
}

// 2.
TEST(WaitForThreads, WaitsRacingPublishesAreNeverLost) {
  constexpr int kWaiters = 4;
  constexpr int kKeys = 100;
  Heap heap = NewHeap();
  std::atomic<int> returned[kWaiters] = {};
  std::atomic<int> publisher_code{-1};
  std::thread publisher([&] {
    for (int k = 0; k < kKeys; ++k) {
      if (!Publish(heap, k)) {
        publisher_code = 2;
        return;
      }
      const auto end =
          std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (int w = 0; w < kWaiters; ++w) {
        while (returned[w].load() <= k) {
          if (std::chrono::steady_clock::now() >= end) {
            publisher_code = 3;  // a waiter never returned from key k
            return;
          }
          std::this_thread::yield();
        }
      }
    }
    publisher_code = 0;
  });
  const std::vector<int> codes = RunThreads(kWaiters, [&](int t) {
    for (int k = 0; k < kKeys; ++k) {
      const absl::Status s = heap.WaitFor(KeyName(k), kWait);
      if (!s.ok()) {
        return s.code() == absl::StatusCode::kDeadlineExceeded ? 3 : 4;
      }
      if (!Holds(heap, k)) return 5;
      returned[t] = k + 1;
    }
    return 0;
  });
  publisher.join();
  EXPECT_EQ(publisher_code, 0);
  for (int t = 0; t < kWaiters; ++t) {
    EXPECT_EQ(codes[t], 0) << "waiter " << t << " (3: a wait timed out)";
  }
  EXPECT_EQ(Waiters(heap), 0u);
  const internal::Segment& seg = heap.segment();
  uint64_t shares = 0;
  for (uint32_t i = 0; i < seg.header().max_sessions; ++i) {
    shares += seg.registry()[i].waiting.load();
  }
  EXPECT_EQ(shares, 0u);
}

}  // namespace
}  // namespace shmheap
