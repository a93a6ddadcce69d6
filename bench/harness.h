// The table-benchmark harness: the workload matrix of issue 6, the keys and
// values every system stores, and a runner that starts N workers (forked
// processes, or threads for the in-process baseline) together and measures
// their aggregate throughput.
//
// Every system under test (shmheap, the bare array, Boost.Interprocess, LMDB,
// std::unordered_map) runs the same operations on the same keys in the same
// order; only the store differs. A system is a class with:
//
//   explicit S(const Spec& spec);   // an empty store for spec (parent)
//   void Attach(int worker);        // in the worker, before the barrier
//   void Detach();                  // in the worker, after the last round
//   bool Add(uint64_t id, std::span<const float> value);  // true: published
//   bool Get(uint64_t id, float* first);  // true: found; *first = value[0]
//   bool Remove(uint64_t id);       // between rounds, worker 0 only
//   auto Scope();                   // held around batches of kBatch ops
//   void AfterMeasurement(const Spec&);  // parent, untimed (a collection)
//   void Clear();                   // optional: empty the store (add rounds)
//   static constexpr Mode kMode;    // processes or threads
//
// Measurement. The runner forks the workers; each attaches and warms up
// (touches every key it will read, so page faults of a freshly forked
// process are not timed), then all meet at a barrier, run their share of the
// operations, and record start and stop times (CLOCK_MONOTONIC). A round's
// time is the last stop minus the first start; the throughput is all
// workers' operations over the sum of the rounds' times (and, as
// cpu_ops_per_s, over the workers' CPU time in those rounds). Every result is
// checked (a hit must return its key's marker value, a miss must miss, an
// add must publish); a failure fails the benchmark, it is not counted.
//
// Keys are 16 bytes (16 hex digits of a random 64-bit number: the bare array
// stores that number itself); values are float32 arrays whose first element
// is a marker derived from the key, so every read is verified.
//
// The 90/10 mix adds fresh keys, which would drift the load factor up over a
// long run. So it runs in rounds of kMixAddsPerRound adds (2% of the slots,
// so a round is long enough that one context switch does not dominate it);
// between rounds worker 0 removes them (untimed) and the next round adds the
// same keys again. The load during a mix is the nominal one plus at most 2%.

#ifndef SHMHEAP_BENCH_HARNESS_H_
#define SHMHEAP_BENCH_HARNESS_H_

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"

namespace shmheap::bench {

// ---------------------------------------------------------------------------
// The workload matrix.

enum class Op { kAdd, kGetHit, kGetMiss, kMix };
enum class Mode { kProcesses, kThreads };

inline const char* OpName(Op op) {
  switch (op) {
    case Op::kAdd:
      return "add";
    case Op::kGetHit:
      return "get_hit";
    case Op::kGetMiss:
      return "get_miss";
    case Op::kMix:
      return "mix90_10";
  }
  return "?";
}

// Every table has 2^16 slots (the bare array's slot count; Boost's and the
// std map's bucket counts): 1 MiB of shmheap slots, cache resident on these
// machines, so the comparison is of the code paths, not of DRAM.
inline constexpr int kSlotsLog2 = 16;
inline constexpr uint64_t kSlots = uint64_t{1} << kSlotsLog2;
inline constexpr int kLoadPercents[] = {50, 75, 90};
inline constexpr int kValueFloats[] = {16, 1024};
inline constexpr int kWorkerCounts[] = {1, 2, 4, 8};
inline constexpr Op kOps[] = {Op::kAdd, Op::kGetHit, Op::kGetMiss, Op::kMix};

// Keys present at the highest load; the lower loads use a prefix of them.
inline constexpr uint64_t kMaxPresent = kSlots * 90 / 100;
// Keys the mix adds in each round (then removes): 2% of the slots.
inline constexpr uint64_t kMixAddsPerRound = kSlots / 50;
// Keys never added, for misses.
inline constexpr uint64_t kAbsent = 1 << 14;
// Key ids: [0, kMaxPresent) present, then the mix's fresh keys, then absent.
inline constexpr uint64_t kFirstFresh = kMaxPresent;
inline constexpr uint64_t kFirstAbsent = kFirstFresh + kMixAddsPerRound;
inline constexpr uint64_t kNumKeys = kFirstAbsent + kAbsent;
// Operations per batch: a shmheap worker holds one Pin per batch, long
// enough to amortize entering the scope, short enough that a collector is
// never kept out for long.
inline constexpr int kBatch = 256;

struct Spec {
  Op op;
  int floats;  // elements per value
  int load_percent;
  int workers;

