// The C++ side of //bindings/ocaml:bench: Heap::Get<double> of a 64 B,
// 64 KiB and 16 MiB float64 array, reading every element, timed exactly as
// bench.ml times the OCaml get (batches of calls sized to ~20 ms, the median
// of 15 batches after a warm-up), so that the OCaml binding's per-call
// overhead over the C++ API can be read off the two. Prints one line per
// size: "cpp_get <elements> <median ns per call>".

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "shmheap.h"

namespace {

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "bench_cpp_get: %s\n", status.ToString().c_str());
  std::exit(1);
}

// Four accumulators, as bench.ml's sum: the loop is not latency-bound.
double Sum(std::span<const double> a) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 3 < a.size(); i += 4) {
    s0 += a[i];
    s1 += a[i + 1];
    s2 += a[i + 2];
    s3 += a[i + 3];
  }
  for (; i < a.size(); ++i) s0 += a[i];
  return s0 + s1 + s2 + s3;
}

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main() {
  shmheap::Options options;
  options.heap_bytes = uint64_t{256} << 20;
  options.table_slots_log2 = 10;
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::Create(options);
  if (!heap.ok()) Die(heap.status());
  double sink = 0;
  for (int64_t n : {int64_t{8}, int64_t{8192}, int64_t{2} << 20}) {
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = double(i % 1000);
    const std::string key = "get:" + std::to_string(n);
    const int64_t dims[] = {n};
    absl::StatusOr<bool> added = heap->Add<double>(key, v, dims);
    if (!added.ok()) Die(added.status());
    auto once = [&] {
      absl::StatusOr<shmheap::ArrayView<double>> a = heap->Get<double>(key);
      if (!a.ok()) Die(a.status());
      sink += Sum(a->flat());
    };
    // Calibrate a batch to ~20 ms, then take the median of 15.
    once();
    double t0 = Now();
    once();
    const double one = Now() - t0;
    const int64_t calls = std::max<int64_t>(1, int64_t(0.02 / (one + 1e-9)));
    std::vector<double> per_call;
    for (int b = 0; b < 16; ++b) {
      t0 = Now();
      for (int64_t i = 0; i < calls; ++i) once();
      if (b > 0) per_call.push_back((Now() - t0) / double(calls) * 1e9);
    }
    std::sort(per_call.begin(), per_call.end());
    std::printf("cpp_get %ld %.1f\n", long(n), per_call[per_call.size() / 2]);
  }
  if (sink == 42) std::printf("\n");  // keeps the sums
  return 0;
}
