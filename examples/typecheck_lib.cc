// The typecheck demo's phases; the design is in typecheck_lib.h.

#include "examples/typecheck_lib.h"

#include <sched.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/typecheck_paths.h"
#include "heap/strings.h"

namespace typecheck {
namespace {

using shmheap::ArrayView;
using shmheap::Heap;
using shmheap::internal::Sv;

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Numbers the identifier hashes a worker meets densely (0, 1, 2, ...), so
// that the visible identifiers of a closure fit in a small bitset instead of
// a hash set the size of the closure's definitions. Open addressing; the
// keys are XXH3 hashes, whose low bits are already uniform.
class DenseIds {
 public:
  DenseIds() : slots_(1 << 16) {}

  uint32_t Id(uint64_t key) {
    if (2 * (size_ + 1) > slots_.size()) Grow();
    const size_t mask = slots_.size() - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id == kEmpty) {
        s = {key, static_cast<uint32_t>(size_)};
        return static_cast<uint32_t>(size_++);
      }
      if (s.key == key) return s.id;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Slot {
    uint64_t key = 0;
    uint32_t id = kEmpty;
  };
  void Grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id == kEmpty) continue;
      size_t i = s.key & mask;
      while (slots_[i].id != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

std::string NextKey(std::string_view phase) {
  return absl::StrCat("next:", Sv(phase));
}
std::string TallyKey(std::string_view phase, int worker) {
  return absl::StrCat("tally:", Sv(phase), ":", worker);
}
std::string UnreadableKey(std::string_view phase, int worker) {
  return absl::StrCat("unreadable:", Sv(phase), ":", worker);
}
std::string ErrorKey(std::string_view phase, int worker) {
  return absl::StrCat("error:", Sv(phase), ":", worker);
}

enum class Work { kParse, kResolve };

// Ctrl-C (HandleStopSignals): the handler requests a stop on the heap of
// the analysis in progress, or remembers the signal until there is one.
// Heap::RequestStop is one atomic store to the heap's header, so the
// handler is async-signal-safe; the pointer is a lock-free atomic for the
// same reason. A forked worker inherits both, pointing at its own copy of
// the master's Heap, so a Ctrl-C that reaches the whole process group
// stops the workers through the same flag.
std::atomic<Heap*> g_stop_heap{nullptr};
volatile std::sig_atomic_t g_stop_signal = 0;

// The heap a signal stops (null: none). If a signal came before it existed,
// the stop is requested now.
void StopTarget(Heap* heap) {
  // seq_cst: ordered with the handler's reads in this process (a signal
  // handler runs on this thread; the atomic only keeps the store whole).
  g_stop_heap.store(heap, std::memory_order_seq_cst);
  if (heap != nullptr && g_stop_signal != 0) heap->RequestStop();
}

extern "C" void OnStopSignal(int sig) {
  if (g_stop_signal != 0) {
    // The second one: stop at once, as if nothing were handled.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop_signal = sig;
  if (Heap* heap = g_stop_heap.load(std::memory_order_seq_cst)) {
    heap->RequestStop();
  }
}

// Points the handler at `heap` for the lifetime of this object.
class StopTargetScope {
 public:
  explicit StopTargetScope(Heap* heap) { StopTarget(heap); }
  ~StopTargetScope() { StopTarget(nullptr); }
  StopTargetScope(const StopTargetScope&) = delete;
  StopTargetScope& operator=(const StopTargetScope&) = delete;
};

class Analysis {
 public:
  Analysis(const Options& options, FileIndex index, Heap heap)
      : options_(options), index_(std::move(index)), heap_(std::move(heap)) {}

  Heap& heap() { return *heap_; }
  std::optional<Heap> TakeHeap() { return std::move(heap_); }
  void DropHeap() { heap_.reset(); }
  const FileIndex& index() const { return index_; }

  // Runs one phase over `items` (file indexes) and adds its tallies to
  // `tallies`.
  absl::Status RunPhase(std::string_view name, Work work,
                        const std::vector<int32_t>& items,
                        std::vector<int64_t>* tallies, PhaseReport* report) {
    const auto start = Clock::now();
    *report = PhaseReport{};
    report->name = std::string(name);
    const int workers = options_.serial ? 1 : options_.workers;
    const int64_t n = static_cast<int64_t>(items.size());
    // Small batches balance the load; 64 files per batch keeps the counter
    // traffic negligible on big trees.
    const int64_t batch = std::clamp<int64_t>(n / (workers * 64), 1, 64);
    const int64_t batches = (n + batch - 1) / batch;
    std::vector<int64_t> sum(kNumTallies, 0);
    if (n > 0) {
      if (options_.serial) {
        if (absl::Status s = Worker(name, work, items, batch, 0, true);
            !s.ok()) {
          return s;
        }
      } else if (absl::Status s = ForkWorkers(name, work, items, batch);
                 !s.ok()) {
        return s;
      }
      if (absl::Status s = Gather(name, workers, batches, &sum, report);
          !s.ok()) {
        return s;
      }
    }
    // A stop (Heap::RequestStop) lets every worker end after its current
    // file, so the phase may have done fewer; otherwise it did them all.
    report->stopped = heap_->StopRequested();
    if (sum[kFiles] != n && !(report->stopped && sum[kFiles] < n)) {
      return absl::InternalError(absl::StrCat(Sv(name), ": workers processed ",
                                              sum[kFiles], " files of ", n));
    }
    for (int t = 0; t < kNumTallies; ++t) (*tallies)[t] += sum[t];
    report->files = n;
    report->done = sum[kFiles];
    report->tallies = sum;
    report->seconds = SecondsSince(start);
    return absl::OkStatus();
  }

 private:
  absl::Status ForkWorkers(std::string_view name, Work work,
                           const std::vector<int32_t>& items, int64_t batch) {
    // Buffered output would be written once by each child as well.
    std::fflush(nullptr);
    std::vector<pid_t> pids;
    absl::Status fork_error;
    for (int w = 0; w < options_.workers; ++w) {
      const pid_t pid = fork();
      if (pid < 0) {
        fork_error = absl::ResourceExhaustedError(
            absl::StrCat("fork: ", std::strerror(errno)));
        break;
      }
      if (pid == 0) {
        absl::Status s = Worker(name, work, items, batch, w, false);
        if (!s.ok()) {
          const std::string message(s.message());
          const int64_t dims[] = {static_cast<int64_t>(message.size())};
          (void)heap_->Add<char>(ErrorKey(name, w), message, dims);
        }
        // Leave the heap: closes this process's chunk and folds its
        // counters into the header, instead of leaving it to the next
        // joiner to notice a dead session. The signal handler must not
        // reach for it afterwards.
        StopTarget(nullptr);
        heap_.reset();
        _exit(s.ok() ? 0 : 1);
      }
      pids.push_back(pid);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    const int64_t batches = (n + batch - 1) / batch;
    std::vector<int> status(pids.size(), 0);
    std::vector<bool> done(pids.size(), false);
    std::string wait_error;
    size_t running = pids.size();
    while (running > 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (done[i]) continue;
        const pid_t r =
            waitpid(pids[i], &status[i], options_.progress ? WNOHANG : 0);
        if (r == pids[i] || (r < 0 && errno != EINTR)) {
          if (r < 0) {
            wait_error =
                absl::StrCat("waitpid(", pids[i], "): ", std::strerror(errno));
          }
          done[i] = true;
          --running;
        }
      }
      if (options_.progress && running > 0) {
        // The counter says how many batches were handed out (FetchAdd of 0
        // reads it; it creates the counter at 0 if no worker has yet).
        absl::StatusOr<int64_t> next = heap_->FetchAdd(NextKey(name), 0);
        if (next.ok()) {
          options_.progress(name, std::min(*next, batches) * batch, n);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    if (options_.progress && !heap_->StopRequested()) {
      options_.progress(name, n, n);
    }
    if (!fork_error.ok()) return fork_error;
    if (!wait_error.empty()) return absl::InternalError(wait_error);
    for (size_t w = 0; w < pids.size(); ++w) {
      const int st = status[w];
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
      std::string why;
      if (WIFSIGNALED(st)) {
        why = absl::StrCat("killed by signal ", WTERMSIG(st));
      } else if (absl::StatusOr<ArrayView<char>> e =
                     heap_->Get<char>(ErrorKey(name, static_cast<int>(w)));
                 e.ok()) {
        why = std::string(e->data(), static_cast<size_t>(e->size()));
      } else {
        why = absl::StrCat("exit status ", WEXITSTATUS(st));
      }
      return absl::InternalError(
          absl::StrCat(Sv(name), ": worker ", w, " failed: ", why));
    }
    return absl::OkStatus();
  }

  // Reads and removes the tallies, unreadable-file messages and the
  // counter of phase `name`.
  absl::Status Gather(std::string_view name, int workers, int64_t batches,
                      std::vector<int64_t>* sum, PhaseReport* report) {
    for (int w = 0; w < workers; ++w) {
      const std::string key = TallyKey(name, w);
      int64_t unreadable_files = 0;
      {
        absl::StatusOr<ArrayView<int64_t>> t = heap_->Get<int64_t>(key);
        if (!t.ok()) return t.status();
        if (t->size() != kNumTallies) {
          return absl::DataLossError(absl::StrCat(key, ": wrong size"));
        }
        for (int i = 0; i < kNumTallies; ++i) (*sum)[i] += t->flat()[i];
        report->files_per_worker.push_back(t->flat()[kFiles]);
        unreadable_files = t->flat()[kFilesUnreadable];
      }
      if (absl::Status s = heap_->Remove(key); !s.ok()) return s;
      if (unreadable_files == 0) continue;
      // The worker's first unreadable file; the smallest message is the
      // first by path, whichever workers met them.
      const std::string unreadable = UnreadableKey(name, w);
      {
        absl::StatusOr<ArrayView<char>> m = heap_->Get<char>(unreadable);
        if (!m.ok()) return m.status();
        std::string message(m->data(), static_cast<size_t>(m->size()));
        if (report->first_unreadable.empty() ||
            message < report->first_unreadable) {
          report->first_unreadable = std::move(message);
        }
      }
      if (absl::Status s = heap_->Remove(unreadable); !s.ok()) return s;
    }
    // Every worker takes batches until the counter passes the last one, so
    // it ends at batches + workers unless a stop ended the phase early.
    absl::StatusOr<int64_t> next = heap_->FetchAdd(NextKey(name), 0);
    if (!next.ok()) return next.status();
    if (*next < batches && !heap_->StopRequested()) {
      return absl::InternalError(absl::StrCat(Sv(name), ": only ", *next,
                                              " of ", batches,
                                              " batches were handed out"));
    }
    return heap_->Remove(NextKey(name));
  }

  // The body of one worker (a forked child, or the master with --serial).
  absl::Status Worker(std::string_view name, Work work,
                      const std::vector<int32_t>& items, int64_t batch,
                      int worker, bool report_progress) {
    if (options_.testing_worker_hook) {
      if (absl::Status s = options_.testing_worker_hook(name, worker);
          !s.ok()) {
        return s;
      }
    }
    std::vector<int64_t> tallies(kNumTallies, 0);
    WorkerState state(index_.paths.size());
    const int64_t n = static_cast<int64_t>(items.size());
    const int64_t batches = (n + batch - 1) / batch;
    // The shared counter hands out batch numbers: each FetchAdd returns a
    // number no other worker got. A stop ends the loop after the current
    // file (one load of a header word per file).
    bool stop = false;
    while (!stop) {
      absl::StatusOr<int64_t> b = heap_->FetchAdd(NextKey(name), 1);
      if (!b.ok()) return b.status();
      if (*b >= batches) break;
      const int64_t end = std::min(n, (*b + 1) * batch);
      for (int64_t k = *b * batch; k < end; ++k) {
        if (heap_->StopRequested()) {
          stop = true;
          break;
        }
        absl::Status s = work == Work::kParse
                             ? Parse(items[k], state, tallies)
                             : Resolve(items[k], state, tallies);
        if (!s.ok()) return s;
      }
      if (report_progress && options_.progress && !stop) {
        options_.progress(name, end, n);
      }
    }
    if (!state.first_unreadable.empty()) {
      const int64_t dims[] = {
          static_cast<int64_t>(state.first_unreadable.size())};
      absl::StatusOr<bool> added = heap_->Add<char>(
          UnreadableKey(name, worker), state.first_unreadable, dims);
      if (!added.ok()) return added.status();
    }
    const int64_t dims[] = {kNumTallies};
    absl::StatusOr<bool> added = heap_->Add<int64_t>(
        TallyKey(name, worker), std::span<const int64_t>(tallies), dims);
    if (!added.ok()) return added.status();
    if (!*added) {
      return absl::InternalError(
          absl::StrCat(Sv(name), ": two workers numbered ", worker));
    }
    return absl::OkStatus();
  }

  // Per-worker scratch space, reused across files.
  struct WorkerState {
    explicit WorkerState(size_t files)
        : stamp(files, 0), includes(files), defs(files), loaded(files, 0) {}
    std::string buffer;
    // This worker's first unreadable file's error, by path order.
    std::string first_unreadable;
    // stamp[i] == generation: file i was reached in the current search.
    std::vector<uint32_t> stamp;
    uint32_t generation = 0;
    // Each file's include and defs arrays, read in place from the heap the
    // first time this worker needs them and kept in worker-local form:
    // include targets as file indexes, identifiers as dense ids.
    std::vector<std::vector<int32_t>> includes;
    std::vector<std::vector<uint32_t>> defs;
    std::vector<char> loaded;
    DenseIds ids;
    std::vector<uint64_t> visible;  // bitset over ids
    std::vector<int32_t> queue;

    uint32_t NextGeneration() {
      if (++generation == 0) {  // wrapped: forget every old mark
        std::fill(stamp.begin(), stamp.end(), 0);
        generation = 1;
      }
      return generation;
    }
  };

  static absl::Status Published(absl::StatusOr<bool> added,
                                std::string_view key) {
    if (!added.ok()) return added.status();
    // The counter hands each file to exactly one worker, so a key that is
    // already there means the phases ran out of order.
    if (!*added) {
      return absl::InternalError(
          absl::StrCat(Sv(key), " was already published"));
    }
    return absl::OkStatus();
  }

  absl::Status Parse(int32_t file, WorkerState& state,
                     std::vector<int64_t>& tallies) {
    const std::string& path = index_.paths[file];
    if (absl::Status s = ReadFile(path, &state.buffer); !s.ok()) {
      // One unreadable file does not stop the run: it is analysed as an
      // empty file (its arrays are published, empty, so that every reader
      // finds them) and counted.
      ++tallies[kFilesUnreadable];
      std::string message(s.message());
      if (state.first_unreadable.empty() || message < state.first_unreadable) {
        state.first_unreadable = std::move(message);
      }
      state.buffer.clear();
    }
    const ScanResult scan = Scan(state.buffer);
    std::vector<int64_t> includes;
    const uint32_t gen = state.NextGeneration();
    for (const IncludeDirective& inc : scan.includes) {
      const int32_t target = ResolveInclude(index_, file, inc);
      if (target < 0) {
        ++tallies[kIncludesUnresolved];
        continue;
      }
      ++tallies[kIncludesResolved];
      if (state.stamp[target] == gen) continue;
      state.stamp[target] = gen;
      includes.push_back(index_.hashes[target]);
      // The reverse edge, "target is included by file", in the heap's
      // dependency table: what the recheck walks to find the files an
      // edit invalidates. Idempotent, so the reparse of an edited file
      // adds nothing twice.
      absl::StatusOr<bool> added = heap_->AddDep(static_cast<uint32_t>(target),
                                                 static_cast<uint32_t>(file));
      if (!added.ok()) return added.status();
      tallies[kDepsAdded] += *added ? 1 : 0;
    }
    const int64_t token_dims[] = {kNumTokenKinds};
    const int64_t def_dims[] = {static_cast<int64_t>(scan.defs.size())};
    const int64_t include_dims[] = {static_cast<int64_t>(includes.size())};
    std::string key = TokensKey(path);
    if (absl::Status s = Published(
            heap_->Add<int32_t>(key, std::span<const int32_t>(scan.histogram),
                                token_dims),
            key);
        !s.ok()) {
      return s;
    }
    key = DefsKey(path);
    if (absl::Status s =
            Published(heap_->Add<int64_t>(
                          key, std::span<const int64_t>(scan.defs), def_dims),
                      key);
        !s.ok()) {
      return s;
    }
    key = IncludesKey(path);
    if (absl::Status s = Published(
            heap_->Add<int64_t>(key, std::span<const int64_t>(includes),
                                include_dims),
            key);
        !s.ok()) {
      return s;
    }
    ++tallies[kFiles];
    tallies[kBytesRead] += static_cast<int64_t>(state.buffer.size());
    for (int32_t count : scan.histogram) tallies[kTokens] += count;
    tallies[kDefs] += static_cast<int64_t>(scan.defs.size());
    return absl::OkStatus();
  }

  // Reads `file`'s includes and defs arrays in place (once per worker) and
  // keeps them in worker-local form. Returns the bytes read.
  absl::StatusOr<int64_t> Load(int32_t file, WorkerState& state) {
    if (state.loaded[file]) return 0;
    const std::string& path = index_.paths[file];
    absl::StatusOr<ArrayView<int64_t>> inc =
        heap_->Get<int64_t>(IncludesKey(path));
    if (!inc.ok()) return inc.status();
    absl::StatusOr<ArrayView<int64_t>> defs =
        heap_->Get<int64_t>(DefsKey(path));
    if (!defs.ok()) return defs.status();
    std::vector<int32_t>& targets = state.includes[file];
    targets.reserve(static_cast<size_t>(inc->size()));
    for (const int64_t h : inc->flat()) {
      auto it = index_.by_hash.find(h);
      if (it == index_.by_hash.end()) {
        return absl::DataLossError(absl::StrCat(IncludesKey(path),
                                                " names hash ", h,
                                                ", which is no analysed file"));
      }
      targets.push_back(it->second);
    }
    std::vector<uint32_t>& ids = state.defs[file];
    ids.reserve(static_cast<size_t>(defs->size()));
    for (const int64_t h : defs->flat()) {
      ids.push_back(state.ids.Id(static_cast<uint64_t>(h)));
    }
    state.loaded[file] = 1;
    return static_cast<int64_t>(inc->size_bytes() + defs->size_bytes());
  }

  absl::Status Resolve(int32_t file, WorkerState& state,
                       std::vector<int64_t>& tallies) {
    // Breadth-first search over the include graph; the stamp makes every
    // file count once, which is all a cycle needs.
    const uint32_t gen = state.NextGeneration();
    state.queue.clear();
    state.queue.push_back(file);
    state.stamp[file] = gen;
    for (size_t q = 0; q < state.queue.size(); ++q) {
      const int32_t member = state.queue[q];
      absl::StatusOr<int64_t> read = Load(member, state);
      if (!read.ok()) return read.status();
      tallies[kBytesInPlace] += *read;
      for (const int32_t target : state.includes[member]) {
        if (state.stamp[target] == gen) continue;
        state.stamp[target] = gen;
        state.queue.push_back(target);
      }
    }
    // Distinct identifiers: set bits for every id, count the new ones, then
    // clear exactly the words that were set.
    const size_t words = (state.ids.size() + 63) / 64;
    if (state.visible.size() < words) state.visible.resize(words, 0);
    int64_t visible = 0;
    for (const int32_t member : state.queue) {
      for (const uint32_t id : state.defs[member]) {
        uint64_t& word = state.visible[id / 64];
        const uint64_t bit = uint64_t{1} << (id % 64);
        visible += (word & bit) == 0;
        word |= bit;
      }
    }
    for (const int32_t member : state.queue) {
      for (const uint32_t id : state.defs[member]) state.visible[id / 64] = 0;
    }
    // Built in place: the array is written straight into its blob.
    const std::string key = ClosureKey(index_.paths[file]);
    const int64_t dims[] = {static_cast<int64_t>(state.queue.size()) + 1};
    absl::StatusOr<shmheap::Builder<int64_t>> builder =
        heap_->Reserve<int64_t>(key, dims);
    if (!builder.ok()) return builder.status();
    const std::span<int64_t> out = builder->data();
    out[0] = visible;
    for (size_t i = 0; i < state.queue.size(); ++i) {
      out[i + 1] = index_.hashes[state.queue[i]];
    }
    std::sort(out.begin() + 1, out.end());
    if (absl::Status s = Published(builder->Publish(), key); !s.ok()) return s;
    ++tallies[kFiles];
    tallies[kClosureFiles] += static_cast<int64_t>(state.queue.size());
    tallies[kVisibleIdentifiers] += visible;
    return absl::OkStatus();
  }

  const Options& options_;
  FileIndex index_;
  std::optional<Heap> heap_;
};

absl::Status ValidateOptions(const Options& o) {
  if (o.roots.empty()) return absl::InvalidArgumentError("no roots to analyse");
  if (!o.serial && (o.workers < 1 || o.workers > 1024)) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers must be 1..1024, not ", o.workers));
  }
  if (!(o.change >= 0 && o.change <= 1)) {  // also rejects NaN
    return absl::InvalidArgumentError(
        absl::StrCat("change must be a fraction in [0, 1], not ", o.change));
  }
  return absl::OkStatus();
}

// Which files the recheck edits: Options::edited, or a seeded sample.
absl::StatusOr<std::vector<int32_t>> ChooseEdited(const Options& options,
                                                  const FileIndex& index) {
  std::vector<int32_t> edited;
  if (!options.edited.empty()) {
    for (const std::string& path : options.edited) {
      const int32_t i = index.Find(NormalizePath(path));
      if (i < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("edited file ", path, " is not analysed"));
      }
      edited.push_back(i);
    }
  } else {
    const size_t n = index.paths.size();
    const size_t k = static_cast<size_t>(
        std::llround(options.change * static_cast<double>(n)));
    std::vector<std::pair<uint64_t, int32_t>> order;
    order.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      order.emplace_back(static_cast<uint64_t>(StableHash(absl::StrCat(
                             options.change_seed, ":", index.paths[i]))),
                         static_cast<int32_t>(i));
    }
    std::sort(order.begin(), order.end());
    for (size_t i = 0; i < k; ++i) edited.push_back(order[i].second);
  }
  std::sort(edited.begin(), edited.end());
  edited.erase(std::unique(edited.begin(), edited.end()), edited.end());
  return edited;
}

// The files whose closure contains one of `edited` (file indexes below
// `files`): the reflexive-transitive closure of `edited` over the
// dependency table's reverse include edges, sorted.
absl::StatusOr<std::vector<int32_t>> Dependents(
    const Heap& heap, const std::vector<int32_t>& edited, size_t files) {
  std::vector<char> seen(files, 0);
  std::vector<int32_t> queue;
  for (int32_t e : edited) {
    if (!seen[e]) {
      seen[e] = 1;
      queue.push_back(e);
    }
  }
  for (size_t q = 0; q < queue.size(); ++q) {
    absl::StatusOr<std::vector<uint32_t>> includers =
        heap.GetDeps(static_cast<uint32_t>(queue[q]));
    if (!includers.ok()) return includers.status();
    for (const uint32_t f : *includers) {
      if (f >= files) {
        return absl::DataLossError(
            absl::StrCat("the dependency table names file ", f, " of ", files));
      }
      if (!seen[f]) {
        seen[f] = 1;
        queue.push_back(static_cast<int32_t>(f));
      }
    }
  }
  std::sort(queue.begin(), queue.end());
  return queue;
}

// The report of a phase the master runs alone, begun at `start`.
PhaseReport MasterPhase(std::string name, Clock::time_point start,
                        size_t files) {
  PhaseReport report;
  report.name = std::move(name);
  report.seconds = SecondsSince(start);
  report.files = static_cast<int64_t>(files);
  report.done = report.files;
  return report;
}

// The dependency table holds one slot per distinct resolved include,
// about 4.4 per file in /usr/include; room for 16 per file at a quarter
// full keeps every key's probe run short.
uint32_t DepSlotsLog2(size_t files) {
  uint32_t log2 = 10;
  while ((uint64_t{1} << log2) < 16 * static_cast<uint64_t>(files) &&
         log2 < 28) {
    ++log2;
  }
  return log2;
}

uint32_t TableSlotsLog2(size_t files, int workers) {
  // Keys that can hold a slot at once (a removed key keeps its slot as a
  // tombstone until a collection): four results per file, as many again
  // for the recheck's removed and republished ones, the phases' counters,
  // tallies and errors. Twice that keeps linear probing short.
  const uint64_t keys = 8 * static_cast<uint64_t>(files) +
                        8 * static_cast<uint64_t>(workers) + 64;
  uint32_t log2 = 10;
  while ((uint64_t{1} << log2) < 2 * keys && log2 < 30) ++log2;
  return log2;
}

}  // namespace

std::string TokensKey(std::string_view path) {
  return absl::StrCat("file:", Sv(path), "#tokens");
}
std::string DefsKey(std::string_view path) {
  return absl::StrCat("file:", Sv(path), "#defs");
}
std::string IncludesKey(std::string_view path) {
  return absl::StrCat("file:", Sv(path), "#includes");
}
std::string ClosureKey(std::string_view path) {
  return absl::StrCat("closure:", Sv(path));
}

void HandleStopSignals() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  // Restarted: the master's waitpid and the workers' reads carry on; the
  // flag is what ends the work.
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM}) {
    // A signal the parent ignores stays ignored (what a shell does for a
    // background job's SIGINT, and nohup for SIGHUP).
    struct sigaction old = {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) {
      continue;
    }
    sigaction(sig, &action, nullptr);
  }
}