  uint64_t present() const { return kSlots * load_percent / 100; }
  uint64_t value_bytes() const { return uint64_t(floats) * sizeof(float); }
};

// ---------------------------------------------------------------------------
// Keys and values.

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline constexpr size_t kKeyBytes = 16;

// `n` keys with ids [0, n), as 64-bit numbers (never 0, all distinct) and as
// 16 hex digits of that number.
class KeyStrings {
 public:
  explicit KeyStrings(uint64_t n) : raw_(n), text_(n * kKeyBytes + 1) {
    for (uint64_t id = 0; id < n; ++id) {
      // SplitMix64 is a bijection, so the keys are distinct; exactly one
      // input maps to 0, and it is not a small id.
      const uint64_t k = SplitMix64(id);
      if (k == 0) std::abort();
      raw_[id] = k;
      std::snprintf(text_.data() + id * kKeyBytes, kKeyBytes + 1, "%016llx",
                    static_cast<unsigned long long>(k));
    }
  }
  uint64_t raw(uint64_t id) const { return raw_[id]; }
  std::string_view str(uint64_t id) const {
    return {text_.data() + id * kKeyBytes, kKeyBytes};
  }

 private:
  std::vector<uint64_t> raw_;
  // One extra byte for snprintf's terminator past the last key.
  std::vector<char> text_;
};

// The kNumKeys keys of the table workloads.
class Keys : public KeyStrings {
 public:
  static const Keys& Get() {
    static const Keys* keys = new Keys();
    return *keys;
  }

 private:
  Keys() : KeyStrings(kNumKeys) {}
};

// The marker stored as element 0 (and the last element) of id's value:
// exact in float32 for every id.
inline float Marker(uint64_t id) { return static_cast<float>(id + 1); }

// A value buffer whose first and last elements are rewritten per key.
class ValueBuffer {
 public:
  explicit ValueBuffer(int floats) : v_(floats) {
    for (int i = 0; i < floats; ++i) v_[i] = 0.5f * float(i);
  }
  std::span<const float> For(uint64_t id) {
    v_.front() = Marker(id);
    v_.back() = Marker(id);
    return v_;
  }

 private:
  std::vector<float> v_;
};

// kBatch value buffers, for systems that add a batch at once (their values
// must all be alive together): the same contents and the same per-key
// rewrite as ValueBuffer.
class BatchValues {
 public:
  explicit BatchValues(int floats) : floats_(floats), v_(kBatch * floats) {
    for (int b = 0; b < kBatch; ++b) {
      for (int i = 0; i < floats; ++i) v_[b * floats + i] = 0.5f * float(i);
    }
  }
  // Buffer `slot` (< kBatch), holding id's value.
  std::span<const float> For(int slot, uint64_t id) {
    float* v = v_.data() + size_t(slot) * floats_;
    v[0] = Marker(id);
    v[floats_ - 1] = Marker(id);
    return {v, size_t(floats_)};
  }

 private:
  int floats_;
  std::vector<float> v_;
};

// A per-worker random stream (xorshift64*): a few cycles per draw.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(SplitMix64(seed) | 1) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dULL;
  }
  // Uniform in [0, n) (Lemire's multiply-shift; n < 2^32).
  uint64_t Below(uint64_t n) { return ((Next() >> 32) * n) >> 32; }

 private:
  uint64_t s_;
};

// ---------------------------------------------------------------------------
// Shared memory for workers (processes or threads) and the parent.

// T[n] in an anonymous MAP_SHARED mapping, zero-filled.
template <class T>
class SharedArray {
 public:
  explicit SharedArray(size_t n) : n_(n) {
    void* p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    data_ = static_cast<T*>(p);
  }
  ~SharedArray() { munmap(data_, sizeof(T) * n_); }
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  T& operator[](size_t i) const { return data_[i]; }

