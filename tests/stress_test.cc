// Many-process stress: 64 forked processes hammer one heap with every
// operation while the master collects; every read is checked element by
// element, and the end state is exactly what the processes' logs say.
//
// What this proves. For --duration seconds (default 20), each of
// --processes workers (default 64) runs a random mix of operations:
//   get 40%, contains 10%, add of a shared key 10%, replace 15%,
//   remove 10%, add of an owned key 8%, move 7%;
// a quarter of the time inside one explicit Pin held across a batch of 32
// operations (the fast path where views pile up). Keys are of two sorts:
//   - shared keys "a<i>": every process races to Add them, always with the
//     same contents (write-once; whoever wins, the value is the same);
//   - owned keys "m<p>_<i>": any process reads them, only process p
//     replaces, removes, adds and moves them (moves go between p's own
//     keys), so p's private model of its keys is exact at every moment.
// A value is int64 [origin, version, f(origin, version, j)...]: the key it
// was first written under, and a version unique to its writer. A reader
// checks every element of every value it gets: for its own keys against its
// model exactly; for other processes' keys that origin and version belong
// to that owner and that the elements match them; for shared keys that the
// value is version 0 of that key. Meanwhile the master runs Collect every
// 2 seconds and each must succeed (no one blocks it for its deadline).
// At the end, with all workers exited:
//   - every worker exited 0 (no mismatch, no unexpected error);
//   - Verify passes, with the counters checked exactly;
//   - each owned key holds exactly what its owner's final log says (or is
//     absent), each shared key is present iff some process added it, and
//     live blobs == the number of keys the logs say are present;
//   - after a final Collect, top == live bytes and Verify passes again.
// The figures (operations, reads checked, collections) are printed.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::SharedArray;
using testing::SharedBarrier;

int g_duration_s = 20;
int g_processes = 64;

constexpr int kOwned = 48;         // mutable keys per process
constexpr int kSharedKeys = 4096;  // write-once keys every process races on
constexpr uint64_t kSharedOrigin = uint64_t{1} << 62;

enum Op {
  kGet,
  kContains,
  kAddShared,
  kReplace,
  kRemove,
  kAddOwned,
  kMove,
  kScopedRead,
  kNumOps
};
constexpr const char* kOpNames[kNumOps] = {
    "get",    "contains",  "add-shared", "replace",
    "remove", "add-owned", "move",       "scoped-read"};

std::string SharedKey(uint64_t i) { return "a" + std::to_string(i); }
std::string OwnedKey(uint64_t p, uint64_t i) {
  return "m" + std::to_string(p) + "_" + std::to_string(i);
}
// Origins name keys: owned key (p, i) is p * kOwned + i; shared key i is
// kSharedOrigin + i.
uint64_t OwnedOrigin(uint64_t p, uint64_t i) { return p * kOwned + i; }

// Versions are unique per writer: (process + 1) << 32 | sequence.
uint64_t WriterOf(uint64_t version) { return (version >> 32) - 1; }

int64_t Element(uint64_t origin, uint64_t version, uint64_t j) {
  uint64_t x = origin * 0x9e3779b97f4a7c15ULL ^
               version * 0xc2b2ae3d27d4eb4fULL ^
               (j + 1) * 0x165667b19e3779f9ULL;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<int64_t>(x);
}

std::vector<int64_t> Value(uint64_t origin, uint64_t version) {
  const uint64_t n = 2 + (origin + version) % 97;
  std::vector<int64_t> v(n);
  v[0] = static_cast<int64_t>(origin);
  v[1] = static_cast<int64_t>(version);
  for (uint64_t j = 2; j < n; ++j) v[j] = Element(origin, version, j);
  return v;
}

// Whether `view` holds exactly Value(origin, version) for some origin and
// version that `plausible` accepts; on success stores them.
// `View` is an ArrayView<int64_t> or a borrowed ArrayRef<int64_t>.
template <class View, class Plausible>
bool CheckValue(const View& view, Plausible plausible,
                uint64_t* origin_out = nullptr,
                uint64_t* version_out = nullptr) {
  if (view.ndims() != 1 || view.dim(0) < 2) return false;
  const uint64_t origin = static_cast<uint64_t>(view(0));
  const uint64_t version = static_cast<uint64_t>(view(1));
  if (!plausible(origin, version)) return false;
  const std::vector<int64_t> want = Value(origin, version);
  if (static_cast<uint64_t>(view.dim(0)) != want.size()) return false;
  for (int64_t j = 0; j < view.dim(0); ++j) {
    if (view(j) != want[j]) return false;
  }
  if (origin_out) *origin_out = origin;
  if (version_out) *version_out = version;
  return true;
}

