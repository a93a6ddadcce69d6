// The table's concurrency scenarios (hashtable/table.h) shared by
// tests/table_fork_test.cc and tests/table_threads_test.cc: each is written
// once and run by a Runner, over forked processes or over threads.
//
// Every worker reports what it read back through SharedArrays and its result
// code; the caller checks every recorded value, and reads everything again
// itself.

#ifndef SHMHEAP_TESTS_TABLE_SCENARIOS_H_
#define SHMHEAP_TESTS_TABLE_SCENARIOS_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace testing {

// Runs body(i) for i in [0, n) on n workers (RunProcesses or RunThreads);
// returns each one's result code.
using Runner =
    std::function<std::vector<int>(int, const std::function<int(int)>&)>;

// How a scenario runs its workers and names them in failure messages.
struct ScenarioRunner {
  Runner run;
  // What one worker is: "process" or "thread".
  const char* noun;
  // Who checks the results afterwards: "the parent" or "the main thread".
  const char* checker;
};

inline Options TableTestOptions(uint32_t table_slots_log2) {
  Options o;
  o.heap_bytes = uint64_t{1} << 30;  // reserved, not committed
  o.table_slots_log2 = table_slots_log2;
  // A table of the size the scenario says, for all of it: the races here
  // are about one geometry (a growing table: tests/grow_test.cc).
  o.max_table_slots_log2 = table_slots_log2;
  return o;
}

inline Heap CreateHeap(uint32_t table_slots_log2) {
  absl::StatusOr<Heap> heap = Heap::Create(TableTestOptions(table_slots_log2));
  EXPECT_TRUE(heap.ok()) << heap.status();
  if (!heap.ok()) std::abort();
  return *std::move(heap);
}

// Mismatches between a read and `want`, read as a 1-D float32 array in kC
// layout: 1 for an error status or wrong dims, 1 for a wrong layout or kind,
// plus 1 per element that differs.
inline int64_t Mismatches(const absl::StatusOr<ArrayView<float>>& got,
                          std::span<const float> want) {
  if (!got.ok()) return 1;
  if (got->ndims() != 1 || got->dim(0) != static_cast<int64_t>(want.size())) {
    return 1;
  }
  int64_t bad = 0;
  if (got->layout() != Layout::kC || got->kind() != Kind::kFloat32) ++bad;
  const std::span<const float> flat = got->flat();
  for (size_t j = 0; j < want.size(); ++j) bad += flat[j] != want[j];
  return bad;
}

// Adds `data` as a 1-D float32 array.
inline absl::StatusOr<bool> AddArray(Heap& heap, const std::string& key,
                                     const std::vector<float>& data) {
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  return heap.Add<float>(key, data, dims);
}

inline absl::StatusOr<bool> ReplaceArray(Heap& heap, const std::string& key,
                                         const std::vector<float>& data) {
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  return heap.Replace<float>(key, data, dims);
}

// Adds `data` with Add, or with Reserve, a copy into the builder and Publish.
// Publish has no early check for a present key (Add returns false before
// building anything when it sees one), so racing publishers always meet at
// the slot's compare-and-swap.
inline absl::StatusOr<bool> AddOrPublish(Heap& heap, const std::string& key,
                                         const std::vector<float>& data,
                                         bool via_reserve) {
  if (!via_reserve) return AddArray(heap, key, data);
  const int64_t dims[] = {static_cast<int64_t>(data.size())};
  absl::StatusOr<Builder<float>> builder = heap.Reserve<float>(key, dims);
  if (!builder.ok()) return builder.status();
  std::copy(data.begin(), data.end(), builder->data().begin());
  return builder->Publish();
}

// ---------------------------------------------------------------------------
// a. Distinct keys from many workers.