 private:
  T* data_;
  size_t n_;
};

// A reusable barrier for `n` workers in shared memory (sense reversal: the
// last arrival resets the count and bumps the generation).
class Barrier {
 public:
  explicit Barrier(int n) : n_(n), words_(2) {}
  void Wait() const {
    std::atomic<uint32_t>& count = words_[0];
    std::atomic<uint32_t>& generation = words_[1];
    // Acquire: read the generation before arriving, so the bump below cannot
    // be missed.
    const uint32_t g = generation.load(std::memory_order_acquire);
    // acq_rel: everything a worker wrote before the barrier is visible to
    // every worker after it.
    if (count.fetch_add(1, std::memory_order_acq_rel) + 1 ==
        static_cast<uint32_t>(n_)) {
      count.store(0, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    // More workers than cores is normal here (8 workers on 2 cores): yield
    // rather than spin, so the workers still to arrive get the CPU.
    while (generation.load(std::memory_order_acquire) == g) {
      std::this_thread::yield();
    }
  }

 private:
  int n_;
  SharedArray<std::atomic<uint32_t>> words_;
};

// CPU time of the calling thread (user and system), in ns: what a worker
// spent running, however often other work on the machine preempted it.
inline int64_t ThreadCpuNs() {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline constexpr int kMaxRounds = 256;
inline constexpr int kMaxWorkers = 16;

struct RunResult {
  double seconds = 0;  // sum over rounds of (last stop - first start)
  // CPU time of every worker over every round's timed part, summed.
  double cpu_seconds = 0;
  uint64_t failures = 0;
  std::string error;  // a worker that crashed or exited non-zero
};

// Runs `workers` workers for `rounds` rounds:
//   prepare(w)                      untimed
//   for each round r:
//     barrier; work(w, r) timed; barrier;
//     worker 0: between(r) untimed; barrier
//   finish(w)                       untimed
// prepare, work and between return how many results were wrong.
struct WorkerHooks {
  std::function<uint64_t(int)> prepare;
  std::function<uint64_t(int, int)> work;
  std::function<uint64_t(int)> between;
  std::function<void(int)> finish;
};

inline RunResult RunWorkers(Mode mode, int workers, int rounds,
                            const WorkerHooks& hooks) {
  if (workers > kMaxWorkers || rounds > kMaxRounds) std::abort();
  Barrier barrier(workers);
  SharedArray<int64_t> start(size_t(kMaxWorkers) * kMaxRounds);
  SharedArray<int64_t> stop(size_t(kMaxWorkers) * kMaxRounds);
  SharedArray<int64_t> cpu(size_t(kMaxWorkers) * kMaxRounds);
  SharedArray<std::atomic<uint64_t>> failures(kMaxWorkers);
  auto body = [&](int w) {
    // Relaxed: read by the parent after the worker has exited or joined.
    if (hooks.prepare) {
      failures[w].fetch_add(hooks.prepare(w), std::memory_order_relaxed);
    }
    for (int r = 0; r < rounds; ++r) {
      barrier.Wait();
      start[w * kMaxRounds + r] = NowNs();
      const int64_t cpu_start = ThreadCpuNs();
      const uint64_t bad = hooks.work(w, r);
      cpu[w * kMaxRounds + r] = ThreadCpuNs() - cpu_start;
      stop[w * kMaxRounds + r] = NowNs();
      // Relaxed: read by the parent after the worker has exited or joined.
      failures[w].fetch_add(bad, std::memory_order_relaxed);
      barrier.Wait();
      if (w == 0 && hooks.between) {
        failures[w].fetch_add(hooks.between(r), std::memory_order_relaxed);
      }
      barrier.Wait();
    }
    if (hooks.finish) hooks.finish(w);
  };
  RunResult result;
  if (mode == Mode::kThreads) {
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) threads.emplace_back(body, w);
    for (std::thread& t : threads) t.join();
  } else {
    std::fflush(nullptr);  // so children do not flush the parent's buffers
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; ++w) {
      const pid_t pid = fork();
      if (pid < 0) std::abort();
      if (pid == 0) {
        body(w);
        // _exit: no atexit handlers, no destructors of the parent's objects
        // (the benchmark library's, the stores').
        _exit(0);
      }
      pids.push_back(pid);
    }
    // A worker that dies would leave the others waiting at a barrier
    // forever: kill them all.
    int alive = workers;
    while (alive > 0) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, 0);
      if (pid < 0) break;
      if (std::find(pids.begin(), pids.end(), pid) == pids.end()) continue;
      --alive;
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!clean && result.error.empty()) {
        result.error =
            WIFSIGNALED(status)
                ? "a worker died of signal " + std::to_string(WTERMSIG(status))
                : "a worker exited with status " +
                      std::to_string(WEXITSTATUS(status));
        for (pid_t p : pids) kill(p, SIGKILL);
      }
    }
  }
  for (int w = 0; w < workers; ++w) {
    result.failures += failures[w].load(std::memory_order_relaxed);
  }
  for (int r = 0; r < rounds; ++r) {
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (int w = 0; w < workers; ++w) {
      first = std::min(first, start[w * kMaxRounds + r]);
      last = std::max(last, stop[w * kMaxRounds + r]);
      result.cpu_seconds += double(cpu[w * kMaxRounds + r]) * 1e-9;
    }
    result.seconds += double(last - first) * 1e-9;
  }
  return result;
}

