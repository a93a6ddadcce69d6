// The dependency table (hashtable/deps.h) through Heap::AddDep, GetDeps and
// RemoveDeps, in one process: idempotence, many values per key, removal and
// re-adding, a full table, bad ids, a heap without a table, Verify's
// findings on planted corruption, and the table's survival of collections,
// table growth and reattaching.

#include "hashtable/deps.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/testing_hooks.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::DepTable;
using internal::DepWord;
using ::testing::HasSubstr;

Options Small(uint32_t dep_log2 = 10) {
  Options o;
  o.heap_bytes = uint64_t{16} << 20;
  o.table_slots_log2 = 8;
  o.max_sessions = 8;
  o.min_available_bytes = 0;
  o.dep_table_slots_log2 = dep_log2;
  return o;
}

std::vector<uint32_t> Sorted(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<uint32_t> DepsOf(const Heap& heap, uint32_t key) {
  absl::StatusOr<std::vector<uint32_t>> d = heap.GetDeps(key);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? Sorted(*d) : std::vector<uint32_t>{};
}

// The slot words of the heap's table, writable (planting corruption).
std::atomic<uint64_t>* Slots(const Heap& heap) {
  const internal::Segment& seg = heap.segment();
  return reinterpret_cast<std::atomic<uint64_t>*>(seg.base() +
                                                  seg.header().dep_offset);
}

TEST(DepsTest, AddIsIdempotent) {
  absl::StatusOr<Heap> heap = Heap::Create(Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  EXPECT_EQ(*heap->AddDep(7, 42), true);
  EXPECT_EQ(*heap->AddDep(7, 42), false);
  EXPECT_EQ(*heap->AddDep(7, 42), false);
  EXPECT_EQ(DepsOf(*heap, 7), std::vector<uint32_t>{42});
  EXPECT_TRUE(DepsOf(*heap, 8).empty());
  const Stats s = heap->stats();
  EXPECT_EQ(s.dep_slots, 1024u);
  EXPECT_EQ(s.dep_used, 1u);
  EXPECT_EQ(s.dep_removed, 0u);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

TEST(DepsTest, ManyValuesPerKeyAndManyKeys) {
  absl::StatusOr<Heap> heap = Heap::Create(Small(12));
  ASSERT_TRUE(heap.ok()) << heap.status();
  // Key k has values k, k + 1000, ..., k + 1000 * (k % 17): 1 to 17 values.
  std::vector<std::vector<uint32_t>> want(100);
  for (uint32_t k = 0; k < 100; ++k) {
    for (uint32_t j = 0; j <= k % 17; ++j) {
      ASSERT_EQ(*heap->AddDep(k, k + 1000 * j), true);
      want[k].push_back(k + 1000 * j);
    }
  }
  uint64_t edges = 0;
  for (uint32_t k = 0; k < 100; ++k) {
    EXPECT_EQ(DepsOf(*heap, k), Sorted(want[k])) << "key " << k;
    edges += want[k].size();
  }
  EXPECT_EQ(heap->stats().dep_used, edges);
  // The largest ids.
  constexpr uint32_t kTop = internal::kDepIdLimit - 1;
  EXPECT_EQ(*heap->AddDep(kTop, kTop), true);
  EXPECT_EQ(*heap->AddDep(kTop, 0), true);
  EXPECT_EQ(DepsOf(*heap, kTop), (std::vector<uint32_t>{0, kTop}));
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

TEST(DepsTest, RemoveThenAddAgain) {
  absl::StatusOr<Heap> heap = Heap::Create(Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (uint32_t v = 0; v < 5; ++v) ASSERT_EQ(*heap->AddDep(3, v), true);
  ASSERT_EQ(*heap->AddDep(4, 9), true);
  EXPECT_EQ(*heap->RemoveDeps(3), 5u);
  EXPECT_EQ(*heap->RemoveDeps(3), 0u);
  EXPECT_EQ(*heap->RemoveDeps(99), 0u);
  EXPECT_TRUE(DepsOf(*heap, 3).empty());
  EXPECT_EQ(DepsOf(*heap, 4), std::vector<uint32_t>{9});
  Stats s = heap->stats();
  EXPECT_EQ(s.dep_used, 6u);
  EXPECT_EQ(s.dep_removed, 5u);
  // A removed edge is not present: adding it stores it anew.
  EXPECT_EQ(*heap->AddDep(3, 2), true);
  EXPECT_EQ(*heap->AddDep(3, 2), false);
  EXPECT_EQ(DepsOf(*heap, 3), std::vector<uint32_t>{2});
  s = heap->stats();
  EXPECT_EQ(s.dep_used, 7u);
  EXPECT_EQ(s.dep_removed, 5u);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

// The loser of a claim race, made to lose every time: a testing hook at
// kDepEmptySeen (between AddDep's read of an empty slot and its CAS) adds an
// edge first, through a nested AddDep. Losing to the same edge returns
// false and stores nothing; losing to another edge of the key moves on and
// stores the edge in the next slot.
Heap* g_racer_heap = nullptr;
uint32_t g_racer_key = 0, g_racer_value = 0;
bool g_racer_armed = false;
bool g_racer_stored = false;

void Racer(internal::TestingPoint point) {
  if (point != internal::TestingPoint::kDepEmptySeen || !g_racer_armed) return;
  g_racer_armed = false;  // the nested AddDep passes here too
  absl::StatusOr<bool> r = g_racer_heap->AddDep(g_racer_key, g_racer_value);
  g_racer_stored = r.ok() && *r;
}

TEST(DepsTest, TheLoserOfAClaimRaceSeesTheWinner) {
  absl::StatusOr<Heap> heap = Heap::Create(Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  g_racer_heap = &*heap;
  internal::SetTestingHook(&Racer);
  // The same edge wins the slot first: stored once, and this call says so.
  g_racer_key = 5, g_racer_value = 6, g_racer_armed = true;
  EXPECT_EQ(*heap->AddDep(5, 6), false);
  EXPECT_TRUE(g_racer_stored);
  EXPECT_EQ(DepsOf(*heap, 5), std::vector<uint32_t>{6});
  EXPECT_EQ(heap->stats().dep_used, 1u);
  // Another edge of the key wins the slot: this one goes to the next.
  g_racer_key = 5, g_racer_value = 7, g_racer_armed = true;
  EXPECT_EQ(*heap->AddDep(5, 8), true);
  EXPECT_TRUE(g_racer_stored);
  EXPECT_EQ(DepsOf(*heap, 5), (std::vector<uint32_t>{6, 7, 8}));
  EXPECT_EQ(heap->stats().dep_used, 3u);
  internal::SetTestingHook(nullptr);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

TEST(DepsTest, FullTableIsResourceExhausted) {
  absl::StatusOr<Heap> heap = Heap::Create(Small(4));  // 16 slots
  ASSERT_TRUE(heap.ok()) << heap.status();
  // One key fills the table: its 16th edge lies 15 slots past its home, so
  // every slot of the table is probed for it.
  for (uint32_t v = 0; v < 16; ++v) {
    ASSERT_EQ(*heap->AddDep(1, v), true) << v;
  }
  absl::StatusOr<bool> r = heap->AddDep(5, 5);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("dependency table full: 16 slots"));
  EXPECT_EQ(heap->AddDep(1, 16).status().code(),
            absl::StatusCode::kResourceExhausted);
  // An edge that is there is still found in a full table, the last one
  // stored too.
  EXPECT_EQ(*heap->AddDep(1, 4), false);
  EXPECT_EQ(*heap->AddDep(1, 15), false);
  std::vector<uint32_t> all(16);
  for (uint32_t v = 0; v < 16; ++v) all[v] = v;
  EXPECT_EQ(DepsOf(*heap, 1), all);
  EXPECT_TRUE(DepsOf(*heap, 5).empty());
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
  // Removed edges keep their slots: still full.
  EXPECT_EQ(*heap->RemoveDeps(1), 16u);
  EXPECT_EQ(heap->AddDep(5, 5).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(heap->stats().dep_removed, 16u);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
  // A reset empties it.
  internal::ResetDepTable(heap->segment());
  EXPECT_EQ(heap->stats().dep_used, 0u);
  EXPECT_TRUE(DepsOf(*heap, 1).empty());
  EXPECT_EQ(*heap->AddDep(5, 5), true);
  EXPECT_EQ(DepsOf(*heap, 5), std::vector<uint32_t>{5});
}

TEST(DepsTest, BadIdsAreInvalidArgument) {
  absl::StatusOr<Heap> heap = Heap::Create(Small());
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr uint32_t kBad = internal::kDepIdLimit;
  absl::StatusOr<bool> r = heap->AddDep(kBad, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("key 2147483648 out of range"));
  r = heap->AddDep(1, 0xffffffffu);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("value 4294967295 out of range"));
  EXPECT_EQ(heap->GetDeps(kBad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap->RemoveDeps(kBad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap->stats().dep_used, 0u);
}

TEST(DepsTest, HeapWithoutTable) {
  absl::StatusOr<Heap> heap = Heap::Create(Small(0));
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (const absl::Status& s :
       {heap->AddDep(1, 2).status(), heap->GetDeps(1).status(),
        heap->RemoveDeps(1).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("heap has no dependency table "
                          "(dep_table_slots_log2 = 0)"));
  }
  const Stats s = heap->stats();
  EXPECT_EQ(s.dep_slots, 0u);
  EXPECT_EQ(heap->segment().header().dep_offset, 0u);
  EXPECT_TRUE(heap->Verify().ok());
  // No area: the heap starts right after the table areas.
  const internal::Header& h = heap->segment().header();
  EXPECT_EQ(h.heap_start,
            h.table_areas_offset +
                2 * internal::TableAreaBytes(h.max_table_slots_log2));
  // A moved-from Heap.
  Heap moved = *std::move(heap);
  EXPECT_EQ(heap->AddDep(1, 2).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(DepsTest, OptionRange) {
  for (uint32_t bad : {1u, 3u, 33u, 200u}) {
    absl::StatusOr<Heap> heap = Heap::Create(Small(bad));
    EXPECT_EQ(heap.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(heap.status().message()),
                HasSubstr("dep_table_slots_log2 must be 0 (none) or 4..32"));
  }
  EXPECT_EQ(Options{}.dep_table_slots_log2, internal::kDefaultDepSlotsLog2);
  EXPECT_EQ(internal::SegmentOptions{}.dep_table_slots_log2,
            internal::kDefaultDepSlotsLog2);
}

// The area is backed (allocated) when the heap is created, as the live
// table is: no write to it can fault on a full /dev/shm later.
TEST(DepsTest, AreaIsBackedAtCreation) {
  absl::StatusOr<Heap> heap = Heap::Create(Small(16));  // 512 KiB
  ASSERT_TRUE(heap.ok()) << heap.status();
  const internal::Header& h = heap->segment().header();
  ASSERT_NE(h.dep_offset, 0u);
  EXPECT_EQ(h.dep_offset,
            h.table_areas_offset +
                2 * internal::TableAreaBytes(h.max_table_slots_log2));
  EXPECT_EQ(h.heap_start, h.dep_offset + (uint64_t{8} << 16));
  EXPECT_EQ(h.dep_offset % internal::kPageSize, 0u);
  // The same heap without a table takes 512 KiB less, but for the page
  // below heap_start, which every heap backs (st_blocks, not SEEK_HOLE:
  // tmpfs reports fallocated pages never written as holes).
  absl::StatusOr<Heap> none = Heap::Create(Small(0));
  ASSERT_TRUE(none.ok()) << none.status();
  struct stat with_table, without;
  ASSERT_EQ(fstat(heap->segment().fd(), &with_table), 0);
  ASSERT_EQ(fstat(none->segment().fd(), &without), 0);
  EXPECT_GE(
      static_cast<uint64_t>(with_table.st_blocks - without.st_blocks) * 512,
      (uint64_t{8} << 16) - internal::kPageSize);
}

TEST(DepsTest, GeometryIsCheckedOnAttach) {
  const std::string path = testing::TempPath("deps-geometry");
  {
    absl::StatusOr<Heap> heap = Heap::CreateFile(path, Small());
    ASSERT_TRUE(heap.ok()) << heap.status();
    ASSERT_TRUE(heap->AddDep(1, 2).ok());
  }
  {
    absl::StatusOr<Heap> heap = Heap::OpenFile(path);
    ASSERT_TRUE(heap.ok()) << heap.status();
    EXPECT_EQ(DepsOf(*heap, 1), std::vector<uint32_t>{2});
  }
  // A dep_offset or size that disagrees with the geometry is kDataLoss.
  for (auto [field, value] : std::vector<std::pair<size_t, uint64_t>>{
           {offsetof(internal::Header, dep_offset), 4096},
           {offsetof(internal::Header, dep_offset), 0},
           {offsetof(internal::Header, dep_slots_log2), 11},
           {offsetof(internal::Header, dep_slots_log2), 0},
           {offsetof(internal::Header, dep_slots_log2), 40}}) {
    const std::string copy = path + ".bad";
    ASSERT_EQ(std::system(("cp " + path + " " + copy).c_str()), 0);
    FILE* f = std::fopen(copy.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(field), SEEK_SET);
    const size_t width =
        field == offsetof(internal::Header, dep_offset) ? 8 : 4;
    std::fwrite(&value, width, 1, f);
    std::fclose(f);
    absl::StatusOr<Heap> heap = Heap::OpenFile(copy);
    EXPECT_EQ(heap.status().code(), absl::StatusCode::kDataLoss)
        << field << " = " << value << ": " << heap.status();
    std::remove(copy.c_str());
  }
  std::remove(path.c_str());
}

TEST(DepsTest, VerifyFindsPlantedCorruption) {
  struct Plant {
    const char* what;
    const char* message;
  };
  for (const Plant& p : {
           Plant{"no occupied bit", "without the occupied bit 63"},
           Plant{"unreachable", "unreachable: empty slot"},
           Plant{"duplicate", "duplicates the live edge (5, 6) of slot"},
       }) {
    SCOPED_TRACE(p.what);
    absl::StatusOr<Heap> heap = Heap::Create(Small());
    ASSERT_TRUE(heap.ok()) << heap.status();
    ASSERT_TRUE(heap->AddDep(5, 6).ok());
    ASSERT_TRUE(heap->Verify().ok());
    absl::StatusOr<DepTable> table = DepTable::Of(heap->segment());
    ASSERT_TRUE(table.ok());
    const uint64_t mask = table->capacity() - 1;
    const uint64_t home = table->Home(5);
    std::atomic<uint64_t>* slots = Slots(*heap);
    const std::string name = p.what;
    if (name == "no occupied bit") {
      slots[(home + 1) & mask].store(DepWord(5, 7) & ~internal::kDepOccupied);
    } else if (name == "unreachable") {
      // An edge of key 5 two slots past its home, with slot home + 1 empty.
      slots[(home + 2) & mask].store(DepWord(5, 8));
    } else {
      slots[(home + 1) & mask].store(DepWord(5, 6));
    }
    const absl::Status s = heap->Verify();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(p.message));
    EXPECT_THAT(std::string(s.message()), HasSubstr("dependency slot"));
  }
}

TEST(DepsTest, EdgesSurviveCollectionsAndTableGrowth) {
  Options o = Small();
  o.table_slots_log2 = 4;  // 16 slots: the writes below make it grow
  o.max_table_slots_log2 = 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (uint32_t v = 0; v < 50; ++v) ASSERT_TRUE(heap->AddDep(v % 7, v).ok());
  ASSERT_EQ(*heap->RemoveDeps(6), 7u);
  std::vector<float> data(100, 1.5f);
  const int64_t dims[] = {100};
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(heap->Add<float>(testing::KeyName(i), data, dims).ok());
  }
  for (int i = 0; i < 40; i += 3) {
    ASSERT_TRUE(heap->Remove(testing::KeyName(i)).ok());
  }
  ASSERT_TRUE(heap->Collect().ok());
  EXPECT_GT(heap->stats().table_slots, 16u) << "the table did not grow";
  ASSERT_TRUE(heap->Collect().ok());
  for (uint32_t k = 0; k < 6; ++k) {
    std::vector<uint32_t> want;
    for (uint32_t v = k; v < 50; v += 7) want.push_back(v);
    EXPECT_EQ(DepsOf(*heap, k), want) << "key " << k;
  }
  EXPECT_TRUE(DepsOf(*heap, 6).empty());
  EXPECT_EQ(heap->stats().dep_used, 50u);
  EXPECT_EQ(heap->stats().dep_removed, 7u);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

// Threads of one process (the TSan pass runs this): 8 threads add
// overlapping edge sets at once while a reader polls, exactly one add per
// distinct edge returns true, and every key then holds exactly the union.
// Each edge also carries a plain write made before it, which the reader
// checks when it sees the edge. Within one process that write is ordered
// by the scope's pin count as well as by the claim's release (each call
// enters the scope, a locked RMW on one counter), so TSan does not single
// out a weakened claim: checked, a relaxed claim CAS passes here. The
// claim's order matters across processes, where no pin count is shared.
TEST(DepsTest, ThreadsAddOverlappingEdges) {
  absl::StatusOr<Heap> heap = Heap::Create(Small(12));
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kThreads = 8;
  constexpr uint32_t kKeys = 32, kValues = 40;
  // payload[k * kValues + v]: k + 1, written once, before (k, v) is added.
  std::vector<uint32_t> payload(kKeys * kValues, 0);
  std::atomic<uint64_t> stored{0};
  std::atomic<bool> done{false};
  uint64_t seen = 0, wrong = 0;
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) {
      for (uint32_t k = 0; k < kKeys; ++k) {
        absl::StatusOr<std::vector<uint32_t>> got = heap->GetDeps(k);
        if (!got.ok()) continue;
        for (uint32_t v : *got) {
          ++seen;
          // Written by the thread that stored the edge, before it stored it.
          if (payload[k * kValues + v] != k + 1) ++wrong;
        }
      }
    }
  });
  std::set<std::pair<uint32_t, uint32_t>> all;
  for (int t = 0; t < kThreads; ++t) {
    for (uint32_t k = 0; k < kKeys; ++k) {
      for (uint32_t v = 0; v < kValues; ++v) {
        if ((k + v + static_cast<uint32_t>(t)) % 4 < 2) all.insert({k, v});
      }
    }
  }
  // Each edge's payload is written by the one thread that owns it (the
  // lowest t that adds it), before that thread adds it; the other threads
  // add it only after the owner has (they wait for its flag), so whoever
  // stores the edge, the payload was written before.
  std::vector<std::atomic<bool>> owned(kKeys * kValues);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t k = 0; k < kKeys; ++k) {
        for (uint32_t v = 0; v < kValues; ++v) {
          if ((k + v + static_cast<uint32_t>(t)) % 4 >= 2) continue;
          uint32_t owner = 0;  // the lowest thread that adds (k, v)
          while ((k + v + owner) % 4 >= 2) ++owner;
          std::atomic<bool>& flag = owned[k * kValues + v];
          if (static_cast<uint32_t>(t) == owner) {
            payload[k * kValues + v] = k + 1;
          } else {
            while (!flag.load(std::memory_order_acquire)) {
              std::this_thread::yield();
            }
          }
          absl::StatusOr<bool> r = heap->AddDep(k, v);
          ASSERT_TRUE(r.ok()) << r.status();
          if (*r) stored.fetch_add(1, std::memory_order_relaxed);
          if (static_cast<uint32_t>(t) == owner) {
            flag.store(true, std::memory_order_release);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(wrong, 0u) << "of " << seen << " edges read";
  EXPECT_EQ(stored.load(), all.size());
  for (uint32_t k = 0; k < kKeys; ++k) {
    std::vector<uint32_t> want;
    for (const auto& [kk, v] : all) {
      if (kk == k) want.push_back(v);
    }
    EXPECT_EQ(DepsOf(*heap, k), want) << "key " << k;
  }
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

}  // namespace
}  // namespace shmheap