// `workers` workers each publish `keys_per_worker` keys of their own
// (float32 arrays of 1 to 13 elements derived from the key). Every Add
// returns true, and after a barrier every worker, and then the checker,
// reads all the keys back with the right dims, layout, kind and every
// element.
inline void DistinctKeysAreAllReadable(const ScenarioRunner& runner,
                                       int workers, int keys_per_worker,
                                       uint32_t table_slots_log2) {
  const int keys = workers * keys_per_worker;
  Heap heap = CreateHeap(table_slots_log2);
  SharedBarrier barrier(workers);
  SharedArray<int64_t> failed_adds(workers);
  SharedArray<int64_t> mismatches(workers);

  const std::vector<int> codes = runner.run(workers, [&](int p) {
    int64_t failed = 0;
    for (int i = p * keys_per_worker; i < (p + 1) * keys_per_worker; ++i) {
      const absl::StatusOr<bool> added =
          AddArray(heap, KeyName(i), ArrayFor(i, 0, i % 13 + 1));
      if (!added.ok() || !*added) ++failed;
    }
    failed_adds[p] = failed;
    barrier.Wait();
    int64_t bad = 0;
    for (int i = 0; i < keys; ++i) {
      bad +=
          Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, i % 13 + 1));
    }
    mismatches[p] = bad;
    return static_cast<int>(std::min<int64_t>(failed + bad, 255));
  });

  for (int p = 0; p < workers; ++p) {
    EXPECT_EQ(codes[p], 0) << runner.noun << " " << p;
    EXPECT_EQ(failed_adds[p], 0) << runner.noun << " " << p;
    EXPECT_EQ(mismatches[p], 0) << runner.noun << " " << p;
  }
  int64_t checker_bad = 0;
  for (int i = 0; i < keys; ++i) {
    checker_bad +=
        Mismatches(heap.Get<float>(KeyName(i)), ArrayFor(i, 0, i % 13 + 1));
  }
  EXPECT_EQ(checker_bad, 0);
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, static_cast<uint64_t>(keys));
  EXPECT_EQ(s.table_used, static_cast<uint64_t>(keys));
  EXPECT_EQ(s.table_tombstones, 0u);
}

// ---------------------------------------------------------------------------
// b. Racing adds of the same keys.

// The shared state of a race to add `keys` keys of `len` floats: the heap,
// the barriers, and what each racer won and read. Racer p's contents under
// key k are ArrayFor(k, p + 1, len).
struct AddRace {
  AddRace(int racers_in, int keys_in, size_t len_in, uint32_t slots_log2)
      : racers(racers_in),
        keys(keys_in),
        len(len_in),
        heap(CreateHeap(slots_log2)),
        start(racers_in),
        added(racers_in),
        won(racers_in * keys_in),
        seen(racers_in * keys_in),
        errors(racers_in) {}

  // The racer whose contents `got` holds; -2 for ArrayFor(key,
  // extra_version, len) when extra_version != 0 (contents that must never
  // win); -1 for anything else.
  int WriterOf(const absl::StatusOr<ArrayView<float>>& got, int key) const {
    for (int p = 0; p < racers; ++p) {
      if (Mismatches(got, ArrayFor(key, p + 1, len)) == 0) return p;
    }
    if (extra_version != 0 &&
        Mismatches(got, ArrayFor(key, extra_version, len)) == 0) {
      return -2;
    }
    return -1;
  }

  // Runs the race: racer p runs add(p) between the barriers (it records
  // what it won in `won` and returns its error count), then reads every key
  // back; then the checks below, and that the table holds `keys` values.
  // (*winners)[k] := the winner of key k.
  void Run(const ScenarioRunner& runner, const std::function<int64_t(int)>& add,
           std::vector<int>* winners) {
    const std::vector<int> codes = runner.run(racers, [&](int p) {
      start.Wait();
      errors[p] = add(p);
      added.Wait();
      RecordWhatEachSees(p);
      return 0;
    });
    CheckOneWinnerPerKey(runner, codes, winners);
    if (::testing::Test::HasFatalFailure()) return;
    const Stats s = heap.stats();
    EXPECT_EQ(s.live_blobs, static_cast<uint64_t>(keys));
    EXPECT_EQ(s.table_used, static_cast<uint64_t>(keys));
  }

  // The read-back half, in racer p after `added`: what it reads per key.
  void RecordWhatEachSees(int p) {
    for (int k = 0; k < keys; ++k) {
      seen[p * keys + k] = WriterOf(heap.Get<float>(KeyName(k)), k);
    }
  }

