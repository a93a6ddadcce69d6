// Crash injection of the collector (gc/collector.h, "Recovery").
//
// What it proves: a collector killed by SIGKILL at any point of any phase
// loses no published value, and never leaves kDataLoss behind. Each round
// the master churns the heap (adds, replaces and removes against an exact
// model, and a small "pad" before a large blob, so that the next round's
// removal of the pad makes the large blob's move overlap its source); then a
// forked child collects and is killed:
//   - by a testing hook, at the n-th time it reaches one of the collector's
//     points (chunks closed; a filler or dead blob skipped; a step of an
//     overlapping move; a blob moved; the kept pages zeroed and the tail
//     released; a tombstone cascade moving an entry; a cascade done;
//     counters recounted), n drawn at random, so kills land all over each
//     phase, inside the slide and inside single moves;
//   - or from outside, by the master, after a random delay.
// After every round the master attaches anew (which rolls the dead
// collector's work forward), runs Verify, checks every value of the model
// element by element (through a read scope's GetMany and through Get), checks
// that removed keys are absent, that the heap is compact (top == live bytes,
// no dead byte, no tombstone), and that its own Collect then moves nothing.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::TestingPoint;
using testing::ValueFor;

// The points a child may be killed at, and how many rounds use each; the
// last entry stands for the master's kill from outside.
// The child dies at the n-th time it reaches `point`, n uniform in
// [1, max_nth]: about as often as a round's collection reaches it.
struct Target {
  const char* name;
  TestingPoint point;
  int max_nth;
  bool external;
};
constexpr Target kTargets[] = {
    {"chunks closed", TestingPoint::kGcClosed, 1, false},
    {"garbage skipped", TestingPoint::kGcSkippedRecord, 40, false},
    {"overlapping move step", TestingPoint::kGcMovedPart, 8, false},
    {"blob moved", TestingPoint::kGcMovedBlob, 200, false},
    {"kept pages zeroed, tail released", TestingPoint::kGcReleasedTail, 1,
     false},
    {"cascade moved an entry", TestingPoint::kGcMovedSlot, 10, false},
    {"cascade done", TestingPoint::kGcClearedTombstone, 60, false},
    {"counters recounted", TestingPoint::kGcFinished, 1, false},
    {"from outside", TestingPoint::kGcClosed, 0, true},
};
constexpr int kNumTargets = sizeof(kTargets) / sizeof(kTargets[0]);
constexpr int kRoundsPerTarget = 90;

struct Entry {
  uint64_t version;
  int64_t len;
};

std::vector<float> Contents(uint64_t key, const Entry& e) {
  std::vector<float> v(static_cast<size_t>(e.len));
  for (size_t j = 0; j < v.size(); ++j) v[j] = ValueFor(key, e.version, j);
  return v;
}

std::string Name(uint64_t key) { return absl::StrCat("k", key); }

// Checks the whole model against the heap: every value exact, every removed
// key absent. Returns the number of elements checked.
int64_t CheckModel(const Heap& heap, const std::map<uint64_t, Entry>& model,
                   const std::vector<uint64_t>& removed) {
  int64_t elements = 0;
  std::vector<std::string> names;
  std::vector<uint64_t> keys;
  for (const auto& [key, e] : model) {
    names.push_back(Name(key));
    keys.push_back(key);
  }
  {
    absl::StatusOr<ReadScope> scope = heap.Read();
    EXPECT_TRUE(scope.ok()) << scope.status();
    if (!scope.ok()) return 0;
    const std::vector<Key> batch(names.begin(), names.end());
    std::vector<std::optional<RawRef>> refs(batch.size());
    EXPECT_EQ(scope->GetMany(batch, refs), batch.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!refs[i]) {
        ADD_FAILURE() << names[i] << " lost";
        continue;
      }
      absl::StatusOr<ArrayRef<float>> a = refs[i]->As<float>();
      EXPECT_TRUE(a.ok()) << a.status();
      if (!a.ok()) continue;
      const std::vector<float> want = Contents(keys[i], model.at(keys[i]));
      EXPECT_EQ(a->size(), static_cast<int64_t>(want.size())) << names[i];
      if (a->size() != static_cast<int64_t>(want.size())) continue;
      for (size_t j = 0; j < want.size(); ++j) {
        if (a->flat()[j] != want[j]) {
          ADD_FAILURE() << names[i] << " element " << j << " changed";
          break;
        }
      }
      elements += a->size();
    }
  }
  // And once through Get, one key in eight.
  for (size_t i = 0; i < keys.size(); i += 8) {
    absl::StatusOr<ArrayView<float>> v = heap.Get<float>(names[i]);
    EXPECT_TRUE(v.ok()) << names[i] << ": " << v.status();
    if (v.ok()) {
      EXPECT_EQ(v->flat()[0], Contents(keys[i], model.at(keys[i]))[0]);
    }
  }
  for (uint64_t key : removed) {
    EXPECT_FALSE(heap.Contains(Name(key))) << Name(key) << " came back";
  }
  return elements;
}

