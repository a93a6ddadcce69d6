// Helpers for multi-process and multi-thread tests.
//
// RunProcesses forks real processes; each child runs `body(i)` and exits
// with its return value (a child that throws, crashes or fails an EXPECT
// reports non-zero). Children must report every value they read back through
// their exit code or a shared results area (SharedArray), never only print.
//
// Deadlines: a test that could hang when the code under test is broken (a
// collector that never finishes, a barrier a failed child never reaches)
// runs its children with RunProcessesWithin, or holds a Watchdog, so that it
// fails in seconds instead of at Bazel's timeout.

#ifndef SHMHEAP_TESTS_TEST_UTIL_H_
#define SHMHEAP_TESTS_TEST_UTIL_H_

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "heap/testing_hooks.h"

namespace shmheap::testing {

// What RunProcessesWithin reports for a child still running at its
// deadline.
inline constexpr int kTimedOut = 2000;
inline constexpr std::chrono::milliseconds kNoDeadline =
    std::chrono::milliseconds::max();

// Forks `n` children running body(i); returns each child's exit status
// (0..255), 1000 + signal number if it was killed, or kTimedOut if it still
// ran `deadline` after the forks (it is then killed with SIGKILL).
inline std::vector<int> RunProcessesWithin(int n,
                                           const std::function<int(int)>& body,
                                           std::chrono::milliseconds deadline) {
  const auto end = deadline == kNoDeadline
                       ? std::chrono::steady_clock::time_point::max()
                       : std::chrono::steady_clock::now() + deadline;
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      int rc = 1;
      rc = body(i);
      _exit(rc);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t pid : pids) {
    int status = 0;
    bool timed_out = false;
    if (deadline == kNoDeadline) {
      waitpid(pid, &status, 0);
    } else {
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= end) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          timed_out = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    codes.push_back(timed_out           ? kTimedOut
                    : WIFEXITED(status) ? WEXITSTATUS(status)
                                        : 1000 + WTERMSIG(status));
  }
  return codes;
}

// RunProcessesWithin with no deadline: waits for every child however long.
inline std::vector<int> RunProcesses(int n,
                                     const std::function<int(int)>& body) {
  return RunProcessesWithin(n, body, kNoDeadline);
}

// Aborts this process, naming `what`, if the watchdog still exists `limit`
// after it was made; destroying it first disarms it. For tests whose own
// process could hang (a collection that never returns).
class Watchdog {
 public:
  Watchdog(std::chrono::seconds limit, std::string what)
      : what_(std::move(what)), thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: %s did not finish within %lld s\n",
                         what_.c_str(), static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::string what_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;  // last: it starts once the members above exist
};

// Runs body(i) on `n` threads; returns each one's result.
inline std::vector<int> RunThreads(int n, const std::function<int(int)>& body) {
  std::vector<int> codes(n, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { codes[i] = body(i); });
  }
  for (auto& t : threads) t.join();
  return codes;
}

// An array of T in an anonymous MAP_SHARED mapping: written by children,
// read by the parent after they exit. T must be trivially copyable or an
// atomic type.
template <class T>
class SharedArray {
 public:
  explicit SharedArray(size_t n) : n_(n) {
    void* p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    data_ = static_cast<T*>(p);  // zero-filled by the kernel
  }
  ~SharedArray() { munmap(data_, sizeof(T) * n_); }
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  T& operator[](size_t i) { return data_[i]; }
  size_t size() const { return n_; }

 private:
  T* data_;
  size_t n_;
};

// A barrier for `n` processes (or threads) over shared memory.
class SharedBarrier {
 public:
  explicit SharedBarrier(int n) : n_(n), count_(1) {}
  void Wait() {
    // acq_rel: everything written before the barrier is visible after it.
    count_[0].fetch_add(1, std::memory_order_acq_rel);
    while (count_[0].load(std::memory_order_acquire) < n_) {
      std::this_thread::yield();
    }
  }

 private:
  int n_;
  SharedArray<std::atomic<int>> count_;
};

// Deterministic test contents: element j of the array for (key, version).
inline float ValueFor(uint64_t key, uint64_t version, uint64_t j) {
  uint64_t x =
      key * 0x9e3779b97f4a7c15ULL ^ version * 0xc2b2ae3d27d4eb4fULL ^ j;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<float>(x % 1000003) + 0.25f;
}

inline std::vector<float> ArrayFor(uint64_t key, uint64_t version, size_t n) {
  std::vector<float> v(n);
  for (size_t j = 0; j < n; ++j) v[j] = ValueFor(key, version, j);
  return v;
}

inline std::string KeyName(uint64_t i) { return "key:" + std::to_string(i); }

// A path for a test's file, distinct per process: "<dir>/<what>-<pid>" in
// $TEST_TMPDIR (Bazel's per-test directory), else /tmp.
inline std::string TempPath(const std::string& what) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + what + "-" +
         std::to_string(getpid());
}

// A heap name (in /dev/shm, shared by all tests) distinct per process:
// "shmheap-test-<what>-<pid>".
inline std::string UniqueName(const std::string& what) {
  return "shmheap-test-" + what + "-" + std::to_string(getpid());
}

// Crash injection (heap/testing_hooks.h): in a child about to run the code
// under test, makes this process SIGKILL itself the `nth` time it passes
// `point` (nth <= 0: nothing is installed, the child runs to its end).
namespace die_at_internal {
inline internal::TestingPoint g_point;
inline int g_countdown = 0;
inline void Hook(internal::TestingPoint point) {
  if (point == g_point && --g_countdown == 0) raise(SIGKILL);
}
}  // namespace die_at_internal
inline void DieAtNthPass(internal::TestingPoint point, int nth) {
  if (nth <= 0) return;
  die_at_internal::g_point = point;
  die_at_internal::g_countdown = nth;
  internal::SetTestingHook(&die_at_internal::Hook);
}

}  // namespace shmheap::testing

#endif  // SHMHEAP_TESTS_TEST_UTIL_H_