  // The checks afterwards: every racer exited 0 with no errors, exactly one
  // racer won each key, and every racer and the checker read that winner's
  // contents. (*winners)[k] := the winner of key k.
  void CheckOneWinnerPerKey(const ScenarioRunner& runner,
                            const std::vector<int>& codes,
                            std::vector<int>* winners) {
    for (int p = 0; p < racers; ++p) {
      EXPECT_EQ(codes[p], 0) << runner.noun << " " << p;
      EXPECT_EQ(errors[p], 0) << runner.noun << " " << p;
    }
    winners->assign(keys, -1);
    for (int k = 0; k < keys; ++k) {
      int wins = 0;
      for (int p = 0; p < racers; ++p) {
        if (won[p * keys + k]) {
          ++wins;
          (*winners)[k] = p;
        }
      }
      ASSERT_EQ(wins, 1) << "key " << k;
      for (int p = 0; p < racers; ++p) {
        ASSERT_EQ(seen[p * keys + k], (*winners)[k])
            << runner.noun << " " << p << " read key " << k;
      }
      ASSERT_EQ(WriterOf(heap.Get<float>(KeyName(k)), k), (*winners)[k])
          << runner.checker << " read key " << k;
    }
  }

  const int racers;
  const int keys;
  const size_t len;
  uint64_t extra_version = 0;
  Heap heap;
  SharedBarrier start;
  SharedBarrier added;
  SharedArray<uint8_t> won;
  SharedArray<int32_t> seen;
  SharedArray<int64_t> errors;
};

// Every racer adds the same 1,000 keys, its own contents under each (version
// = racer index + 1), with Add or with Reserve + Publish; then, after a
// barrier, reads them all back.
inline void RaceToAdd(const ScenarioRunner& runner, int racers,
                      uint32_t table_slots_log2, bool via_reserve) {
  constexpr int kKeys = 1000;
  constexpr size_t kLen = 16;
  AddRace race(racers, kKeys, kLen, table_slots_log2);
  Heap& heap = race.heap;

  std::vector<int> winners;
  race.Run(
      runner,
      [&](int p) {
        int64_t bad = 0;
        for (int k = 0; k < kKeys; ++k) {
          const absl::StatusOr<bool> r = AddOrPublish(
              heap, KeyName(k), ArrayFor(k, p + 1, kLen), via_reserve);
          if (!r.ok()) ++bad;
          race.won[p * kKeys + k] = r.ok() && *r ? 1 : 0;
        }
        return bad;
      },
      &winners);
}

// ---------------------------------------------------------------------------
// b2. Racing batched and single adds of the same keys.

