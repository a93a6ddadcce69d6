// Crash injection: workers die by SIGKILL at random points and inside the
// windows where a half-done operation is left in shared memory; nothing
// that was acknowledged is lost and the heap stays sound.
//
// What this proves. Each round forks kWorkers workers that publish arrays
// under fresh keys as fast as they can. Right after Add (or Publish) returns
// true, a worker records the key on its own pipe; only then does it count
// the key as acknowledged. Every worker dies by SIGKILL: most at a moment
// the master picks at random (1-25 ms into the round), and, by a testing
// hook, many inside the windows that matter:
//   - kTopAdvanced:  inside the claim loop, right after the CAS on
//                    Header::top won (the claim record must precede it);
//   - kChunkClaimed: Header::top advanced, the chunk not yet recorded;
//   - kRecordHeaderUnwritten: a blob's place taken in the chunk, its
//                    header not yet written (committed must not cover it);
//   - kBlobWritten:  a blob allocated and filled, not yet published;
//   - kSlotClaimed:  the slot holds the hash, not yet the blob (an Add
//                    claims it before it allocates the blob);
//   - kPublished:    the slot points at the blob (an Add counted it ahead;
//                    a Publish has not counted it yet);
//   - between Reserve and Publish (a builder half filled);
//   - while pinned, holding views (so a collection must not wait for it).
// A worker about to kill itself writes a marker naming the window first, so
// the master can count kills per window. Modes rotate over rounds (worker w
// of round r has mode (r * kWorkers + w) % kNumModes), so every mode runs
// although there are more modes than workers. After each round, with every
// worker dead:
//   1. Verify passes (the heap parses end to end, every slot is sound);
//   2. every acknowledged key is present and its contents are exact,
//      element by element; keys the master removed are absent;
//   3. Collect runs (no dead worker blocks it), the heap top shrinks to
//      exactly the live bytes, the dead workers' sessions are freed, and
//      Verify passes again with the counters checked exactly.
// In every other pass through the modes, the workers that add publish with
// AddMany in batches of 8 (acknowledging each item that returned true), so
// the windows are also hit inside batches.
// Three in four of each round's keys are then removed, so every collection
// has garbage to reclaim and the table and heap stay bounded.
//
// The run asserts at least 500 kills in all, and at least 20 in each window.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"

