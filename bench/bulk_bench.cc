// Bytes rather than operations: large arrays and compaction, against
// memcpy and memmove of the same bytes, in one process.
//
//   shmheap/large_write    Reserve<float> of 64 MiB, fill builder.data() with
//                          memcpy from a warm private buffer, Publish. A new
//                          heap each time (untimed), so every write lands on
//                          fresh shared pages, as the first publication of a
//                          result does: fallocate backs the chunk and each
//                          4 KiB page is faulted in on first write.
//   shmheap/large_write_reused  the same write into pages a collection kept
//                          for reuse (CollectOptions::reuse_slack_bytes, its
//                          default): a 64 MiB array is published, removed
//                          and collected (untimed) before the timed write,
//                          whose chunk then lies on backed, zeroed, already
//                          mapped pages.
//   shmheap/large_read     Get<float> of that array and memcpy it out into a
//                          warm private buffer.
//   memcpy/64MiB           the limit: memcpy between two warm private buffers.
//   memcpy_fresh/64MiB     context: memcpy into a freshly mapped memfd, i.e.
//                          the page-fault cost any new shared memory pays.
//   shmheap/compact        a heap of values (1,024 or 16 floats) from which
//                          every other one was removed (half the bytes
//                          dead): Collect(), bytes moved over its wall time
//                          (handshake, threading, sliding, giving the freed
//                          tail back, clearing tombstones: all of it).
//   memmove/compact        the limit: the same blob-by-blob memmoves (same
//                          sizes, same offsets) in a warm private buffer.
//   gcwall/collect_4k/values:500000  issue 15's collection: 500,000 values
//                          of 1,024 floats (4 KiB), every other one removed;
//                          the wall time of Collect() (milliseconds), all of
//                          it, with the default reuse slack.
//   gcwall/collect_4k_keep_all, gcwall/collect_4k_keep_none  the same with
//                          every freed page kept (as hh_shared does) and
//                          with none kept: the trade-off of the slack.
//
// Throughput is bytes_per_second (Google Benchmark's, from SetBytesProcessed
// and the manual time).

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "benchmark/benchmark.h"
#include "shmheap.h"

namespace shmheap::bench {
namespace {

constexpr uint64_t kLargeBytes = uint64_t{64} << 20;
constexpr int64_t kLargeFloats = kLargeBytes / sizeof(float);

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "bulk_bench: %s\n", status.ToString().c_str());
  std::abort();
}

double Seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A private buffer whose pages are all faulted in (written once).
std::vector<float> WarmBuffer(int64_t floats, float seed) {
  std::vector<float> v(floats);
  for (int64_t i = 0; i < floats; ++i) v[i] = seed + float(i % 4096);
  return v;
}

Heap NewHeap(uint64_t heap_bytes, uint32_t slots_log2) {
  Options options;
  options.heap_bytes = heap_bytes;
  options.table_slots_log2 = slots_log2;
  absl::StatusOr<Heap> heap = Heap::Create(options);
  if (!heap.ok()) Die(heap.status());
  return *std::move(heap);
}

// The large write, into a new heap's fresh pages, or (`reused`) into the
// pages a collection kept: an array of the same size is published, removed
// and collected first (untimed), with the default reuse slack.
void ShmheapLargeWrite(benchmark::State& state, bool reused) {
  const std::vector<float> source = WarmBuffer(kLargeFloats, 1.0f);
  const int64_t dims[] = {kLargeFloats};
  uint64_t kept = 0;
  for (auto _ : state) {
    Heap heap = NewHeap(kLargeBytes + (16 << 20), 4);
    if (reused) {
      absl::StatusOr<bool> added = heap.Add<float>("old", source, dims);
      if (!added.ok()) Die(added.status());
      if (absl::Status s = heap.Remove("old"); !s.ok()) Die(s);
      absl::StatusOr<GcReport> report = heap.Collect();
      if (!report.ok()) Die(report.status());
      kept = report->bytes_kept;
    }
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<Builder<float>> builder = heap.Reserve<float>("large", dims);
    if (!builder.ok()) Die(builder.status());
    std::memcpy(builder->data().data(), source.data(), kLargeBytes);
    absl::StatusOr<bool> published = builder->Publish();
    const auto t1 = std::chrono::steady_clock::now();
    if (!published.ok()) Die(published.status());
    absl::StatusOr<ArrayView<float>> view = heap.Get<float>("large");
    if (!*published || !view.ok() ||
        std::memcmp(view->data(), source.data(), kLargeBytes) != 0) {
      state.SkipWithError("the array read back differs");
      return;
    }
    state.SetIterationTime(Seconds(t0, t1));
  }
  if (reused) state.counters["kept_mib"] = double(kept) / (1 << 20);
  state.SetBytesProcessed(int64_t(state.iterations()) * kLargeBytes);
}