// Every racer adds the same kKeys keys, its own contents under each (version
// = racer index + 1): even racers with AddMany, in batches of kBatch whose
// last item repeats the batch's first key with other contents (so a batch
// also races with itself: the earlier item must win), odd racers with
// single Adds. Racer p starts at key p * kKeys / racers and wraps around,
// so the racers meet on every key from different batch positions. Each
// racer records, per key, whether one of its calls published it, and
// checks that its published count equals its true results. Then, after a
// barrier, every racer reads every key and records whose contents it
// holds. With threads, the racers share one session: the counters, which
// AddMany and Add update without a locked instruction (heap/session.h),
// must still come out exact, which Verify checks.
inline void RaceToAddMany(const ScenarioRunner& runner, int racers,
                          uint32_t table_slots_log2) {
  constexpr int kKeys = 2048;
  constexpr int kBatch = 64;
  constexpr size_t kLen = 16;
  // The contents of a batch's repeated last item, which must never win.
  constexpr uint64_t kDuplicateVersion = 1000;
  AddRace race(racers, kKeys, kLen, table_slots_log2);
  race.extra_version = kDuplicateVersion;
  Heap& heap = race.heap;
  SharedArray<uint8_t>& won = race.won;

  auto add = [&](int p) -> int64_t {
    const int first = p * kKeys / racers;
    std::vector<std::string> names(kBatch + 1);
    std::vector<std::vector<float>> values(kBatch + 1);
    std::vector<AddItem> items(kBatch + 1);
    std::vector<absl::StatusOr<bool>> results(kBatch + 1);
    const int64_t dims[] = {static_cast<int64_t>(kLen)};
    int64_t bad = 0;
    for (int done = 0; done < kKeys; done += kBatch) {
      if (p % 2 == 1) {
        for (int i = 0; i < kBatch; ++i) {
          const int k = (first + done + i) % kKeys;
          const absl::StatusOr<bool> r =
              AddArray(heap, KeyName(k), ArrayFor(k, p + 1, kLen));
          if (!r.ok()) ++bad;
          won[p * kKeys + k] = r.ok() && *r ? 1 : 0;
        }
        continue;
      }
      for (int i = 0; i <= kBatch; ++i) {
        const int k = (first + done + (i == kBatch ? 0 : i)) % kKeys;
        names[i] = KeyName(k);
        values[i] = ArrayFor(k, i == kBatch ? kDuplicateVersion : p + 1, kLen);
        items[i] = AddItem::Of<float>(names[i], values[i], dims);
      }
      const absl::StatusOr<size_t> n = heap.AddMany(items, results);
      if (!n.ok()) {
        ++bad;
        continue;
      }
      size_t trues = 0;
      for (int i = 0; i < kBatch; ++i) {
        const int k = (first + done + i) % kKeys;
        if (!results[i].ok()) ++bad;
        won[p * kKeys + k] = results[i].ok() && *results[i] ? 1 : 0;
        trues += won[p * kKeys + k];
      }
      // The repeated key was the batch's own first item: present.
      if (!results[kBatch].ok() || *results[kBatch]) ++bad;
      if (*n != trues) ++bad;
    }
    return bad;
  };
  std::vector<int> winners;
  race.Run(runner, add, &winners);
  if (::testing::Test::HasFatalFailure()) return;
  int batched_wins = 0;
  for (int w : winners) batched_wins += w % 2 == 0;
  // How the wins split between the paths depends on scheduling (batches are
  // faster, and often win every key): shown, not asserted.
  std::printf("RaceToAddMany: %d of %d keys won by AddMany\n", batched_wins,
              kKeys);
  // Verify checks every counter against the table exactly.
  const absl::Status verified = heap.Verify();
  EXPECT_TRUE(verified.ok()) << verified;
}

// ---------------------------------------------------------------------------
// c. Replace and remove racing with get.

inline constexpr int kRaceKeys = 64;
inline constexpr size_t kRaceLen = 256;

// The array for version v of `key`: element 0 holds v (exact in a float for
// v < 2^24), the others ValueFor(key, v, j).
inline std::vector<float> VersionedArray(uint64_t key, uint64_t v) {
  std::vector<float> a = ArrayFor(key, v, kRaceLen);
  a[0] = static_cast<float>(v);
  return a;
}

// The version whose array `got` (an ArrayView or a borrowed ArrayRef) holds
// in full, or 0 when it is not one version's array (torn or malformed).
template <class View>
uint64_t VersionOfView(const View& got, uint64_t key) {
  if (got.ndims() != 1 || got.dim(0) != static_cast<int64_t>(kRaceLen) ||
      got.layout() != Layout::kC || got.kind() != Kind::kFloat32) {
    return 0;
  }
  const std::span<const float> flat = got.flat();
  const float f = flat[0];
  if (!(f >= 1.0f && f < 16777216.0f)) return 0;
  const uint64_t v = static_cast<uint64_t>(f);
  if (static_cast<float>(v) != f) return 0;
  for (size_t j = 1; j < kRaceLen; ++j) {
    if (flat[j] != ValueFor(key, v, j)) return 0;
  }
  return v;
}

// The same for a Get's result: 0 also for an error.
inline uint64_t VersionOf(const absl::StatusOr<ArrayView<float>>& got,
                          uint64_t key) {
  return got.ok() ? VersionOfView(*got, key) : 0;
}

