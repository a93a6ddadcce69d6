// The C++ side of //bindings/ocaml:bench: Heap::Get<double> of a 64 B,
// 64 KiB and 16 MiB float64 array, reading every element, and the same get
// through the C ABI (shmheap_get, shmheap_view_ref, shmheap_view_release),
// their batches interleaved (~20 ms each, the median of 15 after a
// warm-up), as bench.ml times its own. bench.ml measures OCaml against the
// C ABI in its process; this measures the C ABI against C++, so the two
// differences add up to the OCaml binding's overhead over C++, each taken
// under one machine load. Prints one line per size:
// "cpp_get <elements> <C++ ns per call> <C ABI ns per call>".

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "capi/shmheap_c.h"
#include "shmheap.h"

namespace {

[[noreturn]] void Die(const char* message) {
  std::fprintf(stderr, "bench_cpp_get: %s\n", message);
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

// Seconds for `calls` calls of `once`.
double Batch(const std::function<void()>& once, int64_t calls) {
  const double t0 = Now();
  for (int64_t i = 0; i < calls; ++i) once();
  return Now() - t0;
}

int64_t Calibrate(const std::function<void()>& once) {
  int64_t n = 1;
  double dt = Batch(once, n);
  while (dt < 1e-3) dt = Batch(once, n *= 10);
  return std::max<int64_t>(1, int64_t(double(n) * 0.02 / dt));
}

}  // namespace

int main() {
  shmheap::Options options;
  options.heap_bytes = uint64_t{256} << 20;
  options.table_slots_log2 = 10;
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::Create(options);
  if (!heap.ok()) Die(heap.status().ToString().c_str());
  shmheap_heap* cheap = nullptr;
  if (shmheap_create(nullptr, &cheap) != SHMHEAP_OK) Die(shmheap_last_error());
  volatile double sink = 0;
  for (int64_t n : {int64_t{8}, int64_t{8192}, int64_t{2} << 20}) {
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = double(i % 1000);
    const std::string key = "get:" + std::to_string(n);
    const int64_t dims[] = {n};
    if (!heap->Add<double>(key, v, dims).ok()) Die("Add");
    const shmheap_key ckey{key.data(), key.size(), 0, 0};
    int published;
    if (shmheap_add(cheap, &ckey, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims,
                    v.data(), v.size() * sizeof(double),
                    &published) != SHMHEAP_OK) {
      Die(shmheap_last_error());
    }
    const std::function<void()> cpp = [&] {
      absl::StatusOr<shmheap::ArrayView<double>> a = heap->Get<double>(key);
      if (!a.ok()) Die("Get");
      sink = sink + Sum(a->flat());
    };
    const std::function<void()> cabi = [&] {
      shmheap_view* view;
      if (shmheap_get(cheap, &ckey, &view) != SHMHEAP_OK) Die("shmheap_get");
      shmheap_ref r;
      shmheap_view_ref(view, &r);
      sink = sink + Sum({static_cast<const double*>(r.data),
                         r.bytes / sizeof(double)});
      shmheap_view_release(view);
    };
    const int64_t cpp_calls = Calibrate(cpp), cabi_calls = Calibrate(cabi);
    std::vector<double> cpp_ns, cabi_ns;
    for (int round = 0; round < 16; ++round) {
      const double a = Batch(cpp, cpp_calls) / double(cpp_calls) * 1e9;
      const double b = Batch(cabi, cabi_calls) / double(cabi_calls) * 1e9;
      if (round == 0) continue;  // warm-up
      cpp_ns.push_back(a);
      cabi_ns.push_back(b);
    }
    std::sort(cpp_ns.begin(), cpp_ns.end());
    std::sort(cabi_ns.begin(), cabi_ns.end());
    std::printf("cpp_get %ld %.1f %.1f\n", long(n), cpp_ns[cpp_ns.size() / 2],
                cabi_ns[cabi_ns.size() / 2]);
  }
  shmheap_close(cheap);
  return 0;
}