// One owned key's state in its owner's model (and final log).
struct Entry {
  uint64_t present;
  uint64_t origin;
  uint64_t version;
};

struct WorkerStats {
  uint64_t ops[kNumOps];
  uint64_t checked_reads;
  uint64_t checked_elements;
  uint64_t failures;
  char first_failure[200];
};

class Worker {
 public:
  Worker(Heap& heap, int p, Entry* log, std::atomic<uint8_t>* shared_added,
         WorkerStats* stats)
      : heap_(heap),
        p_(p),
        model_(log),
        shared_added_(shared_added),
        stats_(stats),
        rng_(0x5eed0000 + p) {}

  void Run(std::chrono::steady_clock::time_point deadline) {
    while (std::chrono::steady_clock::now() < deadline) {
      std::optional<absl::StatusOr<Heap::Pin>> batch_pin;
      if (rng_() % 4 == 0) batch_pin.emplace(heap_.Enter());
      if (batch_pin && !batch_pin->ok()) Fail("Enter", batch_pin->status());
      for (int i = 0; i < 32; ++i) Step();
    }
  }

 private:
  void Fail(const std::string& what, const absl::Status& status) {
    Fail(what + ": " + status.ToString());
  }
  void Fail(const std::string& what) {
    if (stats_->failures++ == 0) {
      std::snprintf(stats_->first_failure, sizeof stats_->first_failure,
                    "process %d: %s", p_, what.c_str());
    }
  }

  void Step() {
    const uint64_t r = rng_() % 100;
    const Op op = r < 34   ? kGet
                  : r < 40 ? kScopedRead
                  : r < 50 ? kContains
                  : r < 60 ? kAddShared
                  : r < 75 ? kReplace
                  : r < 85 ? kRemove
                  : r < 93 ? kAddOwned
                           : kMove;
    ++stats_->ops[op];
    switch (op) {
      case kGet:
        return DoGet();
      case kContains:
        return DoContains();
      case kAddShared:
        return DoAddShared();
      case kReplace:
        return DoReplace(rng_() % kOwned);
      case kRemove:
        return DoRemove(rng_() % kOwned);
      case kAddOwned:
        return DoAddOwned(rng_() % kOwned);
      case kMove:
        return DoMove(rng_() % kOwned, rng_() % kOwned);
      case kScopedRead:
        return DoScopedRead();
      case kNumOps:
        break;
    }
  }

  void CountRead(const ArrayView<int64_t>& v) {
    ++stats_->checked_reads;
    stats_->checked_elements += static_cast<uint64_t>(v.dim(0));
  }

  void DoGet() {
    const uint64_t which = rng_() % 3;
    if (which == 0) {  // a shared key: version 0 of itself, if present
      const uint64_t i = rng_() % kSharedKeys;
      // Read the flag first: an add that returned before this load must be
      // visible to the get that follows it (acquire pairs with the adder's
      // release store, made after its Add returned).
      const bool added_before =
          shared_added_[i].load(std::memory_order_acquire) != 0;
      absl::StatusOr<ArrayView<int64_t>> v = heap_.Get<int64_t>(SharedKey(i));
      if (!v.ok()) {
        if (v.status().code() != absl::StatusCode::kNotFound) {
          Fail("get " + SharedKey(i), v.status());
        } else if (added_before) {
          Fail("get " + SharedKey(i) + ": absent after an add returned");
        }
        return;
      }
      if (!CheckValue(*v, [&](uint64_t o, uint64_t ver) {
            return o == kSharedOrigin + i && ver == 0;
          })) {
        Fail("get " + SharedKey(i) + ": wrong contents");
      }
      CountRead(*v);
      return;
    }
    const uint64_t q = which == 1 ? static_cast<uint64_t>(p_)
                                  : rng_() % static_cast<uint64_t>(g_processes);
    const uint64_t i = rng_() % kOwned;
    const std::string key = OwnedKey(q, i);
    absl::StatusOr<ArrayView<int64_t>> v = heap_.Get<int64_t>(key);
    if (q == static_cast<uint64_t>(p_)) {
      // Our own key: the model is exact.
      const Entry& e = model_[i];
      if (!v.ok()) {
        if (v.status().code() != absl::StatusCode::kNotFound || e.present) {
          Fail("get own " + key, v.status());
        }
        return;
      }
      if (!e.present || !CheckValue(*v, [&](uint64_t o, uint64_t ver) {
            return o == e.origin && ver == e.version;
          })) {
        Fail("get own " + key + ": not what this process wrote last");
      }
      CountRead(*v);
      return;
    }
    if (!v.ok()) {
      if (v.status().code() != absl::StatusCode::kNotFound) {
        Fail("get " + key, v.status());
      }
      return;
    }
    // Another process's key: its owner wrote it, from one of its own keys.
    if (!CheckValue(*v, [&](uint64_t o, uint64_t ver) {
          return o / kOwned == q && WriterOf(ver) == q;
        })) {
      Fail("get " + key + ": contents not written by its owner");
    }
    CountRead(*v);
  }