// `writers` writers Replace (and now and then Remove) 64 keys with new
// versions, at most `max_writes_per_writer` each (which bounds the heap's
// growth), while `readers` readers Get them for about `read_for`. Every
// successful read is entirely the array of one version, never a mix of two
// (replace / get and remove / get in the contract); NotFound is allowed.
// Afterwards stats() agrees with the table: live_blobs is the number of keys
// Contains() reports, every key holds one complete version, and the bytes
// and slots add up.
inline void ReplaceAndRemoveRacingWithGet(const ScenarioRunner& runner,
                                          int writers, int readers,
                                          int max_writes_per_writer,
                                          std::chrono::milliseconds read_for) {
  Heap heap = CreateHeap(12);
  SharedBarrier start(writers + readers);
  SharedArray<std::atomic<int>> readers_done(1);
  SharedArray<int64_t> writer_errors(writers);
  SharedArray<int64_t> writes(writers);
  SharedArray<int64_t> reads(readers);
  SharedArray<int64_t> not_found(readers);
  SharedArray<int64_t> mismatches(readers);
  SharedArray<int64_t> changes(readers);

  const std::vector<int> codes = runner.run(writers + readers, [&](int i) {
    start.Wait();
    if (i < writers) {
      const int w = i;
      int64_t errors = 0;
      int64_t n = 0;
      // Relaxed: a stop hint; nothing is published through it.
      for (; n < max_writes_per_writer &&
             readers_done[0].load(std::memory_order_relaxed) < readers;
           ++n) {
        const uint64_t key = (n * 7 + w * 31) % kRaceKeys;
        if (n % 16 == 15) {
          const absl::Status s = heap.Remove(KeyName(key));
          if (!s.ok() && s.code() != absl::StatusCode::kNotFound) ++errors;
        } else {
          const uint64_t v = 2 * static_cast<uint64_t>(n) + w + 1;
          if (!ReplaceArray(heap, KeyName(key), VersionedArray(key, v)).ok()) {
            ++errors;
          }
        }
      }
      writer_errors[w] = errors;
      writes[w] = n;
      return errors == 0 ? 0 : 1;
    }
    const int r = i - writers;
    int64_t ok = 0, absent = 0, bad = 0, changed = 0;
    std::vector<uint64_t> last(kRaceKeys, 0);
    const auto until = std::chrono::steady_clock::now() + read_for;
    for (uint64_t n = 0; std::chrono::steady_clock::now() < until; ++n) {
      const uint64_t key = (n * 13 + r * 5) % kRaceKeys;
      const absl::StatusOr<ArrayView<float>> got =
          heap.Get<float>(KeyName(key));
      if (!got.ok() && got.status().code() == absl::StatusCode::kNotFound) {
        ++absent;
        continue;
      }
      const uint64_t v = VersionOf(got, key);
      if (v == 0) {
        ++bad;
        continue;
      }
      ++ok;
      if (last[key] != 0 && last[key] != v) ++changed;
      last[key] = v;
    }
    reads[r] = ok;
    not_found[r] = absent;
    mismatches[r] = bad;
    changes[r] = changed;
    readers_done[0].fetch_add(1, std::memory_order_relaxed);
    return bad == 0 ? 0 : 1;
  });

  int64_t total_reads = 0, total_changes = 0;
  for (int i = 0; i < writers + readers; ++i) {
    EXPECT_EQ(codes[i], 0) << runner.noun << " " << i;
  }
  for (int w = 0; w < writers; ++w) {
    EXPECT_EQ(writer_errors[w], 0) << "writer " << w;
    EXPECT_GT(writes[w], kRaceKeys) << "writer " << w;
  }
  for (int r = 0; r < readers; ++r) {
    EXPECT_EQ(mismatches[r], 0) << "reader " << r;
    total_reads += reads[r];
    total_changes += changes[r];
  }
  EXPECT_GT(total_reads, 1000);
  // The readers did race with the writers: they saw values change.
  EXPECT_GT(total_changes, 0);

  uint64_t present = 0;
  for (int key = 0; key < kRaceKeys; ++key) {
    if (!heap.Contains(KeyName(key))) {
      EXPECT_EQ(heap.Get<float>(KeyName(key)).status().code(),
                absl::StatusCode::kNotFound);
      continue;
    }
    ++present;
    EXPECT_NE(VersionOf(heap.Get<float>(KeyName(key)), key), 0u)
        << "key " << key;
  }
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, present);
  EXPECT_EQ(s.table_used, uint64_t{kRaceKeys});
  EXPECT_EQ(s.table_tombstones, kRaceKeys - present);
  EXPECT_GE(s.live_bytes, present * kRaceLen * sizeof(float));
  // Each Replace built one array; all but the live ones are dead now.
  uint64_t replaces = 0;
  for (int w = 0; w < writers; ++w) replaces += writes[w] - writes[w] / 16;
  ASSERT_GE(replaces, present);
  EXPECT_GE(s.dead_bytes, (replaces - present) * kRaceLen * sizeof(float));
}