namespace shmheap {
namespace {

using internal::TestingPoint;

constexpr int kWorkers = 8;
constexpr int kRounds = 72;  // 576 workers, each killed once

// Why a worker died, as its last pipe record says (kAcked records are the
// acknowledged keys).
enum RecordType : uint32_t {
  kAcked = 0,
  kDyingChunkClaimed,
  kDyingBlobWritten,
  kDyingSlotClaimed,
  kDyingPublished,
  kDyingReserved,  // between Reserve and Publish
  kDyingPinned,    // holding views
  kDyingTopAdvanced,
  kDyingRecordHeaderUnwritten,
  kNumRecordTypes
};

struct Record {
  uint32_t type;
  uint32_t worker;
  uint64_t seq;
};
static_assert(sizeof(Record) == 16,
              "records are written atomically (<= PIPE_BUF)");

std::string KeyOf(int round, int worker, uint64_t seq) {
  return "r" + std::to_string(round) + "w" + std::to_string(worker) + "s" +
         std::to_string(seq);
}

int64_t ElementOf(int round, int worker, uint64_t seq, int64_t j) {
  uint64_t x = (uint64_t(round) << 48) ^ (uint64_t(worker) << 40) ^
               (seq * 0x9e3779b97f4a7c15ULL) ^ (uint64_t(j) << 3);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 29;
  return static_cast<int64_t>(x);
}

// Arrays stay under 4 KiB, so every payload is 8-byte aligned and a
// compacted heap has no alignment fillers: top == live bytes exactly.
int64_t LengthOf(int worker, uint64_t seq) {
  return 1 + static_cast<int64_t>((seq * 7 + uint64_t(worker) * 13) % 120);
}

// The master keeps one acknowledged key in four across rounds (and checks
// them again later) and removes the rest, so every collection has garbage
// and the table and heap stay bounded however fast the workers run.
bool KeepsKey(uint64_t seq) { return seq % 4 == 1; }

// A worker publishes at most this many keys per round, then waits for its
// kill: it bounds a round's keys on a fast machine.
constexpr uint64_t kMaxKeysPerRound = 4000;
// Keys per AddMany call, for the workers that batch.
constexpr int kAddManyBatch = 8;

std::vector<int64_t> ValueOf(int round, int worker, uint64_t seq) {
  std::vector<int64_t> v(LengthOf(worker, seq));
  for (size_t j = 0; j < v.size(); ++j) v[j] = ElementOf(round, worker, seq, j);
  return v;
}

// --- Worker side (a forked child; never returns).

int g_pipe = -1;
int g_worker = 0;
TestingPoint g_point = TestingPoint::kChunkClaimed;
int g_countdown = -1;  // kill at the g_countdown-th pass through g_point

void WriteRecord(RecordType type, uint64_t seq) {
  const Record r{type, static_cast<uint32_t>(g_worker), seq};
  // A 16-byte write to a pipe is atomic; a short write cannot happen.
  if (write(g_pipe, &r, sizeof r) != sizeof r) _exit(3);
}

[[noreturn]] void Die(RecordType why) {
  WriteRecord(why, 0);
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

void Hook(TestingPoint point) {
  if (point != g_point || g_countdown <= 0 || --g_countdown != 0) return;
  switch (point) {
    case TestingPoint::kChunkClaimed:
      Die(kDyingChunkClaimed);
    case TestingPoint::kBlobWritten:
      Die(kDyingBlobWritten);
    case TestingPoint::kSlotClaimed:
      Die(kDyingSlotClaimed);
    case TestingPoint::kPublished:
      Die(kDyingPublished);
    case TestingPoint::kTopAdvanced:
      Die(kDyingTopAdvanced);
    case TestingPoint::kRecordHeaderUnwritten:
      Die(kDyingRecordHeaderUnwritten);
    case TestingPoint::kScopeEpochRead:  // not crash windows
    case TestingPoint::kScopeWait:
    case TestingPoint::kOwnerCheck:
      return;
    default:
      return;  // the collector's points: tests/collector_crash_test.cc
  }
}

// Modes, by worker index: how the worker arranges to die (besides the
// master's random kill, which may come first).
enum Mode {
  kModeRandomOnly,
  kModeHookChunk,
  kModeHookBlob,
  kModeHookSlot,
  kModeHookPublished,
  kModeReserve,  // builds with Reserve; dies between Reserve and Publish
  kModePinned,   // dies holding views
  kModeReserveHookSlot,
  kModeHookTop,
  kModeHookRecordHeader,
  kNumModes
};

[[noreturn]] void RunWorker(Heap& heap, int round, int worker, int pipe_fd,
                            uint64_t seed) {
  g_pipe = pipe_fd;
  g_worker = worker;
  std::mt19937_64 rng(seed);
  const Mode mode = static_cast<Mode>((round * kWorkers + worker) % kNumModes);
  switch (mode) {
    case kModeHookChunk:
      g_point = TestingPoint::kChunkClaimed;
      g_countdown = 1 + rng() % 3;
      break;
    case kModeHookTop:
      g_point = TestingPoint::kTopAdvanced;
      g_countdown = 1 + rng() % 3;
      break;
    case kModeHookRecordHeader:
      g_point = TestingPoint::kRecordHeaderUnwritten;
      g_countdown = 1 + rng() % 200;
      break;
    case kModeHookBlob:
      g_point = TestingPoint::kBlobWritten;
      g_countdown = 1 + rng() % 200;
      break;
    case kModeHookSlot:
    case kModeReserveHookSlot:
      g_point = TestingPoint::kSlotClaimed;
      g_countdown = 1 + rng() % 200;
      break;
    case kModeHookPublished:
      g_point = TestingPoint::kPublished;
      g_countdown = 1 + rng() % 200;
      break;
    default:
      break;
  }
  internal::SetTestingHook(&Hook);
  const bool use_reserve = mode == kModeReserve || mode == kModeReserveHookSlot;
  // Every other pass through the modes, the Add modes publish with AddMany
  // in batches of kAddManyBatch, so each hook window is also hit inside a
  // batch (whose claims and publishes are counted ahead).
  const bool use_add_many =
      !use_reserve && mode != kModePinned && (round / kNumModes) % 2 == 1;
  const uint64_t die_at = 1 + rng() % 150;  // kModeReserve, kModePinned
  for (uint64_t seq = 0;; ++seq) {
    if (seq >= kMaxKeysPerRound) {
      for (;;) pause();
    }
    if (use_add_many) {
      std::string keys[kAddManyBatch];
      std::vector<int64_t> values[kAddManyBatch];
      int64_t dims[kAddManyBatch][1];
      AddItem items[kAddManyBatch];
      for (int i = 0; i < kAddManyBatch; ++i) {
        keys[i] = KeyOf(round, worker, seq + i);
        values[i] = ValueOf(round, worker, seq + i);
        dims[i][0] = static_cast<int64_t>(values[i].size());
        items[i] = AddItem::Of<int64_t>(keys[i], values[i], dims[i]);
      }
      absl::StatusOr<bool> results[kAddManyBatch];
      const absl::StatusOr<size_t> n = heap.AddMany(items, results);
      if (!n.ok() || *n != kAddManyBatch) _exit(5);  // fresh keys
      for (int i = 0; i < kAddManyBatch; ++i) {
        if (!results[i].ok() || !*results[i]) _exit(5);
        WriteRecord(kAcked, seq + i);
      }
      seq += kAddManyBatch - 1;
      continue;
    }
    const std::string key = KeyOf(round, worker, seq);
    const std::vector<int64_t> value = ValueOf(round, worker, seq);
    const int64_t dims[] = {static_cast<int64_t>(value.size())};
    absl::StatusOr<bool> added;
    if (use_reserve) {
      absl::StatusOr<Builder<int64_t>> b = heap.Reserve<int64_t>(key, dims);
      if (!b.ok()) _exit(4);
      std::span<int64_t> out = b->data();
      for (size_t j = 0; j < out.size(); ++j) {
        if (mode == kModeReserve && seq == die_at && j == out.size() / 2) {
          Die(kDyingReserved);
        }
        out[j] = value[j];
      }
      added = b->Publish();
    } else {
      added = heap.Add<int64_t>(key, value, dims);
    }
    if (!added.ok() || !*added) _exit(5);  // fresh keys: must publish
    WriteRecord(kAcked, seq);
    if (mode == kModePinned && seq == die_at) {
      // Die holding a Pin and a view, or (every other round) only a read
      // scope and a borrowed ref.
      if (round % 2 == 0) {
        absl::StatusOr<Heap::Pin> pin = heap.Enter();
        absl::StatusOr<ArrayView<int64_t>> view =
            heap.Get<int64_t>(KeyOf(round, worker, seq / 2));
        if (!pin.ok() || !view.ok()) _exit(6);
        Die(kDyingPinned);
      }
      absl::StatusOr<ReadScope> scope = heap.Read();
      if (!scope.ok()) _exit(6);
      if (!scope->Find<int64_t>(KeyOf(round, worker, seq / 2))) _exit(6);
      Die(kDyingPinned);
    }
  }
}

// --- Master side.

struct Tally {
  int kills = 0;
  int by_type[kNumRecordTypes] = {};
  uint64_t acked = 0;
  uint64_t checked_reads = 0;
  uint64_t collections = 0;
};

// Checks that `v` (an ArrayView or a borrowed ArrayRef) holds exactly
// ValueOf(round, worker, seq).
template <class View>
void ExpectValue(const View* v, int round, int worker, uint64_t seq) {
  const std::string key = KeyOf(round, worker, seq);
  ASSERT_NE(v, nullptr) << key << " is missing";
  ASSERT_EQ(v->ndims(), 1) << key;
  ASSERT_EQ(v->dim(0), LengthOf(worker, seq)) << key;
  for (int64_t j = 0; j < v->dim(0); ++j) {
    ASSERT_EQ((*v)(j), ElementOf(round, worker, seq, j))
        << key << " element " << j;
  }
}

// Checks `key` through Heap::Get.
void ExpectIntact(const Heap& heap, int round, int worker, uint64_t seq) {
  absl::StatusOr<ArrayView<int64_t>> v =
      heap.Get<int64_t>(KeyOf(round, worker, seq));
  ASSERT_TRUE(v.ok()) << KeyOf(round, worker, seq) << ": " << v.status();
  ExpectValue(&*v, round, worker, seq);
}

// Checks every key of `seqs` through one read scope and GetMany.
void ExpectIntactBatch(const Heap& heap, int round, int worker,
                       const std::vector<uint64_t>& seqs) {
  absl::StatusOr<ReadScope> scope = heap.Read();
  ASSERT_TRUE(scope.ok()) << scope.status();
  std::vector<std::string> names;
  for (uint64_t seq : seqs) names.push_back(KeyOf(round, worker, seq));
  const std::vector<Key> keys(names.begin(), names.end());
  std::vector<std::optional<RawRef>> refs(keys.size());
  ASSERT_EQ(scope->GetMany(keys, refs), keys.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_TRUE(refs[i].has_value()) << names[i];
    absl::StatusOr<ArrayRef<int64_t>> a = refs[i]->As<int64_t>();
    ASSERT_TRUE(a.ok()) << names[i] << ": " << a.status();
    ExpectValue(&*a, round, worker, seqs[i]);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(CrashTest, KilledWorkersLoseNothingAcknowledged) {
  Options options;
  options.heap_bytes = uint64_t{256} << 20;
  options.table_slots_log2 = 20;
  options.chunk_bytes = 16 << 10;  // many chunk claims, so many kills there
  absl::StatusOr<Heap> heap = Heap::Create(options);
  ASSERT_TRUE(heap.ok()) << heap.status();

  std::mt19937_64 rng(20261121);
  Tally tally;
  // Keys acknowledged in earlier rounds that stay (KeepsKey), to check again
  // after later rounds.
  struct Kept {
    int round, worker;
    uint64_t seq;
  };
  std::vector<Kept> kept;

  for (int round = 0; round < kRounds; ++round) {
    int pipes[kWorkers][2];
    pid_t pids[kWorkers];
    for (int w = 0; w < kWorkers; ++w) {
      ASSERT_EQ(pipe2(pipes[w], O_CLOEXEC), 0);
      // Room for every record a worker can write in a round, so no worker
      // blocks on a full pipe (1 MiB = 65536 records).
      fcntl(pipes[w][1], F_SETPIPE_SZ, 1 << 20);
    }
    const uint64_t round_seed = rng();
    for (int w = 0; w < kWorkers; ++w) {
      pids[w] = fork();
      ASSERT_GE(pids[w], 0);
      if (pids[w] == 0) {
        for (int v = 0; v < kWorkers; ++v) {
          close(pipes[v][0]);
          if (v != w) close(pipes[v][1]);
        }
        RunWorker(*heap, round, w, pipes[w][1], round_seed + w);
      }
      close(pipes[w][1]);
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(1000 + rng() % 24000));
    for (int w = 0; w < kWorkers; ++w) kill(pids[w], SIGKILL);

    std::vector<std::vector<uint64_t>> acked(kWorkers);
    for (int w = 0; w < kWorkers; ++w) {
      int status = 0;
      ASSERT_EQ(waitpid(pids[w], &status, 0), pids[w]);
      // Every worker must die by SIGKILL: an exit means an operation failed.
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "round " << round << " worker " << w << " exited with "
          << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      ++tally.kills;
      Record r;
      ssize_t n;
      while ((n = read(pipes[w][0], &r, sizeof r)) == sizeof r) {
        ASSERT_LT(r.type, uint32_t{kNumRecordTypes});
        ++tally.by_type[r.type];
        if (r.type == kAcked) acked[w].push_back(r.seq);
      }
      ASSERT_EQ(n, 0) << "torn pipe record";
      close(pipes[w][0]);
    }

    // 1. The heap is sound with the workers dead mid-operation.
    ASSERT_TRUE(heap->Verify().ok())
        << "round " << round << ": " << heap->Verify();
    // 2. Everything acknowledged is there and exact, read through a scope
    // and GetMany, and one by one through Get.
    for (int w = 0; w < kWorkers; ++w) {
      ExpectIntactBatch(*heap, round, w, acked[w]);
      if (::testing::Test::HasFatalFailure()) return;
      for (uint64_t seq : acked[w]) {
        ExpectIntact(*heap, round, w, seq);
        if (::testing::Test::HasFatalFailure()) return;
        ++tally.checked_reads;
        ++tally.acked;
      }
    }
    for (int i = 0; i < 64 && !kept.empty(); ++i) {
      const Kept& k = kept[rng() % kept.size()];
      ExpectIntact(*heap, k.round, k.worker, k.seq);
      if (::testing::Test::HasFatalFailure()) return;
      ++tally.checked_reads;
    }
    // 3. Remove the keys not kept, then collect.
    for (int w = 0; w < kWorkers; ++w) {
      for (uint64_t seq : acked[w]) {
        if (!KeepsKey(seq)) {
          ASSERT_TRUE(heap->Remove(KeyOf(round, w, seq)).ok());
        } else {
          kept.push_back({round, w, seq});
        }
      }
    }
    absl::StatusOr<GcReport> gc = heap->Collect();
    ASSERT_TRUE(gc.ok()) << "round " << round << ": " << gc.status();
    ASSERT_TRUE(gc->ran);
    ++tally.collections;
    const Stats s = heap->stats();
    EXPECT_EQ(gc->bytes_after, s.live_bytes) << "round " << round;
    EXPECT_EQ(s.heap_top, s.live_bytes) << "round " << round;
    EXPECT_EQ(s.dead_bytes, 0u) << "round " << round;
    EXPECT_EQ(s.sessions, 1u) << "round " << round << ": dead sessions kept";
    EXPECT_EQ(s.table_tombstones, 0u);
    ASSERT_TRUE(heap->Verify().ok())
        << "round " << round << ": " << heap->Verify();
    for (int w = 0; w < kWorkers; ++w) {
      for (uint64_t seq : acked[w]) {
        if (!KeepsKey(seq)) {
          ASSERT_FALSE(heap->Contains(KeyOf(round, w, seq)));
        }
      }
    }
  }
  // Finally, every kept key is still exact after all those collections.
  for (const Kept& k : kept) {
    ExpectIntact(*heap, k.round, k.worker, k.seq);
    if (::testing::Test::HasFatalFailure()) return;
    ++tally.checked_reads;
  }

  std::printf(
      "crash_test: %d kills over %d rounds; inside windows: top advanced "
      "%d, chunk claimed %d, record header unwritten %d, blob written %d, "
      "slot claimed %d, published %d, between Reserve and Publish %d, "
      "pinned %d; %llu keys acknowledged, %llu checked reads, %llu "
      "collections\n",
      tally.kills, kRounds, tally.by_type[kDyingTopAdvanced],
      tally.by_type[kDyingChunkClaimed],
      tally.by_type[kDyingRecordHeaderUnwritten],
      tally.by_type[kDyingBlobWritten], tally.by_type[kDyingSlotClaimed],
      tally.by_type[kDyingPublished], tally.by_type[kDyingReserved],
      tally.by_type[kDyingPinned], static_cast<unsigned long long>(tally.acked),
      static_cast<unsigned long long>(tally.checked_reads),
      static_cast<unsigned long long>(tally.collections));
  EXPECT_GE(tally.kills, 500);
  for (uint32_t t = kDyingChunkClaimed; t < kNumRecordTypes; ++t) {
    EXPECT_GE(tally.by_type[t], 20) << "too few kills in window " << t;
  }
}

}  // namespace
}  // namespace shmheap