// What became of a collecting child.
enum class Fate { kKilled, kFinished, kFailed };

// Forks a child that collects `heap` and dies as `target` says: by the hook,
// the n-th time it reaches target.point (n uniform in [1, max_nth]), or
// from outside after a random delay below *external_delay_us, which adapts
// to the machine (a collection that finished first shortens the next
// one's). A collection that runs to its end exits 0 when `finished_ok`
// holds for its report.
Fate CollectInDyingChild(Heap& heap, const Target& target, std::mt19937_64& rng,
                         uint64_t* external_delay_us,
                         bool (*finished_ok)(const GcReport&)) {
  const int nth =
      target.external ? 0 : 1 + static_cast<int>(rng() % target.max_nth);
  const pid_t child = fork();
  if (child == 0) {
    testing::DieAtNthPass(target.point, nth);
    absl::StatusOr<GcReport> gc = heap.Collect();
    _exit(gc.ok() && finished_ok(*gc) ? 0 : 3);
  }
  if (target.external) {
    std::this_thread::sleep_for(
        std::chrono::microseconds(rng() % *external_delay_us));
    kill(child, SIGKILL);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return Fate::kFailed;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return Fate::kKilled;
  if (target.external) {
    *external_delay_us = std::max<uint64_t>(50, *external_delay_us * 3 / 4);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? Fate::kFinished
                                                       : Fate::kFailed;
}

// Attaches to `name` anew into `heap` (which rolls a dead collector's work
// forward); the phase must be idle and Verify pass. False (with the failure
// added, naming `round`) otherwise.
bool Reattach(std::optional<Heap>& heap, const std::string& name,
              const std::string& round) {
  heap.reset();
  absl::StatusOr<Heap> reopened = Heap::OpenNamed(name);
  if (!reopened.ok()) {
    ADD_FAILURE() << round << ": " << reopened.status();
    return false;
  }
  heap.emplace(*std::move(reopened));
  if (heap->segment().header().phase.load() != internal::kPhaseIdle) {
    ADD_FAILURE() << round << ": phase " << heap->segment().header().phase;
    return false;
  }
  if (absl::Status s = heap->Verify(); !s.ok()) {
    ADD_FAILURE() << round << ": " << s;
    return false;
  }
  return true;
}

TEST(CollectorCrash, KilledCollectorsLoseNothing) {
  Options options;
  options.heap_bytes = uint64_t{256} << 20;
  // 1024 slots for about 700 keys and 150 tombstones a round: long
  // clusters, so tombstone cascades move entries (across the wrap too).
  options.table_slots_log2 = 10;
  options.chunk_bytes = 64 << 10;
  const std::string heap_name = testing::UniqueName("gc-crash");
  // A failed earlier run of the same pid namespace may have left it.
  Heap::UnlinkNamed(heap_name).IgnoreError();
  absl::StatusOr<Heap> created = Heap::CreateNamed(heap_name, options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::optional<Heap> heap(*std::move(created));

  std::mt19937_64 rng(20261201);
  std::map<uint64_t, Entry> model;
  uint64_t next_key = 0, version = 0;
  auto put = [&](uint64_t key, int64_t len) {
    const Entry e{++version, len};
    const std::vector<float> v = Contents(key, e);
    const int64_t dims[] = {len};
    absl::StatusOr<bool> r = heap->Replace<float>(Name(key), v, dims);
    ASSERT_TRUE(r.ok()) << r.status();
    model[key] = e;
  };
  auto small_len = [&] { return static_cast<int64_t>(1 + rng() % 48); };
  for (int i = 0; i < 400; ++i) put(next_key++, small_len());

  int kills[kNumTargets] = {}, survived[kNumTargets] = {};
  int64_t checked_elements = 0;
  uint64_t pad_key = UINT64_MAX;
  std::vector<uint64_t> bigs;
  uint64_t external_delay_us = 1200;
  std::vector<uint64_t> removed;
  const int rounds = kNumTargets * kRoundsPerTarget;
  for (int round = 0; round < rounds; ++round) {
    const Target& target = kTargets[round % kNumTargets];
    // Churn: remove about 1 in 6, replace about 1 in 8, add 40 new, and
    // move the large blob of the previous round down a little.
    removed.clear();
    for (auto it = model.begin(); it != model.end();) {
      const uint64_t r = rng() % 48;
      if (r < 8) {
        ASSERT_TRUE(heap->Remove(Name(it->first)).ok());
        removed.push_back(it->first);
        it = model.erase(it);
      } else {
        if (r < 14) put(it->first, small_len());
        ++it;
      }
    }
    if (pad_key != UINT64_MAX && model.count(pad_key)) {
      ASSERT_TRUE(heap->Remove(Name(pad_key)).ok());
      removed.push_back(pad_key);
      model.erase(pad_key);
    }
    for (int i = 0; i < 40; ++i) put(next_key++, small_len());
    // A small pad, then a large blob (64 to 128 KiB): the pad's removal
    // next round, and the garbage before it, move the large blob down by
    // less than its size, so its move overlaps its source.
    pad_key = next_key++;
    put(pad_key, 2);
    bigs.push_back(next_key);
    put(next_key++, (16 << 10) + static_cast<int64_t>(rng() % (16 << 10)));
    while (bigs.size() > 3) {
      if (model.count(bigs.front())) {
        ASSERT_TRUE(heap->Remove(Name(bigs.front())).ok());
        removed.push_back(bigs.front());
        model.erase(bigs.front());
      }
      bigs.erase(bigs.begin());
    }
    while (model.size() > 700) {
      removed.push_back(model.begin()->first);
      ASSERT_TRUE(heap->Remove(Name(model.begin()->first)).ok());
      model.erase(model.begin());
    }

    // Collect in a child that dies, then attach anew and check everything.
    const Fate fate =
        CollectInDyingChild(*heap, target, rng, &external_delay_us,
                            [](const GcReport&) { return true; });
    ASSERT_NE(fate, Fate::kFailed)
        << "round " << round << ": the collecting child failed";
    // (A named index: GCC's -O1 under ASan took the conditional array
    // for a read of an uninitialised `round`.)
    const int target_index = round % kNumTargets;
    if (fate == Fate::kKilled) {
      ++kills[target_index];
    } else {
      ++survived[target_index];
    }
    ASSERT_TRUE(
        Reattach(heap, heap_name,
                 absl::StrCat("round ", round, " (", target.name, ")")));
    checked_elements += CheckModel(*heap, model, removed);
    if (::testing::Test::HasFailure()) {
      FAIL() << "round " << round << " (" << target.name << ")";
    }
    // A collection killed inside (every hook point is) was finished by the
    // recovery: the master's own Collect finds nothing to move. A kill from
    // outside may have come before the collection began.
    absl::StatusOr<GcReport> gc = heap->Collect();
    ASSERT_TRUE(gc.ok()) << gc.status();
    if (!target.external) {
      ASSERT_EQ(gc->bytes_moved, 0u)
          << "round " << round << " (" << target.name << ")";
    }
    // Compact: the only dead bytes are the gaps before cache-line aligned
    // payloads (at most 56 bytes before each large blob).
    const Stats s = heap->stats();
    uint64_t large = 0;
    for (const auto& [key, e] : model) large += e.len * 4 >= 4096;
    ASSERT_EQ(s.heap_top, s.live_bytes + s.dead_bytes) << "round " << round;
    ASSERT_LE(s.dead_bytes, 56 * large) << "round " << round;
    ASSERT_EQ(s.table_tombstones, 0u) << "round " << round;
    ASSERT_EQ(s.live_blobs, model.size()) << "round " << round;
  }
  int total = 0;
  for (int t = 0; t < kNumTargets; ++t) {
    std::printf(
        "collector_crash_test: %-24s %3d kills, %3d collections "
        "finished first\n",
        kTargets[t].name, kills[t], survived[t]);
    total += kills[t];
    // Every point is reached in most rounds (the pad makes an overlapping
    // move each round); a countdown past the point's count survives.
    EXPECT_GE(kills[t], kRoundsPerTarget / 4) << kTargets[t].name;
  }
  std::printf(
      "collector_crash_test: %d kills in %d rounds, %lld elements "
      "checked, 0 lost\n",
      total, rounds, static_cast<long long>(checked_elements));
  EXPECT_GE(total, 500);
  heap.reset();
  Heap::UnlinkNamed(heap_name).IgnoreError();
}

// Crash injection of the table's growth (gc/grow.h, "Recovery").
//
// What it proves: a collection that grows the table, killed by SIGKILL at
// any point of the growth (area backed and growth recorded; after the n-th
// slot copied into the new table; after the flip, before the old area is
// released), just before it (counters recounted), or from outside at a
// random moment, loses no value, and the heap it leaves is grown and
// verifies. Each round makes a fresh heap of 64 slots (at most 2^8),
// fills 60 of them while a read scope keeps the Adds from growing the
// table, removes 10 (tombstones) and collects in a child that dies. The
// master then attaches anew (which rolls the growth forward), checks that
// the phase is idle, that the table has 128 slots (50 used: the smallest
// size at most half used), that Verify passes, that every one of the 50
// values is exact and the 10 removed keys absent (ReadScope, Get,
// Contains), and that its own Collect then neither moves nor grows.
TEST(CollectorCrash, KilledGrowthsLoseNothing) {
  constexpr Target kGrowTargets[] = {
      {"counters recounted", TestingPoint::kGcFinished, 1, false},
      {"growth begun", TestingPoint::kGcGrowBegun, 1, false},
      {"slot copied", TestingPoint::kGcGrewSlot, 50, false},
      {"new table installed", TestingPoint::kGcGrowInstalled, 1, false},
      {"from outside", TestingPoint::kGcClosed, 0, true},
  };
  constexpr int kTargetsHere = sizeof(kGrowTargets) / sizeof(kGrowTargets[0]);
  constexpr int kRounds = 40;
  std::mt19937_64 rng(20261202);
  int kills[kTargetsHere] = {};
  uint64_t external_delay_us = 1500;
  for (int round = 0; round < kTargetsHere * kRounds; ++round) {
    const Target& target = kGrowTargets[round % kTargetsHere];
    Options options;
    options.heap_bytes = uint64_t{16} << 20;
    options.table_slots_log2 = 6;
    options.max_table_slots_log2 = 8;
    options.chunk_bytes = 64 << 10;
    const std::string heap_name = testing::UniqueName("gc-grow-crash");
    Heap::UnlinkNamed(heap_name).IgnoreError();
    absl::StatusOr<Heap> created = Heap::CreateNamed(heap_name, options);
    ASSERT_TRUE(created.ok()) << created.status();
    std::optional<Heap> heap(*std::move(created));
    std::map<uint64_t, Entry> model;
    std::vector<uint64_t> removed;
    {
      absl::StatusOr<ReadScope> scope = heap->Read();
      ASSERT_TRUE(scope.ok());
      for (uint64_t key = 0; key < 60; ++key) {
        const Entry e{1, static_cast<int64_t>(1 + rng() % 24)};
        const std::vector<float> v = Contents(key, e);
        const int64_t dims[] = {e.len};
        absl::StatusOr<bool> r = heap->Add<float>(Name(key), v, dims);
        ASSERT_TRUE(r.ok() && *r) << r.status();
        model[key] = e;
      }
    }
    for (uint64_t key = 0; key < 60; key += 6) {
      ASSERT_TRUE(heap->Remove(Name(key)).ok());
      model.erase(key);
      removed.push_back(key);
    }
    ASSERT_EQ(heap->stats().table_slots, 64u);
    const Fate fate = CollectInDyingChild(
        *heap, target, rng, &external_delay_us,
        [](const GcReport& gc) { return gc.table_slots_after == 128; });
    ASSERT_NE(fate, Fate::kFailed)
        << "round " << round << ": the collecting child failed";
    kills[round % kTargetsHere] += fate == Fate::kKilled;
    ASSERT_TRUE(
        Reattach(heap, heap_name,
                 absl::StrCat("round ", round, " (", target.name, ")")));
    CheckModel(*heap, model, removed);
    if (::testing::Test::HasFailure()) {
      FAIL() << "round " << round << " (" << target.name << ")";
    }
    absl::StatusOr<GcReport> gc = heap->Collect();
    ASSERT_TRUE(gc.ok()) << gc.status();
    // A kill from outside may come before the collection began; the
    // master's collection then grows the table itself.
    ASSERT_EQ(gc->table_slots_after, 128u)
        << "round " << round << " (" << target.name << ")";
    if (!target.external) {
      ASSERT_EQ(gc->bytes_moved, 0u) << "round " << round;
      ASSERT_EQ(gc->table_slots_before, 128u) << "round " << round;
    }
    heap.reset();
    Heap::UnlinkNamed(heap_name).IgnoreError();
  }
  for (int t = 0; t < kTargetsHere; ++t) {
    std::printf("collector_crash_test: growth, %-22s %3d kills in %d rounds\n",
                kGrowTargets[t].name, kills[t], kRounds);
    if (!kGrowTargets[t].external) {
      EXPECT_GE(kills[t], kRounds * 3 / 4) << kGrowTargets[t].name;
    }
  }
}

}  // namespace
}  // namespace shmheap
