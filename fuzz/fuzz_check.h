// Assertions for fuzz targets: a failed check prints what broke and aborts,
// which libFuzzer (and fuzz/replay_main.cc) report as a crash with the input
// that caused it. Not assert(): the checks are the point of the target, so
// they must hold in every build, NDEBUG or not.

#ifndef SHMHEAP_FUZZ_FUZZ_CHECK_H_
#define SHMHEAP_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace shmheap::fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line,
                                     const char* condition,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s %s\n", file, line,
               condition, detail.c_str());
  std::abort();
}

}  // namespace shmheap::fuzz

// FUZZ_CHECK(cond) or FUZZ_CHECK(cond, detail): detail is a std::string (or
// anything that converts to one), evaluated only on failure.
#define FUZZ_CHECK(cond, ...)                                 \
  do {                                                        \
    if (!(cond)) {                                            \
      ::shmheap::fuzz::CheckFailed(__FILE__, __LINE__, #cond, \
                                   std::string(__VA_ARGS__)); \
    }                                                         \
  } while (0)

// Checks that `status` has one of the listed codes (OK is not implied).
#define FUZZ_CHECK_CODE(status, ...)                                      \
  do {                                                                    \
    const absl::Status fuzz_status_ = (status);                           \
    bool fuzz_allowed_ = false;                                           \
    for (absl::StatusCode fuzz_code_ : {__VA_ARGS__}) {                   \
      fuzz_allowed_ = fuzz_allowed_ || fuzz_status_.code() == fuzz_code_; \
    }                                                                     \
    FUZZ_CHECK(fuzz_allowed_, fuzz_status_.ToString());                   \
  } while (0)

#endif  // SHMHEAP_FUZZ_FUZZ_CHECK_H_