void ShmheapLargeRead(benchmark::State& state) {
  const std::vector<float> source = WarmBuffer(kLargeFloats, 2.0f);
  std::vector<float> out = WarmBuffer(kLargeFloats, 3.0f);
  const int64_t dims[] = {kLargeFloats};
  Heap heap = NewHeap(kLargeBytes + (16 << 20), 4);
  absl::StatusOr<bool> added = heap.Add<float>("large", source, dims);
  if (!added.ok()) Die(added.status());
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<ArrayView<float>> view = heap.Get<float>("large");
    if (!view.ok()) Die(view.status());
    std::memcpy(out.data(), view->data(), kLargeBytes);
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(Seconds(t0, t1));
  }
  if (std::memcmp(out.data(), source.data(), kLargeBytes) != 0) {
    state.SkipWithError("the array read back differs");
    return;
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kLargeBytes);
}

void Memcpy(benchmark::State& state) {
  const std::vector<float> source = WarmBuffer(kLargeFloats, 4.0f);
  std::vector<float> out = WarmBuffer(kLargeFloats, 5.0f);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(out.data(), source.data(), kLargeBytes);
    benchmark::ClobberMemory();
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(Seconds(t0, t1));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kLargeBytes);
}

void MemcpyFresh(benchmark::State& state) {
  const std::vector<float> source = WarmBuffer(kLargeFloats, 6.0f);
  for (auto _ : state) {
    const int fd = memfd_create("bench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kLargeBytes) != 0) std::abort();
    void* p =
        mmap(nullptr, kLargeBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) std::abort();
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(p, source.data(), kLargeBytes);
    benchmark::ClobberMemory();
    const auto t1 = std::chrono::steady_clock::now();
    munmap(p, kLargeBytes);
    close(fd);
    state.SetIterationTime(Seconds(t0, t1));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kLargeBytes);
}

// Compaction: live bytes before removal, and the table size for them.
constexpr uint64_t kCompactHeapBytes = uint64_t{128} << 20;

std::string CompactKey(uint64_t i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "c%015llu",
                static_cast<unsigned long long>(i));
  return std::string(buf, 16);
}

// Adds `count` values of value.size() floats (element 0 = the index) and
// removes every other one: half the bytes dead.
void AddThenRemoveHalf(Heap& heap, uint64_t count, std::vector<float>& value) {
  const int64_t dims[] = {int64_t(value.size())};
  for (uint64_t i = 0; i < count; ++i) {
    value[0] = float(i);
    absl::StatusOr<bool> added = heap.Add<float>(CompactKey(i), value, dims);
    if (!added.ok()) Die(added.status());
  }
  for (uint64_t i = 1; i < count; i += 2) {
    if (absl::Status s = heap.Remove(CompactKey(i)); !s.ok()) Die(s);
  }
}

// Whether every survivor of AddThenRemoveHalf is where the table says,
// with its contents.
bool SurvivorsIntact(const Heap& heap, uint64_t count) {
  for (uint64_t i = 0; i < count; i += 2) {
    absl::StatusOr<ArrayView<float>> v = heap.Get<float>(CompactKey(i));
    if (!v.ok() || v->data()[0] != float(i)) return false;
  }
  return true;
}

void ShmheapCompact(benchmark::State& state, int64_t floats) {
  const int64_t dims[] = {floats};
  std::vector<float> value(floats, 0.25f);
  uint64_t moved = 0;
  for (auto _ : state) {
    // Fill until 128 MiB of blobs, with a table at most half full.
    uint64_t blob_bytes = 0;
    uint64_t count = 0;
    {
      Heap probe = NewHeap(16 << 20, 4);
      (void)probe.Add<float>(CompactKey(0), value, dims);
      blob_bytes = probe.stats().live_bytes;
    }
    count = kCompactHeapBytes / blob_bytes;
    uint32_t slots_log2 = 4;
    while ((uint64_t{1} << slots_log2) < 2 * count) ++slots_log2;
    Heap heap = NewHeap(kCompactHeapBytes + (64 << 20), slots_log2);
    AddThenRemoveHalf(heap, count, value);
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<GcReport> report = heap.Collect();
    const auto t1 = std::chrono::steady_clock::now();
    if (!report.ok()) Die(report.status());
    if (!SurvivorsIntact(heap, count)) {
      state.SkipWithError("a value moved by the collector differs");
      return;
    }
    moved += report->bytes_moved;
    state.SetIterationTime(Seconds(t0, t1));
    state.counters["blob_bytes"] = double(blob_bytes);
    state.counters["blobs_moved"] = double(report->blobs_moved);
  }
  state.SetBytesProcessed(int64_t(moved));
}