// ---------------------------------------------------------------------------
// d. Read scopes racing with writers and a collector.

// Worker 0 collects again and again; `writers` writers Replace (and now and
// then Remove) the 64 keys of (c); `readers` readers open short read scopes
// (Heap::Read) and, inside each, look keys up every way a scope offers:
// Find<float>, FindRaw + As, Get<float>, Contains, GetMany and ContainsMany
// over 16 keys. Every value a scope returns is read in full while the scope
// lives and must be entirely one version's array (the collector never moves
// a blob under a scope, writers never tear one); GetMany and ContainsMany
// agree on what is present. Collections must actually run between scopes
// (the handshake lets the collector in and holds new scopes out), and the
// heap verifies afterwards, with every key one complete version.
//
// With threads, a Collect that finds another thread of its process in scope
// answers kFailedPrecondition (it cannot tell that thread's scope from its
// own, and would wait for itself); the collector thread retries then, so it
// runs whenever every scope of the process has ended at once. Readers and
// writers sleep `pause` between scopes and writes to leave such moments
// (0 for processes, whose scopes are independent).
inline void ReadScopesRacingWithWritersAndCollector(
    const ScenarioRunner& runner, int writers, int readers,
    int max_writes_per_writer, std::chrono::milliseconds run_for,
    std::chrono::microseconds pause) {
  Heap heap = CreateHeap(12);
  for (uint64_t key = 0; key < kRaceKeys; ++key) {
    ASSERT_TRUE(ReplaceArray(heap, KeyName(key), VersionedArray(key, 1)).ok());
  }
  const int workers = 1 + writers + readers;
  SharedBarrier start(workers);
  SharedArray<std::atomic<int>> readers_done(1);
  SharedArray<int64_t> errors(workers);
  SharedArray<int64_t> collections(1);
  SharedArray<int64_t> scopes(readers);
  SharedArray<int64_t> reads(readers);
  SharedArray<int64_t> bad(readers);
  std::vector<std::string> names;
  for (uint64_t key = 0; key < kRaceKeys; ++key) names.push_back(KeyName(key));

  const std::vector<int> codes = runner.run(workers, [&](int i) {
    start.Wait();
    // Relaxed: a stop hint; nothing is published through it.
    auto readers_running = [&] {
      return readers_done[0].load(std::memory_order_relaxed) < readers;
    };
    if (i == 0) {
      int64_t ran = 0, failures = 0;
      while (readers_running()) {
        CollectOptions o;
        o.deadline = std::chrono::milliseconds(2000);
        const absl::StatusOr<GcReport> gc = heap.Collect(o);
        if (gc.ok()) {
          ran += gc->ran;
        } else if (gc.status().code() !=
                   absl::StatusCode::kFailedPrecondition) {
          ++failures;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      collections[0] = ran;
      errors[0] = failures;
      return failures == 0 ? 0 : 1;
    }
    if (i <= writers) {
      const int w = i - 1;
      int64_t failures = 0;
      for (int64_t n = 0; n < max_writes_per_writer && readers_running(); ++n) {
        const uint64_t key = (n * 7 + w * 31) % kRaceKeys;
        absl::Status s;
        if (n % 16 == 15) {
          s = heap.Remove(KeyName(key));
          if (s.code() == absl::StatusCode::kNotFound) s = absl::OkStatus();
        } else {
          const uint64_t v = 2 * static_cast<uint64_t>(n) + w + 3;
          s = ReplaceArray(heap, KeyName(key), VersionedArray(key, v)).status();
        }
        if (!s.ok()) {
          ++failures;
          std::fprintf(stderr, "writer %d: %s\n", w, s.ToString().c_str());
        }
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      }
      errors[i] = failures;
      return failures == 0 ? 0 : 1;
    }
    const int r = i - 1 - writers;
    int64_t n_scopes = 0, n_reads = 0, n_bad = 0, failures = 0;
    std::vector<Key> batch;
    std::vector<std::optional<RawRef>> refs(16);
    std::unique_ptr<bool[]> present(new bool[16]);
    const auto until = std::chrono::steady_clock::now() + run_for;
    for (uint64_t n = 0; std::chrono::steady_clock::now() < until; ++n) {
      if (pause.count() > 0 && n > 0) std::this_thread::sleep_for(pause);
      absl::StatusOr<ReadScope> scope = heap.Read();
      if (!scope.ok()) {
        ++failures;
        continue;
      }
      ++n_scopes;
      for (uint64_t j = 0; j < 8; ++j) {
        const uint64_t key = (n * 13 + j * 5 + r) % kRaceKeys;
        const std::string& name = names[key];
        uint64_t v = 1;  // absent counts as fine
        switch ((n + j) % 4) {
          case 0:
            if (auto a = scope->Find<float>(name)) v = VersionOfView(*a, key);
            break;
          case 1:
            if (auto raw = scope->FindRaw(name)) {
              absl::StatusOr<ArrayRef<float>> a = raw->As<float>();
              v = a.ok() ? VersionOfView(*a, key) : 0;
            }
            break;
          case 2: {
            absl::StatusOr<ArrayRef<float>> a = scope->Get<float>(name);
            if (a.ok()) {
              v = VersionOfView(*a, key);
            } else if (a.status().code() != absl::StatusCode::kNotFound) {
              v = 0;
            }
            break;
          }
          case 3:
            // A writer may remove the key between Contains and Find, so
            // only the value Find returns is checked.
            if (scope->Contains(name)) {
              if (auto a = scope->Find<float>(name)) v = VersionOfView(*a, key);
            }
            break;
        }
        ++n_reads;
        n_bad += v == 0;
      }
      batch.clear();
      for (uint64_t j = 0; j < 16; ++j) {
        batch.push_back(names[(n * 3 + j) % kRaceKeys]);
      }
      const size_t found = scope->GetMany(batch, refs);
      size_t counted = 0;
      for (uint64_t j = 0; j < 16; ++j) {
        if (!refs[j]) continue;
        ++counted;
        absl::StatusOr<ArrayRef<float>> a = refs[j]->As<float>();
        n_bad += !a.ok() || VersionOfView(*a, (n * 3 + j) % kRaceKeys) == 0;
        ++n_reads;
      }
      n_bad += found != counted;
      // Inside one scope nothing moves, but writers still publish: a value
      // GetMany found may since be removed, so ContainsMany is checked
      // against itself (its count) and against Find only for what it calls
      // present and Find can read.
      const size_t contained =
          scope->ContainsMany(batch, std::span<bool>(present.get(), 16));
      size_t yes = 0;
      for (uint64_t j = 0; j < 16; ++j) yes += present[j];
      n_bad += contained != yes;
    }
    scopes[r] = n_scopes;
    reads[r] = n_reads;
    bad[r] = n_bad;
    errors[i] = failures;
    readers_done[0].fetch_add(1, std::memory_order_relaxed);
    return n_bad == 0 && failures == 0 ? 0 : 1;
  });

  for (int i = 0; i < workers; ++i) {
    EXPECT_EQ(codes[i], 0) << runner.noun << " " << i;
    EXPECT_EQ(errors[i], 0) << runner.noun << " " << i;
  }
  int64_t total_reads = 0;
  for (int r = 0; r < readers; ++r) {
    EXPECT_EQ(bad[r], 0) << "reader " << r;
    EXPECT_GT(scopes[r], 10) << "reader " << r;
    total_reads += reads[r];
  }
  EXPECT_GT(total_reads, 1000);
  EXPECT_GT(collections[0], 2) << "the collector never got in";
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
  for (uint64_t key = 0; key < kRaceKeys; ++key) {
    if (!heap.Contains(KeyName(key))) continue;
    EXPECT_NE(VersionOf(heap.Get<float>(KeyName(key)), key), 0u) << key;
  }
}

}  // namespace testing
}  // namespace shmheap

#endif  // SHMHEAP_TESTS_TABLE_SCENARIOS_H_
