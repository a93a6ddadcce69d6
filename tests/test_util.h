// Helpers for multi-process and multi-thread tests.
//
// RunProcesses forks real processes; each child runs `body(i)` and exits
// with its return value (a child that throws, crashes or fails an EXPECT
// reports non-zero). Children must report every value they read back through
// their exit code or a shared results area (SharedArray), never only print.

#ifndef SHMHEAP_TESTS_TEST_UTIL_H_
#define SHMHEAP_TESTS_TEST_UTIL_H_

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace shmheap::testing {

// Forks `n` children running body(i); returns each child's exit status
// (0..255), or 1000 + signal number if it was killed.
inline std::vector<int> RunProcesses(int n,
                                     const std::function<int(int)>& body) {
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
    waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status)
                                      : 1000 + WTERMSIG(status));
  }
  return codes;
}

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

}  // namespace shmheap::testing

#endif  // SHMHEAP_TESTS_TEST_UTIL_H_
