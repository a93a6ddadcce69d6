// A small set of arrays of several kinds and both layouts, written into a
// heap by the CLI's end-to-end test (from a forked child) and by
// //tools:sample_writer (for the README's examples), so that `shmheap get`
// has something of every shape to show.
//
//   temps       float32    C        [2, 3]
//   squares     int32      C        [1000]      i * i
//   spectrum    complex64  Fortran  [2, 2]
//   greeting    char       C        [15]        "hello,\tshmheap\n"
//   bytes       int8 unsigned, C    [4]         0 127 128 255
//   deltas      int8 signed, C      [4]         -128 -1 0 127
//   scratch:0, scratch:1   float64  [262144] (2 MiB each), written first:
//                          removing them leaves dead bytes below the
//                          other arrays, which the collector slides down

#ifndef SHMHEAP_TOOLS_SAMPLE_ARRAYS_H_
#define SHMHEAP_TOOLS_SAMPLE_ARRAYS_H_

#include <complex>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "shmheap.h"

namespace shmheap::tools::testing {

inline constexpr int kSampleArrays = 8;
inline constexpr int64_t kScratchElements = int64_t{1} << 18;
inline constexpr std::string_view kGreeting = "hello,\tshmheap\n";

// Adds the arrays above; an error names the first key that failed.
inline absl::Status WriteSampleArrays(Heap& heap) {
  auto check = [](absl::StatusOr<bool> added) -> absl::Status {
    if (!added.ok()) return added.status();
    if (!*added) return absl::AlreadyExistsError("a sample key exists");
    return absl::OkStatus();
  };
  std::vector<double> scratch(kScratchElements);
  for (int64_t i = 0; i < kScratchElements; ++i) scratch[i] = double(i) / 4;
  const int64_t scratch_dims[] = {kScratchElements};
  for (const char* key : {"scratch:0", "scratch:1"}) {
    if (absl::Status s = check(heap.Add<double>(key, scratch, scratch_dims));
        !s.ok()) {
      return s;
    }
  }
  const float temps[] = {20.5f, 21.0f, 19.25f, 18.0f, 22.125f, 23.0f};
  const int64_t temps_dims[] = {2, 3};
  if (absl::Status s = check(heap.Add<float>("temps", temps, temps_dims));
      !s.ok()) {
    return s;
  }
  std::vector<int32_t> squares(1000);
  for (int32_t i = 0; i < 1000; ++i) squares[i] = i * i;
  const int64_t squares_dims[] = {1000};
  if (absl::Status s =
          check(heap.Add<int32_t>("squares", squares, squares_dims));
      !s.ok()) {
    return s;
  }
  const std::complex<double> spectrum[] = {
      {1, -1}, {0.5, 2}, {-3, 0}, {0, 0.25}};
  const int64_t spectrum_dims[] = {2, 2};
  if (absl::Status s = check(heap.Add<std::complex<double>>(
          "spectrum", spectrum, spectrum_dims, Layout::kFortran));
      !s.ok()) {
    return s;
  }
  const int64_t greeting_dims[] = {static_cast<int64_t>(kGreeting.size())};
  if (absl::Status s = check(heap.Add<char>(
          "greeting", std::span<const char>(kGreeting.data(), kGreeting.size()),
          greeting_dims));
      !s.ok()) {
    return s;
  }
  const uint8_t bytes[] = {0, 127, 128, 255};
  const int8_t deltas[] = {-128, -1, 0, 127};
  const int64_t four[] = {4};
  if (absl::Status s = check(heap.Add<uint8_t>("bytes", bytes, four));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = check(heap.Add<int8_t>("deltas", deltas, four));
      !s.ok()) {
    return s;
  }
  return absl::OkStatus();
}

}  // namespace shmheap::tools::testing

#endif  // SHMHEAP_TOOLS_SAMPLE_ARRAYS_H_