// ---------------------------------------------------------------------------
// The workloads, written once for every system.

// How many operations one measurement performs (all workers together), per
// system: enough for tens of milliseconds each.
struct OpCounts {
  uint64_t gets;   // get_hit and get_miss
  uint64_t mix;    // rounded to whole rounds of 10 * kMixAddsPerRound
  int add_rounds;  // single-worker add: repeat (store cleared between)
};

// Worker w's share [begin, end) of n items.
inline std::pair<uint64_t, uint64_t> Share(uint64_t n, int w, int workers) {
  return {n * w / workers, n * (w + 1) / workers};
}

// Reads every present key (or every absent one) once: the page faults and
// cache misses of a freshly forked worker happen here, untimed.
template <class S>
uint64_t WarmUp(S& s, uint64_t first, uint64_t last, bool expect_found) {
  uint64_t bad = 0;
  float first_value = 0;
  [[maybe_unused]] auto scope = s.Scope();
  for (uint64_t id = first; id < last; ++id) {
    if ((id - first) % kBatch == 0) scope = s.Scope();
    if (s.Get(id, &first_value) != expect_found) ++bad;
  }
  return bad;
}

template <class S>
uint64_t RunGets(S& s, const Spec& spec, int w, uint64_t ops, bool hit) {
  Rng rng(uint64_t(w) * 7919 + spec.load_percent * 31 + spec.floats);
  const uint64_t present = spec.present();
  uint64_t bad = 0;
  float first = 0;
  for (uint64_t done = 0; done < ops;) {
    [[maybe_unused]] auto scope = s.Scope();
    const uint64_t batch_end = std::min<uint64_t>(ops, done + kBatch);
    for (; done < batch_end; ++done) {
      if (hit) {
        const uint64_t id = rng.Below(present);
        if (!s.Get(id, &first) || first != Marker(id)) ++bad;
      } else {
        const uint64_t id = kFirstAbsent + rng.Below(kAbsent);
        if (s.Get(id, &first)) ++bad;
      }
    }
  }
  return bad;
}

// Adds [first_id, last_id), kBatch keys per scope. A system with
//   uint64_t AddBatch(uint64_t first, uint64_t last, BatchValues& values);
// (returning how many of the keys it failed to publish) adds each batch in
// one call instead of one Add per key.
template <class S>
uint64_t RunAdds(S& s, const Spec& spec, int w, uint64_t first_id,
                 uint64_t last_id) {
  if constexpr (requires(BatchValues & v) { s.AddBatch(0, 0, v); }) {
    BatchValues values(spec.floats);
    uint64_t bad = 0;
    for (uint64_t id = first_id; id < last_id;) {
      [[maybe_unused]] auto scope = s.Scope();
      const uint64_t batch_end = std::min<uint64_t>(last_id, id + kBatch);
      bad += s.AddBatch(id, batch_end, values);
      id = batch_end;
    }
    return bad;
  }
  ValueBuffer value(spec.floats);
  uint64_t bad = 0;
  for (uint64_t id = first_id; id < last_id;) {
    [[maybe_unused]] auto scope = s.Scope();
    const uint64_t batch_end = std::min<uint64_t>(last_id, id + kBatch);
    for (; id < batch_end; ++id) {
      if (!s.Add(id, value.For(id))) ++bad;
    }
  }
  return bad;
}