  // A read scope (Heap::Read) over 16 of this process's keys and 16 of
  // other processes', looked up with GetMany, Find and Contains. Only this
  // process writes its own keys, so inside the scope the model is exact for
  // them; others' keys must hold contents their owner wrote.
  void DoScopedRead() {
    absl::StatusOr<ReadScope> scope = heap_.Read();
    if (!scope.ok()) return Fail("read scope", scope.status());
    std::vector<std::string> names;
    std::vector<uint64_t> owner, index;
    for (int j = 0; j < 32; ++j) {
      const uint64_t q = j < 16 ? static_cast<uint64_t>(p_)
                                : rng_() % static_cast<uint64_t>(g_processes);
      const uint64_t i = rng_() % kOwned;
      names.push_back(OwnedKey(q, i));
      owner.push_back(q);
      index.push_back(i);
    }
    const std::vector<Key> keys(names.begin(), names.end());
    std::vector<std::optional<RawRef>> refs(keys.size());
    scope->GetMany(keys, refs);
    for (size_t j = 0; j < keys.size(); ++j) {
      const bool own = owner[j] == static_cast<uint64_t>(p_);
      const std::optional<ArrayRef<int64_t>> one =
          scope->Find<int64_t>(names[j]);
      const bool contains = scope->Contains(names[j]);
      const Entry& e = model_[index[j]];
      auto plausible = [&](uint64_t o, uint64_t ver) {
        return own ? o == e.origin && ver == e.version
                   : o / kOwned == owner[j] && WriterOf(ver) == owner[j];
      };
      // Every value found, either way, is one its writer wrote.
      auto check = [&](const ArrayRef<int64_t>& a) {
        if (!CheckValue(a, plausible)) {
          Fail("scoped read " + names[j] + ": wrong contents");
        }
        ++stats_->checked_reads;
        stats_->checked_elements += static_cast<uint64_t>(a.dim(0));
      };
      if (one) check(*one);
      if (refs[j]) {
        absl::StatusOr<ArrayRef<int64_t>> a = refs[j]->As<int64_t>();
        if (a.ok()) {
          check(*a);
        } else {
          Fail("scoped read " + names[j] + ": GetMany found another kind");
        }
      }
      // Others keep writing their keys during our scope; ours stand still,
      // so for them the three lookups and the model agree exactly.
      if (!own) continue;
      if (refs[j].has_value() != one.has_value() ||
          contains != one.has_value() || one.has_value() != (e.present != 0)) {
        Fail("scoped read own " + names[j] +
             ": GetMany, Find, Contains and the model differ");
      } else if (one && refs[j]->data() !=
                            reinterpret_cast<const std::byte*>(one->data())) {
        Fail("scoped read own " + names[j] + ": GetMany found another blob");
      }
    }
  }

  void DoContains() {
    const uint64_t i = rng_() % kOwned;
    const bool has = heap_.Contains(OwnedKey(p_, i));
    if (has != (model_[i].present != 0)) {
      Fail("contains own " + OwnedKey(p_, i) + " disagrees with the model");
    }
  }

