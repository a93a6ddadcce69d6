// Table growth (gc/grow.h): what a table that grows costs writers.
//
//   shmheap/add_growing      2^20 Adds of 4 floats, one process, into a heap
//                            created with 2^10 slots (at most 2^22): the
//                            table grows 2^10 -> 2^21 through the
//                            collections the Adds run (counter
//                            `collections`); the time includes them.
//   shmheap/add_presized     the same Adds into a heap created with 2^21
//                            slots: no growth, the reference.
//   shmheap/collect_grow     one Collect of a heap holding 600,000 live
//                            values in 2^20 slots (load 0.57, added inside
//                            a read scope so that no Add grew it): the
//                            compaction plus the rehash into 2^21 slots.
//   shmheap/collect_no_grow  the same Collect in a heap whose table may not
//                            grow (max_table_slots_log2 = 20): the
//                            compaction alone; the difference is the growth.
//
// Times are manual (each iteration builds its heap untimed);
// items_per_second counts Adds (add_*) or table slots before the
// collection (collect_*).

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "shmheap.h"

namespace {

using Clock = std::chrono::steady_clock;

shmheap::Heap MakeHeap(uint32_t slots_log2, uint32_t max_slots_log2) {
  shmheap::Options o;
  o.heap_bytes = uint64_t{1} << 30;
  o.table_slots_log2 = slots_log2;
  o.max_table_slots_log2 = max_slots_log2;
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::Create(o);
  if (!heap.ok()) {
    std::fprintf(stderr, "%s\n", std::string(heap.status().message()).c_str());
    std::abort();
  }
  return *std::move(heap);
}

void AddAll(shmheap::Heap& heap, uint64_t n) {
  const int64_t dims[] = {4};
  for (uint64_t k = 0; k < n; ++k) {
    const float v[4] = {float(k), 1, 2, 3};
    absl::StatusOr<bool> r = heap.Add<float>(absl::StrCat("key:", k), v, dims);
    if (!r.ok() || !*r) std::abort();
  }
}

void BM_Add(benchmark::State& state, uint32_t slots_log2) {
  constexpr uint64_t kKeys = uint64_t{1} << 20;
  uint64_t collections = 0, slots = 0;
  for (auto _ : state) {
    shmheap::Heap heap = MakeHeap(slots_log2, 22);
    const auto t0 = Clock::now();
    AddAll(heap, kKeys);
    state.SetIterationTime(
        std::chrono::duration<double>(Clock::now() - t0).count());
    collections = heap.stats().collections;
    slots = heap.stats().table_slots;
  }
  state.SetItemsProcessed(state.iterations() * kKeys);
  state.counters["collections"] = static_cast<double>(collections);
  state.counters["final_slots"] = static_cast<double>(slots);
}

void BM_Collect(benchmark::State& state, uint32_t max_slots_log2) {
  constexpr uint64_t kKeys = 600000;
  uint64_t after = 0;
  for (auto _ : state) {
    shmheap::Heap heap = MakeHeap(20, max_slots_log2);
    {
      absl::StatusOr<shmheap::ReadScope> scope = heap.Read();
      AddAll(heap, kKeys);
    }
    const auto t0 = Clock::now();
    absl::StatusOr<shmheap::GcReport> gc = heap.Collect();
    state.SetIterationTime(
        std::chrono::duration<double>(Clock::now() - t0).count());
    if (!gc.ok()) std::abort();
    after = gc->table_slots_after;
  }
  state.SetItemsProcessed(state.iterations() * (uint64_t{1} << 20));
  state.counters["slots_after"] = static_cast<double>(after);
}

BENCHMARK_CAPTURE(BM_Add, add_growing, 10)
    ->Name("shmheap/add_growing")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_Add, add_presized, 21)
    ->Name("shmheap/add_presized")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_Collect, collect_grow, 22)
    ->Name("shmheap/collect_grow")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_Collect, collect_no_grow, 20)
    ->Name("shmheap/collect_no_grow")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