int DefaultWorkers() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

absl::StatusOr<uint64_t> Digest(const Heap& heap,
                                const std::vector<std::string>& files) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) return absl::ResourceExhaustedError("XXH3 state");
  XXH3_64bits_reset(state);
  absl::Status status;
  for (const std::string& path : files) {
    for (const std::string& key : {TokensKey(path), DefsKey(path),
                                   IncludesKey(path), ClosureKey(path)}) {
      absl::StatusOr<shmheap::RawView> v = heap.GetRaw(key);
      if (!v.ok()) {
        status = v.status();
        break;
      }
      const int64_t header[] = {static_cast<int64_t>(v->kind()),
                                static_cast<int64_t>(v->layout()), v->ndims()};
      XXH3_64bits_update(state, key.data(), key.size() + 1);  // with the NUL
      XXH3_64bits_update(state, header, sizeof(header));
      XXH3_64bits_update(state, v->dims().data(), v->dims().size_bytes());
      XXH3_64bits_update(state, v->bytes().data(), v->bytes().size());
    }
    if (!status.ok()) break;
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (!status.ok()) return status;
  return digest;
}

absl::StatusOr<Result> RunAnalysis(const Options& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<FileIndex> index =
      BuildIndex(options.roots, options.search_dirs);
  if (!index.ok()) return index.status();
  const size_t n = index->paths.size();
  const int workers = options.serial ? 1 : options.workers;

  shmheap::Options heap_options;
  heap_options.heap_bytes = options.heap_bytes;
  heap_options.table_slots_log2 = TableSlotsLog2(n, workers);
  heap_options.dep_table_slots_log2 = DepSlotsLog2(n);
  heap_options.max_sessions =
      std::max<uint32_t>(256, static_cast<uint32_t>(workers) + 16);
  absl::StatusOr<Heap> heap = Heap::Create(heap_options);
  if (!heap.ok()) return heap.status();

  Result result;
  result.files = index->paths;
  result.search_dirs = index->search_dirs;
  result.unlisted_dirs = index->unlisted_dirs;
  result.first_unlisted = index->first_unlisted;
  result.workers = workers;
  result.tallies.assign(kNumTallies, 0);
  Analysis analysis(options, *std::move(index), *std::move(heap));
  Heap& h = analysis.heap();
  StopTargetScope stop_target(&h);
  // A stopped phase ends the run: its report says how far it got.
  auto stopped = [&](const PhaseReport& report) {
    result.stopped = true;
    result.stopped_in = report.name;
    g_stop_signal = 0;  // consumed: a later run in this process starts anew
    StopTarget(nullptr);
    if (options.keep_heap) result.heap = analysis.TakeHeap();
    return std::move(result);
  };

  std::vector<int32_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = static_cast<int32_t>(i);
  PhaseReport report;
  if (absl::Status s = analysis.RunPhase("parse", Work::kParse, all,
                                         &result.tallies, &report);
      !s.ok()) {
    return s;
  }
  result.phases.push_back(report);
  if (report.stopped) return stopped(report);
  if (absl::Status s = analysis.RunPhase("resolve", Work::kResolve, all,
                                         &result.tallies, &report);
      !s.ok()) {
    return s;
  }
  result.phases.push_back(report);
  if (report.stopped) return stopped(report);
  for (const std::string& path : result.files) {
    absl::StatusOr<ArrayView<int32_t>> t = h.Get<int32_t>(TokensKey(path));
    if (!t.ok()) return t.status();
    for (int k = 0; k < kNumTokenKinds && k < t->size(); ++k) {
      result.histogram[k] += t->flat()[k];
    }
  }
  result.published = h.stats();
  absl::StatusOr<uint64_t> digest = Digest(h, result.files);
  if (!digest.ok()) return digest.status();
  result.digest = *digest;

  // Recheck. The dependents come from the dependency table: every file
  // that includes an edited file, directly or through others, and the
  // edited files themselves (closures are reflexive), found by a
  // breadth-first walk of the reverse include edges the parse added.
  auto start = Clock::now();
  absl::StatusOr<std::vector<int32_t>> edited =
      ChooseEdited(options, analysis.index());
  if (!edited.ok()) return edited.status();
  for (int32_t e : *edited) result.edited.push_back(result.files[e]);
  absl::StatusOr<std::vector<int32_t>> dependents_or =
      Dependents(h, *edited, n);
  if (!dependents_or.ok()) return dependents_or.status();
  const std::vector<int32_t>& dependents = *dependents_or;
  result.dependents.reserve(dependents.size());
  for (int32_t d : dependents) result.dependents.push_back(result.files[d]);
  const uint64_t live_before = h.stats().live_bytes;
  for (int32_t e : *edited) {
    const std::string& path = result.files[e];
    result.removed_keys.push_back(TokensKey(path));
    result.removed_keys.push_back(DefsKey(path));
    result.removed_keys.push_back(IncludesKey(path));
  }
  for (int32_t d : dependents) {
    result.removed_keys.push_back(ClosureKey(result.files[d]));
  }
  for (const std::string& key : result.removed_keys) {
    if (absl::Status s = h.Remove(key); !s.ok()) return s;
  }
  std::sort(result.removed_keys.begin(), result.removed_keys.end());
  result.removed_bytes = live_before - h.stats().live_bytes;
  result.phases.push_back(MasterPhase("invalidate", start, n));

  std::vector<int64_t> recheck_tallies(kNumTallies, 0);
  if (absl::Status s = analysis.RunPhase("reparse", Work::kParse, *edited,
                                         &recheck_tallies, &report);
      !s.ok()) {
    return s;
  }
  result.phases.push_back(report);
  if (report.stopped) return stopped(report);
  if (absl::Status s = analysis.RunPhase("reresolve", Work::kResolve,
                                         dependents, &recheck_tallies, &report);
      !s.ok()) {
    return s;
  }
  result.phases.push_back(report);
  if (report.stopped) return stopped(report);

  start = Clock::now();
  result.dead_bytes_before_collect = h.stats().dead_bytes;
  absl::StatusOr<shmheap::GcReport> gc = h.Collect();
  if (!gc.ok()) return gc.status();
  result.gc = *gc;
  result.phases.push_back(MasterPhase("collect", start, 0));
  result.final_stats = h.stats();
  result.verify = h.Verify();
  digest = Digest(h, result.files);
  if (!digest.ok()) return digest.status();
  result.digest_recheck = *digest;

  StopTarget(nullptr);  // the heap leaves `analysis` now
  if (options.keep_heap) {
    result.heap = analysis.TakeHeap();
  } else {
    analysis.DropHeap();  // before the check builds a heap of its own
  }

  if (!options.serial && options.check) {
    start = Clock::now();
    Options reference = options;
    reference.serial = true;
    reference.check = false;
    reference.change = 0;  // its first digest is all the check compares
    reference.edited.clear();
    reference.keep_heap = false;
    reference.testing_worker_hook = nullptr;
    if (options.progress) {
      reference.progress = [&options](std::string_view phase, int64_t done,
                                      int64_t total) {
        options.progress(absl::StrCat("check:", Sv(phase)), done, total);
      };
    }
    absl::StatusOr<Result> serial = RunAnalysis(reference);
    if (!serial.ok()) return serial.status();
    if (serial->stopped) {
      // The parallel run is complete; the reference is what was stopped.
      PhaseReport check = MasterPhase("check (serial)", start, n);
      check.tallies = serial->tallies;
      check.stopped = true;
      check.done = serial->phases.back().done;
      result.phases.push_back(check);
      result.stopped = true;
      result.stopped_in = absl::StrCat("check:", serial->stopped_in);
      return result;
    }
    result.digest_serial = serial->digest;
    result.phases.push_back(MasterPhase("check (serial)", start, n));
    result.phases.back().tallies = serial->tallies;
  }
  return result;
}

}  // namespace typecheck