// One round of the mix for worker w: 9 gets of present keys, then 1 add of
// one of this worker's fresh keys, repeated.
template <class S>
uint64_t RunMixRound(S& s, const Spec& spec, int w, int round) {
  const auto [fresh_begin, fresh_end] =
      Share(kMixAddsPerRound, w, spec.workers);
  Rng rng(uint64_t(w) * 104729 + uint64_t(round) * 13 + spec.floats);
  ValueBuffer value(spec.floats);
  const uint64_t present = spec.present();
  uint64_t bad = 0;
  float first = 0;
  uint64_t next_fresh = kFirstFresh + fresh_begin;
  const uint64_t fresh_last = kFirstFresh + fresh_end;
  const uint64_t ops = 10 * (fresh_end - fresh_begin);
  for (uint64_t done = 0; done < ops;) {
    [[maybe_unused]] auto scope = s.Scope();
    const uint64_t batch_end = std::min<uint64_t>(ops, done + kBatch);
    for (; done < batch_end; ++done) {
      if (done % 10 == 9 && next_fresh < fresh_last) {
        const uint64_t id = next_fresh++;
        if (!s.Add(id, value.For(id))) ++bad;
      } else {
        const uint64_t id = rng.Below(present);
        if (!s.Get(id, &first) || first != Marker(id)) ++bad;
      }
    }
  }
  return bad;
}

// Fills a store with the present keys of `spec`, in the process that built
// it (untimed; no Attach: that is for workers).
template <class S>
bool Fill(S& s, const Spec& spec) {
  return RunAdds(s, spec, 0, 0, spec.present()) == 0;
}

// The store shared by the get and mix benchmarks of one floats/load pair,
// built on first use and dropped when another pair is asked for.
template <class S>
S* SharedStore(const Spec& spec, std::string* error) {
  static std::unique_ptr<S> store;
  static int floats = -1, load = -1;
  if (store == nullptr || floats != spec.floats || load != spec.load_percent) {
    store.reset();
    Spec fill = spec;
    fill.workers = 1;
    store = std::make_unique<S>(fill);
    floats = spec.floats;
    load = spec.load_percent;
    if (!Fill(*store, fill)) {
      store.reset();
      *error = "filling the store failed";
      return nullptr;
    }
  }
  return store.get();
}