  void DoAddShared() {
    const uint64_t i = rng_() % kSharedKeys;
    const std::vector<int64_t> v = Value(kSharedOrigin + i, 0);
    const int64_t dims[] = {static_cast<int64_t>(v.size())};
    absl::StatusOr<bool> added = heap_.Add<int64_t>(SharedKey(i), v, dims);
    if (!added.ok()) return Fail("add " + SharedKey(i), added.status());
    // Release: a reader that sees the flag must find the key.
    shared_added_[i].store(1, std::memory_order_release);
    if (!heap_.Contains(SharedKey(i))) {
      Fail("add " + SharedKey(i) + ": absent right after");
    }
  }

  Entry NewValue(uint64_t i) {
    return Entry{1, OwnedOrigin(p_, i), (uint64_t(p_ + 1) << 32) | ++sequence_};
  }

  void DoReplace(uint64_t i) {
    const Entry e = NewValue(i);
    const std::vector<int64_t> v = Value(e.origin, e.version);
    const int64_t dims[] = {static_cast<int64_t>(v.size())};
    absl::StatusOr<bool> replaced =
        heap_.Replace<int64_t>(OwnedKey(p_, i), v, dims);
    if (!replaced.ok()) return Fail("replace", replaced.status());
    if (*replaced != (model_[i].present != 0)) {
      Fail("replace " + OwnedKey(p_, i) + ": wrong 'replaced' result");
    }
    model_[i] = e;
  }

  void DoRemove(uint64_t i) {
    const absl::Status s = heap_.Remove(OwnedKey(p_, i));
    if (model_[i].present ? !s.ok() : s.code() != absl::StatusCode::kNotFound) {
      Fail("remove " + OwnedKey(p_, i), s);
    }
    model_[i].present = 0;
  }

  void DoAddOwned(uint64_t i) {
    const Entry e = NewValue(i);
    const std::vector<int64_t> v = Value(e.origin, e.version);
    const int64_t dims[] = {static_cast<int64_t>(v.size())};
    absl::StatusOr<bool> added = heap_.Add<int64_t>(OwnedKey(p_, i), v, dims);
    if (!added.ok()) return Fail("add own", added.status());
    if (*added == (model_[i].present != 0)) {
      Fail("add own " + OwnedKey(p_, i) + ": write-once result wrong");
    }
    if (*added) model_[i] = e;
  }

  void DoMove(uint64_t from, uint64_t to) {
    if (from == to) return;
    const absl::Status s = heap_.Move(OwnedKey(p_, from), OwnedKey(p_, to));
    const bool ok = model_[from].present && !model_[to].present;
    if (ok) {
      if (!s.ok()) return Fail("move", s);
      model_[to] = model_[from];
      model_[from].present = 0;
      return;
    }
    const absl::StatusCode want = !model_[from].present
                                      ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kAlreadyExists;
    if (s.code() != want)
      Fail("move: expected " + std::to_string(int(want)), s);
  }

  Heap& heap_;
  const int p_;
  Entry* model_;  // this process's slice of the shared log
  std::atomic<uint8_t>* shared_added_;
  WorkerStats* stats_;
  std::mt19937_64 rng_;
  uint64_t sequence_ = 0;
};

