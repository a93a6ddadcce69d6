// WaitFor's cost to publishers (hashtable/store.h, "Waiting"): every publish
// loads Header::waiters once after its CAS, and only when someone waits does
// it bump publish_seq and make a FUTEX_WAKE syscall.
//
//   shmheap/add_nobody_waits      2^17 single Adds of 4 floats (16-byte
//                                 keys), one process, inside one Pin: the
//                                 path every writer takes, paying one plain
//                                 load for WaitFor.
//   shmheap/add_while_one_waits   the same Adds while a forked process waits
//                                 for a key nobody publishes: every Add
//                                 finds waiters == 1 and wakes it (the
//                                 waiter re-checks its key and sleeps
//                                 again), so this is the price of a wake per
//                                 publish, paid only while someone waits.
//
// The first row against the same row built from a commit before WaitFor is
// the figure that says whether the load costs anything measurable; this
// file does not compare builds. Times are manual (each iteration builds its
// heap untimed); items_per_second counts Adds.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kKeys = uint64_t{1} << 17;

shmheap::Heap MakeHeap() {
  shmheap::Options o;
  o.heap_bytes = uint64_t{256} << 20;
  o.table_slots_log2 = 19;
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::Create(o);
  if (!heap.ok()) {
    std::fprintf(stderr, "%s\n", std::string(heap.status().message()).c_str());
    std::abort();
  }
  return *std::move(heap);
}

void BM_Add(benchmark::State& state, bool someone_waits) {
  for (auto _ : state) {
    state.PauseTiming();
    shmheap::Heap heap = MakeHeap();
    pid_t waiter = -1;
    if (someone_waits) {
      waiter = fork();
      if (waiter == 0) {
        (void)heap.WaitFor("never", absl::InfiniteDuration());
        _exit(0);
      }
      // Relaxed: a poll; nothing is read through it.
      while (heap.segment().header().waiters.load(std::memory_order_relaxed) ==
             0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    absl::StatusOr<shmheap::Pin> pin = heap.Enter();
    if (!pin.ok()) std::abort();
    char key[17];
    const int64_t dims[] = {4};
    state.ResumeTiming();
    const Clock::time_point start = Clock::now();
    for (uint64_t k = 0; k < kKeys; ++k) {
      absl::SNPrintF(key, sizeof key, "%016x", k * 0x9e3779b97f4a7c15ULL);
      const float v[4] = {float(k), 1, 2, 3};
      absl::StatusOr<bool> r = heap.Add<float>(key, v, dims);
      if (!r.ok() || !*r) std::abort();
    }
    state.SetIterationTime(
        std::chrono::duration<double>(Clock::now() - start).count());
    state.PauseTiming();
    if (waiter > 0) {
      kill(waiter, SIGKILL);
      waitpid(waiter, nullptr, 0);
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kKeys);
}

BENCHMARK_CAPTURE(BM_Add, shmheap / add_nobody_waits, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Add, shmheap / add_while_one_waits, true)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