template <class S>
void RunTableBenchmark(benchmark::State& state, const Spec& spec,
                       const OpCounts& counts) {
  // Build the key table now, in the parent, untimed: otherwise a workload
  // that fills no store first (add) builds it (76,000 snprintf calls) in
  // each forked worker inside the timed part, which charged process-mode
  // systems several milliseconds per measurement that thread-mode ones
  // paid once.
  Keys::Get();
  for (auto _ : state) {
    std::unique_ptr<S> own;
    S* s = nullptr;
    std::string error;
    if (spec.op == Op::kAdd) {
      own = std::make_unique<S>(spec);
      s = own.get();
    } else {
      s = SharedStore<S>(spec, &error);
    }
    if (s == nullptr) {
      state.SkipWithError(error.c_str());
      return;
    }
    WorkerHooks hooks;
    int rounds = 1;
    uint64_t ops = 0;
    const int workers = spec.workers;
    hooks.prepare = [&](int w) -> uint64_t {
      s->Attach(w);
      if (spec.op == Op::kGetHit || spec.op == Op::kMix) {
        return WarmUp(*s, 0, spec.present(), true);
      }
      if (spec.op == Op::kGetMiss) {
        return WarmUp(*s, kFirstAbsent, kFirstAbsent + kAbsent, false);
      }
      return 0;
    };
    hooks.finish = [&](int) { s->Detach(); };
    switch (spec.op) {
      case Op::kAdd:
        rounds = workers == 1 ? counts.add_rounds : 1;
        ops = spec.present() * rounds;
        hooks.work = [&](int w, int) {
          const auto [b, e] = Share(spec.present(), w, workers);
          return RunAdds(*s, spec, w, b, e);
        };
        if (rounds > 1) {
          // Only with one worker: start the next round from an empty store.
          if constexpr (requires { s->Clear(); }) {
            hooks.between = [&](int) {
              s->Clear();
              return uint64_t{0};
            };
          } else {
            rounds = 1;
            ops = spec.present();
          }
        }
        break;
      case Op::kGetHit:
      case Op::kGetMiss:
        ops = counts.gets;
        hooks.work = [&](int w, int) {
          const auto [b, e] = Share(ops, w, workers);
          return RunGets(*s, spec, w, e - b, spec.op == Op::kGetHit);
        };
        break;
      case Op::kMix:
        rounds = static_cast<int>(std::clamp<uint64_t>(
            counts.mix / (10 * kMixAddsPerRound), 1, kMaxRounds));
        ops = uint64_t(rounds) * 10 * kMixAddsPerRound;
        hooks.work = [&](int w, int r) { return RunMixRound(*s, spec, w, r); };
        hooks.between = [&](int) {
          uint64_t bad = 0;
          for (uint64_t i = 0; i < kMixAddsPerRound; ++i) {
            if (!s->Remove(kFirstFresh + i)) ++bad;
          }
          return bad;
        };
        break;
    }
    const RunResult r = RunWorkers(S::kMode, workers, rounds, hooks);
    s->AfterMeasurement(spec);
    if (!r.error.empty() || r.failures != 0) {
      const std::string why =
          r.error.empty() ? std::to_string(r.failures) + " wrong results"
                          : r.error;
      state.SkipWithError(why.c_str());
      return;
    }
    state.SetIterationTime(r.seconds);
    state.counters["ops_per_s"] = double(ops) / r.seconds;
    // Operations per CPU-second of the workers: for one worker, its rate
    // when running, which preemption by other work on a shared machine
    // does not dilute (blind to scaling across workers).
    if (r.cpu_seconds > 0) {
      state.counters["cpu_ops_per_s"] = double(ops) / r.cpu_seconds;
    }
    state.counters["workers"] = workers;
    state.counters["load"] = spec.load_percent / 100.0;
    state.counters["floats"] = spec.floats;
  }
}

// Registers every benchmark of the matrix that `accept` admits, named
// "<system>/<op>/floats:<n>/load:<percent>/workers:<n>". Benchmarks that
// share a store (every op but add, for one floats/load pair) are registered
// next to each other, and the store is built once for them.
template <class S>
void RegisterTable(const std::string& system, const OpCounts& counts,
                   const std::function<bool(const Spec&)>& accept) {
  for (int floats : kValueFloats) {
    for (int load : kLoadPercents) {
      for (Op op : kOps) {
        for (int workers : kWorkerCounts) {
          const Spec spec{op, floats, load, workers};
          if (!accept(spec)) continue;
          const std::string name = system + "/" + OpName(op) +
                                   "/floats:" + std::to_string(floats) +
                                   "/load:" + std::to_string(load) +
                                   "/workers:" + std::to_string(workers);
          benchmark::RegisterBenchmark(name.c_str(),
                                       [spec, counts](benchmark::State& state) {
                                         RunTableBenchmark<S>(state, spec,
                                                              counts);
                                       })
              ->UseManualTime()
              ->Iterations(1)
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
}

// The main() of a benchmark binary: registers, then runs what the command
// line selects.
inline int BenchmarkMain(int argc, char** argv,
                         const std::function<void()>& register_all) {
  // compare.py refuses figures from unoptimized code.
#ifdef __OPTIMIZE__
  benchmark::AddCustomContext("compiled", "optimized");
#else
  benchmark::AddCustomContext("compiled", "not optimized");
#endif
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace shmheap::bench

#endif  // SHMHEAP_BENCH_HARNESS_H_