TEST(StressTest, ManyProcessesEveryOperationWhileCollecting) {
  Options options;
  options.heap_bytes = uint64_t{1} << 30;
  options.table_slots_log2 = 16;  // 4096 shared + 64 * 48 owned keys
  options.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(options);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int n = g_processes;

  SharedArray<Entry> log(static_cast<size_t>(n) * kOwned);
  SharedArray<std::atomic<uint8_t>> shared_added(kSharedKeys);
  SharedArray<WorkerStats> stats(static_cast<size_t>(n));
  SharedBarrier start(n + 1);
  SharedArray<std::atomic<int64_t>> deadline_ns(1);

  std::vector<pid_t> pids;
  for (int p = 0; p < n; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      start.Wait();
      const auto deadline = std::chrono::steady_clock::time_point(
          std::chrono::nanoseconds(deadline_ns[0].load()));
      Worker(*heap, p, &log[static_cast<size_t>(p) * kOwned], &shared_added[0],
             &stats[p])
          .Run(deadline);
      _exit(stats[p].failures == 0 ? 0 : 1);
    }
    pids.push_back(pid);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(g_duration_s);
  deadline_ns[0].store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           deadline.time_since_epoch())
                           .count());
  start.Wait();

  int collections = 0;
  uint64_t collected_bytes = 0;
  for (auto next = t0 + std::chrono::seconds(2); next < deadline;
       next += std::chrono::seconds(2)) {
    std::this_thread::sleep_until(next);
    absl::StatusOr<GcReport> gc = heap->Collect();
    ASSERT_TRUE(gc.ok()) << gc.status();
    if (gc->ran) {
      ++collections;
      collected_bytes += gc->bytes_before - gc->bytes_after;
    }
  }
  for (int p = 0; p < n; ++p) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[p], &status, 0), pids[p]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "process " << p << ": " << stats[p].failures
        << " failures, first: " << stats[p].first_failure;
  }
  EXPECT_GE(collections, g_duration_s / 2 - 1);

  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  uint64_t present = 0;
  uint64_t checked = 0;
  for (int p = 0; p < n; ++p) {
    for (int i = 0; i < kOwned; ++i) {
      const Entry& e = log[static_cast<size_t>(p) * kOwned + i];
      absl::StatusOr<ArrayView<int64_t>> v = heap->Get<int64_t>(OwnedKey(p, i));
      if (!e.present) {
        EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound)
            << OwnedKey(p, i);
        continue;
      }
      ++present;
      ASSERT_TRUE(v.ok()) << OwnedKey(p, i) << ": " << v.status();
      EXPECT_TRUE(CheckValue(*v, [&](uint64_t o, uint64_t ver) {
        return o == e.origin && ver == e.version;
      })) << OwnedKey(p, i);
      checked += static_cast<uint64_t>(v->dim(0));
    }
  }
  for (uint64_t i = 0; i < kSharedKeys; ++i) {
    absl::StatusOr<ArrayView<int64_t>> v = heap->Get<int64_t>(SharedKey(i));
    if (!shared_added[i].load()) {
      EXPECT_FALSE(v.ok()) << SharedKey(i);
      continue;
    }
    ++present;
    ASSERT_TRUE(v.ok()) << SharedKey(i) << ": " << v.status();
    EXPECT_TRUE(CheckValue(*v, [&](uint64_t o, uint64_t ver) {
      return o == kSharedOrigin + i && ver == 0;
    })) << SharedKey(i);
    checked += static_cast<uint64_t>(v->dim(0));
  }
  EXPECT_EQ(heap->stats().live_blobs, present);

  absl::StatusOr<GcReport> gc = heap->Collect();
  ASSERT_TRUE(gc.ok()) << gc.status();
  const Stats s = heap->stats();
  EXPECT_EQ(s.heap_top, s.live_bytes);
  EXPECT_EQ(s.live_blobs, present);
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();

  uint64_t ops[kNumOps] = {}, total = 0, reads = 0, elements = 0;
  for (int p = 0; p < n; ++p) {
    for (int o = 0; o < kNumOps; ++o) ops[o] += stats[p].ops[o];
    reads += stats[p].checked_reads;
    elements += stats[p].checked_elements;
  }
  std::printf("stress_test: %d processes for %d s: ", n, g_duration_s);
  for (int o = 0; o < kNumOps; ++o) {
    std::printf("%s %llu, ", kOpNames[o],
                static_cast<unsigned long long>(ops[o]));
    total += ops[o];
  }
  std::printf(
      "%llu operations in all; %llu reads checked (%llu elements); %d "
      "collections reclaimed %llu MB; final state: %llu keys, %llu elements "
      "checked\n",
      static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(reads),
      static_cast<unsigned long long>(elements), collections,
      static_cast<unsigned long long>(collected_bytes >> 20),
      static_cast<unsigned long long>(present),
      static_cast<unsigned long long>(checked));
  EXPECT_GT(reads, 0u);
}

}  // namespace
}  // namespace shmheap

// --duration=SECONDS (default 20) and --processes=N (default 64), besides
// the usual GoogleTest flags.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&](const std::string& flag) -> const char* {
      if (arg.rfind(flag + "=", 0) == 0) return argv[i] + flag.size() + 1;
      if (arg == flag && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (const char* v = value("--duration")) {
      shmheap::g_duration_s = std::atoi(v);
    } else if (const char* v = value("--processes")) {
      shmheap::g_processes = std::atoi(v);
    } else {
      std::fprintf(stderr, "stress_test: unknown flag %s\n", argv[i]);
      return 2;
    }
    if (shmheap::g_duration_s < 1 || shmheap::g_processes < 1) {
      std::fprintf(stderr,
                   "stress_test: --duration and --processes must be "
                   ">= 1\n");
      return 2;
    }
  }
  return RUN_ALL_TESTS();
}