void MemmoveCompact(benchmark::State& state, int64_t floats) {
  // The collector's moves, replayed: blobs of the size shmheap gives these
  // values laid end to end, every other one dead, each live one moved down
  // to the end of the previous survivor.
  uint64_t blob_bytes = 0;
  {
    const int64_t dims[] = {floats};
    std::vector<float> value(floats, 0.25f);
    Heap probe = NewHeap(16 << 20, 4);
    (void)probe.Add<float>(CompactKey(0), value, dims);
    blob_bytes = probe.stats().live_bytes;
  }
  const uint64_t count = kCompactHeapBytes / blob_bytes;
  std::vector<std::byte> heap(count * blob_bytes, std::byte{1});
  uint64_t moved = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t dest = 0;
    for (uint64_t i = 0; i < count; i += 2) {
      const uint64_t pos = i * blob_bytes;
      if (dest != pos) {
        std::memmove(heap.data() + dest, heap.data() + pos, blob_bytes);
        moved += blob_bytes;
      }
      dest += blob_bytes;
    }
    benchmark::ClobberMemory();
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(Seconds(t0, t1));
  }
  state.SetBytesProcessed(int64_t(moved));
}

// Issue 15's collection: `values` values of 1,024 floats, every other one
// removed, collected with a reuse slack of `slack` bytes
// (CollectOptions::reuse_slack_bytes); the manual time is Collect's wall
// time.
void CollectWall(benchmark::State& state, uint64_t values, uint64_t slack) {
  constexpr int64_t kFloats = 1024;
  std::vector<float> value(kFloats, 0.5f);
  for (auto _ : state) {
    uint32_t slots_log2 = 4;
    while ((uint64_t{1} << slots_log2) < 2 * values) ++slots_log2;
    Heap heap = NewHeap(values * (kFloats * 4 + 192) + (64 << 20), slots_log2);
    AddThenRemoveHalf(heap, values, value);
    CollectOptions options;
    options.reuse_slack_bytes = slack;
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<GcReport> report = heap.Collect(options);
    const auto t1 = std::chrono::steady_clock::now();
    if (!report.ok()) Die(report.status());
    if (!SurvivorsIntact(heap, values)) {
      state.SkipWithError("a value moved by the collector differs");
      return;
    }
    state.SetIterationTime(Seconds(t0, t1));
    state.counters["gib_before"] = double(report->bytes_before) / (1 << 30);
    state.counters["kept_mib"] = double(report->bytes_kept) / (1 << 20);
    state.counters["released_mib"] = double(report->bytes_released) / (1 << 20);
  }
}

void RegisterAll() {
  auto configure = [](benchmark::internal::Benchmark* b, int iterations) {
    b->UseManualTime()->Iterations(iterations)->Unit(benchmark::kMillisecond);
  };
  configure(benchmark::RegisterBenchmark("shmheap/large_write/mib:64",
                                         ShmheapLargeWrite, false),
            4);
  configure(benchmark::RegisterBenchmark("shmheap/large_write_reused/mib:64",
                                         ShmheapLargeWrite, true),
            4);
  configure(benchmark::RegisterBenchmark("shmheap/large_read/mib:64",
                                         ShmheapLargeRead),
            8);
  configure(benchmark::RegisterBenchmark("memcpy/large/mib:64", Memcpy), 8);
  configure(
      benchmark::RegisterBenchmark("memcpy_fresh/large/mib:64", MemcpyFresh),
      4);
  for (int64_t floats : {1024, 16}) {
    const std::string suffix = "/compact/floats:" + std::to_string(floats);
    configure(benchmark::RegisterBenchmark(("shmheap" + suffix).c_str(),
                                           ShmheapCompact, floats),
              1);
    configure(benchmark::RegisterBenchmark(("memmove" + suffix).c_str(),
                                           MemmoveCompact, floats),
              4);
  }
  configure(benchmark::RegisterBenchmark("gcwall/collect_4k/values:500000",
                                         CollectWall, 500'000,
                                         CollectOptions::kAutoReuseSlack),
            1);
  configure(
      benchmark::RegisterBenchmark("gcwall/collect_4k_keep_all/values:500000",
                                   CollectWall, 500'000, ~uint64_t{0} - 1),
      1);
  configure(
      benchmark::RegisterBenchmark("gcwall/collect_4k_keep_none/values:500000",
                                   CollectWall, 500'000, uint64_t{0}),
      1);
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
