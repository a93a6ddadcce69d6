// The collector: compaction keeps every live value intact and in place of
// its key, reclaims every dead byte, gives the freed tail back to the OS,
// clears tombstones without breaking probe chains, uses no memory
// proportional to the heap, cannot run while a process is in scope, and a
// collector that dies mid-way leaves a heap that reports kDataLoss. A test
// that a broken collector could hang (a collection that never returns, a
// barrier that a failed worker never reaches) has a deadline of seconds.

#include "gc/collector.h"

#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/testing_hooks.h"
#include "heap/walk.h"
#include "shmheap.h"
#include "tests/allocation_counter.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::ArrayFor;
using testing::KeyName;
using testing::ValueFor;

Options GcOptions(uint64_t heap_mb = 64) {
  Options o;
  o.heap_bytes = heap_mb << 20;
  o.table_slots_log2 = 14;
  o.chunk_bytes = 64 << 10;
  o.max_sessions = 64;
  return o;
}

// Checks that `key` holds exactly ArrayFor(id, version, n).
::testing::AssertionResult Holds(const Heap& heap, uint64_t id,
                                 uint64_t version, size_t n) {
  absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(id));
  if (!v.ok()) return ::testing::AssertionFailure() << v.status();
  if (v->size() != static_cast<int64_t>(n)) {
    return ::testing::AssertionFailure() << "size " << v->size() << " != " << n;
  }
  for (size_t j = 0; j < n; ++j) {
    if ((*v)(j) != ValueFor(id, version, j)) {
      return ::testing::AssertionFailure() << "key " << id << " element " << j;
    }
  }
  return ::testing::AssertionSuccess();
}

size_t LenFor(uint64_t id) { return 1 + (id * 31) % 200; }

TEST(Collector, CompactsAndKeepsEveryLiveValue) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kKeys = 3000;
  for (int i = 0; i < kKeys; ++i) {
    std::vector<float> v = ArrayFor(i, 0, LenFor(i));
    const int64_t dims[] = {int64_t(v.size())};
    ASSERT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  }
  for (int i = 0; i < kKeys; i += 2) ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
  for (int i = 1; i < kKeys; i += 6) {
    std::vector<float> v = ArrayFor(i, 1, LenFor(i));
    const int64_t dims[] = {int64_t(v.size())};
    ASSERT_TRUE(*heap->Replace<float>(KeyName(i), v, dims));
  }
  const Stats before = heap->stats();
  EXPECT_GT(before.dead_bytes, 0u);
  EXPECT_GT(before.table_tombstones, 0u);
  absl::StatusOr<GcReport> r = heap->Collect();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ran);
  EXPECT_GT(r->blobs_moved, 0u);
  EXPECT_EQ(r->live_blobs, uint64_t{kKeys / 2});
  EXPECT_EQ(r->tombstones_cleared, uint64_t{kKeys / 2});
  EXPECT_LT(r->bytes_after, r->bytes_before);
  const Stats after = heap->stats();
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_EQ(after.live_blobs, uint64_t{kKeys / 2});
  EXPECT_EQ(after.table_tombstones, 0u);
  EXPECT_EQ(after.collections, 1u);
  // What remains dead is at most alignment padding.
  EXPECT_LE(after.dead_bytes, after.live_blobs * 56);
  EXPECT_EQ(after.heap_top, r->bytes_after);
  for (int i = 0; i < kKeys; ++i) {
    if (i % 2 == 0) {
      EXPECT_FALSE(heap->Contains(KeyName(i))) << i;
    } else {
      ASSERT_TRUE(Holds(*heap, i, i % 6 == 1 ? 1 : 0, LenFor(i)));
    }
  }
  uint64_t blobs = 0;
  ASSERT_TRUE(internal::WalkHeap(heap->segment(), [&](uint64_t,
                                                      internal::BlobHeader h) {
                if (!h.is_filler()) ++blobs;
                return true;
              }).ok());
  EXPECT_EQ(blobs, uint64_t{kKeys / 2});
  // The heap keeps working: new adds go above the new top.
  std::vector<float> v = ArrayFor(99999, 0, 10);
  const int64_t dims[] = {10};
  ASSERT_TRUE(*heap->Add<float>(KeyName(99999), v, dims));
  EXPECT_TRUE(Holds(*heap, 99999, 0, 10));
}

TEST(Collector, RefusesWhileThisProcessHoldsAPin) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok());
  const float v[] = {1};
  const int64_t dims[] = {1};
  ASSERT_TRUE(*heap->Add<float>("a", v, dims));
  {
    absl::StatusOr<ArrayView<float>> view = heap->Get<float>("a");
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(heap->Collect().status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  {
    absl::StatusOr<Pin> pin = heap->Enter();
    ASSERT_TRUE(pin.ok());
    EXPECT_EQ(heap->Collect().status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(heap->Collect().ok());
}

// Every key of a worker is owned by that worker; each cycle applies an
// operation chosen from (cycle, key) to it, so the master can replay the
// same sequence as a model and check every key after every collection.
struct ModelEntry {
  bool present = false;
  uint64_t version = 0;
};
int OpFor(int cycle, uint64_t key) {
  return static_cast<int>((key * 2654435761u + cycle * 40503u) % 5);
}

TEST(Collector, FiftyCyclesWithFourWorkersMatchAModel) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions(256));
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kWorkers = 4, kKeysPerWorker = 400, kCycles = 50;
  constexpr uint64_t kMoved = 1'000'000;  // Move targets: key + kMoved
  std::map<uint64_t, ModelEntry> model;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    // The model, replayed by the master.
    for (uint64_t key = 0; key < kWorkers * kKeysPerWorker; ++key) {
      ModelEntry& e = model[key];
      ModelEntry& m = model[key + kMoved];
      switch (OpFor(cycle, key)) {
        case 0:
          if (!e.present) e = {true, uint64_t(cycle) + 1};
          break;
        case 1:
          e.present = false;
          break;
        case 2:
          e = {true, uint64_t(cycle) + 1};
          break;
        case 3:
          if (e.present && !m.present) {
            m = e;
            e.present = false;
          }
          break;
        case 4:
          m.present = false;
          break;
      }
    }
    std::vector<int> codes = testing::RunProcesses(kWorkers, [&](int w) {
      for (uint64_t key = w * kKeysPerWorker;
           key < (w + 1) * uint64_t{kKeysPerWorker}; ++key) {
        const uint64_t version = cycle + 1;
        std::vector<float> v = ArrayFor(key, version, LenFor(key));
        const int64_t dims[] = {int64_t(v.size())};
        switch (OpFor(cycle, key)) {
          case 0:
            if (!heap->Add<float>(KeyName(key), v, dims).ok()) return 1;
            break;
          case 1: {
            absl::Status s = heap->Remove(KeyName(key));
            if (!s.ok() && !absl::IsNotFound(s)) return 2;
            break;
          }
          case 2:
            if (!heap->Replace<float>(KeyName(key), v, dims).ok()) return 3;
            break;
          case 3: {
            absl::Status s = heap->Move(KeyName(key), KeyName(key + kMoved));
            if (!s.ok() && !absl::IsNotFound(s) && !absl::IsAlreadyExists(s))
              return 4;
            break;
          }
          case 4: {
            absl::Status s = heap->Remove(KeyName(key + kMoved));
            if (!s.ok() && !absl::IsNotFound(s)) return 5;
            break;
          }
        }
      }
      return 0;
    });
    for (int c : codes) ASSERT_EQ(c, 0) << "cycle " << cycle;
    absl::StatusOr<GcReport> r = heap->Collect();
    ASSERT_TRUE(r.ok()) << r.status();
    uint64_t present = 0;
    for (const auto& [key, e] : model) {
      if (e.present) {
        ++present;
        // A moved value keeps the contents of its source key.
        const uint64_t source = key >= kMoved ? key - kMoved : key;
        absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(key));
        ASSERT_TRUE(v.ok())
            << "cycle " << cycle << " key " << key << v.status();
        ASSERT_EQ(v->size(), int64_t(LenFor(source)));
        for (int64_t j = 0; j < v->size(); ++j) {
          ASSERT_EQ((*v)(j), ValueFor(source, e.version, j))
              << "cycle " << cycle << " key " << key;
        }
      } else {
        ASSERT_FALSE(heap->Contains(KeyName(key)))
            << "cycle " << cycle << " key " << key;
      }
    }
    const Stats s = heap->stats();
    ASSERT_EQ(s.live_blobs, present) << "cycle " << cycle;
    ASSERT_EQ(s.table_tombstones, 0u) << "cycle " << cycle;
    absl::Status verified = heap->Verify();
    ASSERT_TRUE(verified.ok()) << "cycle " << cycle << ": " << verified;
  }
  ASSERT_TRUE(
      internal::WalkHeap(heap->segment(), [](uint64_t, internal::BlobHeader) {
        return true;
      }).ok());
}

uint64_t ProcStatusKb(const char* field) {
  FILE* f = std::fopen("/proc/self/status", "re");
  char line[256];
  unsigned long long v = 0;
  const size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, field, n) == 0) std::sscanf(line + n, ": %llu", &v);
  }
  std::fclose(f);
  return v;
}

// A 512 MiB heap, half dead: the collector's peak RSS grows by no more than
// the heap pages it touches plus 8 MiB (a copying collector would need the
// live half again), it makes a constant number of allocations, and the
// freed tail goes back to the OS but for the reuse slack (the default: a
// quarter of the live bytes, at least 64 MiB).
TEST(Collector, NoTemporaryCopyAndTheTailGoesBack) {
  Options o = GcOptions(600);
  o.chunk_bytes = 1 << 20;
  o.table_slots_log2 = 16;
  const std::string path =
      absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                   "/gc-big-", getpid());
  unlink(path.c_str());
  absl::StatusOr<Heap> heap = Heap::CreateFile(path, o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kBlobs = 512;  // 1 MiB each: 512 MiB
  constexpr int64_t kFloats = (1 << 20) / 4 - 64;
  // Fill in a child, so this process has not touched the heap's pages.
  std::vector<int> codes = testing::RunProcesses(1, [&](int) {
    for (int i = 0; i < kBlobs; ++i) {
      absl::StatusOr<Builder<float>> b =
          heap->Reserve<float>(KeyName(i), std::vector<int64_t>{kFloats});
      if (!b.ok()) return 1;
      std::span<float> d = b->data();
      for (int64_t j = 0; j < kFloats; j += 1024) d[j] = float(i + j);
      if (!*b->Publish()) return 2;
      if (i % 2 == 0 && !heap->Remove(KeyName(i)).ok()) return 3;
    }
    return 0;
  });
  ASSERT_EQ(codes[0], 0);
  const Stats before = heap->stats();
  ASSERT_GE(before.heap_top, uint64_t{512} << 20);
  const uint64_t hwm_before = ProcStatusKb("VmHWM");
  const uint64_t news_before = testing::Allocations();
  const size_t heap_used_before = mallinfo2().uordblks;
  absl::StatusOr<GcReport> r = heap->Collect();
  const uint64_t news = testing::Allocations() - news_before;
  const size_t heap_used_after = mallinfo2().uordblks;
  const uint64_t hwm_after = ProcStatusKb("VmHWM");
  ASSERT_TRUE(r.ok()) << r.status();
  const uint64_t touched_kb =
      (r->bytes_before + heap->segment().header().heap_start) / 1024;
  EXPECT_LT(hwm_after - hwm_before, touched_kb + 8 * 1024)
      << "VmHWM grew by " << hwm_after - hwm_before << " kB";
  EXPECT_LT(news, 16u) << "operator new calls inside Collect";
  EXPECT_LT(heap_used_after, heap_used_before + (1 << 20));
  // The segment's blocks after collection: live bytes plus metadata, +10%.
  struct stat st;
  ASSERT_EQ(0, fstat(heap->segment().fd(), &st));
  const Stats after = heap->stats();
  const uint64_t expected =
      after.live_bytes + heap->segment().header().heap_start;
  const uint64_t slack = std::max<uint64_t>(r->bytes_after / 4,
                                            CollectOptions::kMinAutoReuseSlack);
  EXPECT_LE(r->bytes_kept, slack + internal::kPageSize);
  EXPECT_GT(r->bytes_released, 0u);
  EXPECT_LE(uint64_t(st.st_blocks) * 512, expected * 11 / 10 + r->bytes_kept)
      << "blocks " << st.st_blocks * 512 << " live+meta " << expected
      << " kept " << r->bytes_kept;
  EXPECT_EQ(after.live_blobs, uint64_t{kBlobs / 2});
  for (int i = 1; i < kBlobs; i += 2) {
    absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(i));
    ASSERT_TRUE(v.ok()) << v.status();
    for (int64_t j = 0; j < kFloats; j += 1024)
      ASSERT_EQ((*v)(j), float(i + j));
  }
  unlink(path.c_str());
}

// The backed size of the segment's object, in bytes (st_blocks).
uint64_t BackedBlocks(const Heap& heap) {
  struct stat st;
  if (fstat(heap.segment().fd(), &st) != 0) return 0;
  return uint64_t(st.st_blocks) * 512;
}

// The bytes below heap_start that no write backs: the two table areas
// beyond the live table's slots, less the last page, which creation backs
// to extend the object (heap/segment.cc; gc/grow.h).
uint64_t TableAreaHoles(const Heap& heap) {
  const internal::Header& h = heap.segment().header();
  return 2 * internal::TableAreaBytes(h.max_table_slots_log2) -
         (uint64_t{1} << heap.segment().table_slots_log2()) *
             sizeof(internal::Slot) -
         internal::kPageSize;
}

// Whether every byte of [from, to) of the segment reads zero.
bool ReadsZero(const Heap& heap, uint64_t from, uint64_t to) {
  const std::byte* p = heap.segment().base();
  for (uint64_t i = from; i < to; ++i) {
    if (p[i] != std::byte{0}) return false;
  }
  return true;
}

// Fills about `mb` MiB with 64 KiB values under keys [first, first + n) and
// returns n.
int FillMb(Heap& heap, int first, int mb) {
  const int n = mb * 16;
  std::vector<float> v(16 << 10, 1.5f);
  const int64_t dims[] = {int64_t(v.size())};
  for (int i = first; i < first + n; ++i) {
    v[0] = float(i);
    if (!heap.Add<float>(KeyName(i), v, dims).ok()) return 0;
  }
  return n;
}

// Fills `mb` MiB (FillMb), removes every value but the first `keep`, and
// collects with a reuse slack of `slack_mb` MiB.
absl::StatusOr<GcReport> FillDropCollect(Heap& heap, int mb, int keep,
                                         uint64_t slack_mb) {
  const int n = FillMb(heap, 0, mb);
  if (n == 0) return absl::InternalError("fill failed");
  for (int i = keep; i < n; ++i) {
    if (absl::Status s = heap.Remove(KeyName(i)); !s.ok()) return s;
  }
  CollectOptions co;
  co.reuse_slack_bytes = slack_mb << 20;
  return heap.Collect(co);
}

// Page reuse (issue 15): a collection keeps the freed pages up to its slack
// backed and zeroed, records their end in Header::reuse_end, and returns
// only the pages above to the OS; another process then writes into the kept
// pages without backing anything new (st_blocks does not grow), and past
// them backs as before (st_blocks grows).
TEST(Collector, KeptPagesAreReusedByAnotherProcess) {
  Options o = GcOptions(512);
  o.chunk_bytes = 1 << 20;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  // The first 16 values (1 MiB) stay live.
  absl::StatusOr<GcReport> r = FillDropCollect(*heap, 96, 16, 32);
  ASSERT_TRUE(r.ok()) << r.status();
  CollectOptions co;
  co.reuse_slack_bytes = uint64_t{32} << 20;
  const internal::Header& h = heap->segment().header();
  const uint64_t top = h.top.load();
  const uint64_t reuse_end = h.reuse_end.load();
  EXPECT_EQ(reuse_end,
            internal::AlignUp(top + co.reuse_slack_bytes, internal::kPageSize));
  EXPECT_EQ(r->bytes_kept, reuse_end - top);
  EXPECT_GE(r->bytes_released, uint64_t{60} << 20);
  EXPECT_TRUE(ReadsZero(*heap, top, reuse_end))
      << "the kept pages must read zero, as fresh ones do";
  // Live bytes + metadata (less the table areas' holes) + the slack, and a
  // page of rounding.
  const uint64_t blocks = BackedBlocks(*heap);
  const uint64_t backed = top - TableAreaHoles(*heap) + co.reuse_slack_bytes;
  EXPECT_LE(blocks, backed + internal::kPageSize);
  EXPECT_GE(blocks, backed - internal::kPageSize);
  // Another process writes 24 MiB: inside the kept pages.
  std::vector<int> codes = testing::RunProcesses(
      1, [&](int) { return FillMb(*heap, 100000, 24) > 0 ? 0 : 1; });
  ASSERT_EQ(codes[0], 0);
  EXPECT_LE(BackedBlocks(*heap), blocks + (uint64_t{1} << 20))
      << "writes into kept pages backed new memory";
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  // And 24 MiB more: past the kept pages, backed as before.
  codes = testing::RunProcesses(
      1, [&](int) { return FillMb(*heap, 200000, 24) > 0 ? 0 : 1; });
  ASSERT_EQ(codes[0], 0);
  EXPECT_GE(BackedBlocks(*heap), blocks + (uint64_t{12} << 20));
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  std::vector<float> want(16 << 10, 1.5f);
  for (int base : {0, 100000, 200000}) {
    for (int i = base; i < base + (base == 0 ? 16 : 24 * 16); ++i) {
      absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(i));
      ASSERT_TRUE(v.ok()) << i << ": " << v.status();
      ASSERT_EQ((*v)(0), float(i));
      ASSERT_EQ((*v)(1), 1.5f);
    }
  }
  // A slack of 0 gives every freed page back.
  for (int i = 100000; i < 100000 + 24 * 16; ++i) {
    ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
  }
  co.reuse_slack_bytes = 0;
  r = heap->Collect(co);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->bytes_kept, internal::kPageSize);
  EXPECT_EQ(h.reuse_end.load(),
            internal::AlignUp(h.top.load(), internal::kPageSize));
}

// Kept pages take no new memory, so the memory floor does not refuse them;
// past them the floor applies as before: kResourceExhausted, never SIGBUS.
TEST(Collector, KeptPagesNeedNoFloorAndThePagesPastThemKeepIt) {
  const std::string name = absl::StrCat("shmheap-gc-floor-", getpid());
  // A failed earlier run in the same pid namespace may have left it.
  Heap::UnlinkNamed(name).IgnoreError();
  Options o = GcOptions(256);
  o.chunk_bytes = 1 << 20;
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  ASSERT_TRUE(FillDropCollect(*heap, 32, 0, 8).ok());
  // A floor above any machine's memory, for processes that attach now.
  heap->segment().header().min_available_bytes = uint64_t{1} << 47;
  std::vector<int> codes = testing::RunProcesses(1, [&](int) {
    absl::StatusOr<Heap> other = Heap::OpenNamed(name);
    if (!other.ok()) return 1;
    if (FillMb(*other, 1000, 6) == 0) return 2;  // inside the kept 8 MiB
    std::vector<float> v(16 << 10, 1.5f);
    const int64_t dims[] = {int64_t(v.size())};
    for (int i = 0; i < 64; ++i) {
      absl::StatusOr<bool> added =
          other->Add<float>(KeyName(5000 + i), v, dims);
      if (!added.ok()) {
        return added.status().code() == absl::StatusCode::kResourceExhausted
                   ? 0
                   : 3;
      }
    }
    return 4;  // 4 MiB past the kept pages were accepted under the floor
  });
  EXPECT_EQ(codes[0], 0);
  heap->segment().header().min_available_bytes = o.min_available_bytes;
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  Heap::UnlinkNamed(name).IgnoreError();
}

// A writer killed between reusing kept pages and publishing (its chunk
// claimed but not recorded; a blob written but not published; a record's
// header not yet written) leaves a heap that parses, verifies and collects,
// with every published value intact: kept pages read zero, as the walker's
// recognition of an unrecorded claim requires.
TEST(Collector, WriterKilledInKeptPagesLeavesAParseableHeap) {
  for (internal::TestingPoint point :
       {internal::TestingPoint::kTopAdvanced,
        internal::TestingPoint::kChunkClaimed,
        internal::TestingPoint::kRecordHeaderUnwritten,
        internal::TestingPoint::kBlobWritten}) {
    SCOPED_TRACE(static_cast<int>(point));
    Options o = GcOptions(256);
    o.chunk_bytes = 256 << 10;
    absl::StatusOr<Heap> heap = Heap::Create(o);
    ASSERT_TRUE(heap.ok()) << heap.status();
    const int n = FillMb(*heap, 0, 24);
    ASSERT_GT(n, 0);
    for (int i = 0; i < n; i += 2) ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
    ASSERT_TRUE(heap->Collect().ok());
    ASSERT_GT(heap->segment().header().reuse_end.load(),
              heap->segment().header().top.load());
    static internal::TestingPoint g_kill_at;
    g_kill_at = point;
    std::vector<int> codes = testing::RunProcesses(1, [&](int) {
      // Two values in, so the kill lands in a chunk of the kept pages (the
      // first chunk of a joiner, or the second).
      static int seen;
      seen = 0;
      internal::SetTestingHook([](internal::TestingPoint p) {
        if (p == g_kill_at && ++seen == 3) raise(SIGKILL);
      });
      FillMb(*heap, 100000, 4);
      return 0;
    });
    EXPECT_EQ(codes[0], 1000 + SIGKILL);
    ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
    absl::StatusOr<GcReport> r = heap->Collect();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
    for (int i = 1; i < n; i += 2) {
      absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(i));
      ASSERT_TRUE(v.ok()) << i << ": " << v.status();
      ASSERT_EQ((*v)(0), float(i));
    }
    const Stats s = heap->stats();
    EXPECT_EQ(s.dead_bytes, 0u);
    EXPECT_EQ(s.heap_top, s.live_bytes);
  }
}

// The slide finds a blob's slot by the hash in the blob's word 1: a blob
// whose word 1 no longer matches its slot would be taken for garbage and
// moved over, leaving its slot pointing at whatever came there. The slide
// counts the blobs it finds against the slots, so this is kDataLoss (the
// heap marked damaged), not a slot silently left dangling.
TEST(Collector, ASlotWhoseBlobTheSlideCannotFindIsDataLoss) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::vector<float> v = ArrayFor(1, 0, 8);
  const int64_t dims[] = {8};
  ASSERT_TRUE(*heap->Add<float>(KeyName(1), v, dims));  // at heap_start
  ASSERT_TRUE(*heap->Add<float>(KeyName(2), v, dims));
  ASSERT_TRUE(heap->Remove(KeyName(2)).ok());
  const uint64_t start = heap->segment().header().heap_start;
  std::byte* word1 = heap->segment().base() + start + 8;
  uint64_t hash;
  std::memcpy(&hash, word1, 8);
  hash ^= 1;
  std::memcpy(word1, &hash, 8);
  absl::StatusOr<GcReport> r = heap->Collect();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_EQ(heap->segment().header().phase.load(), internal::kPhaseDamaged);
}

// A worker that holds a view blocks collection until the deadline, and
// nothing changes; once it is killed (still pinned), collection proceeds.
TEST(Collector, DeadlineWithAPinnedWorkerThenKilledWorkerDoesNotBlock) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok());
  for (int i = 0; i < 200; ++i) {
    std::vector<float> v = ArrayFor(i, 0, LenFor(i));
    const int64_t dims[] = {int64_t(v.size())};
    ASSERT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  }
  for (int i = 0; i < 200; i += 3) ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
  const Stats before = heap->stats();
  int ready[2];
  ASSERT_EQ(0, pipe(ready));
  const pid_t child = fork();
  if (child == 0) {
    absl::StatusOr<ArrayView<float>> v = heap->Get<float>(KeyName(1));
    const char c = v.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    for (;;) pause();  // holds the view until killed
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  CollectOptions opts;
  opts.deadline = std::chrono::milliseconds(300);
  absl::StatusOr<GcReport> r = heap->Collect(opts);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  const Stats unchanged = heap->stats();
  EXPECT_EQ(unchanged.heap_top, before.heap_top);
  EXPECT_EQ(unchanged.dead_bytes, before.dead_bytes);
  for (int i = 0; i < 200; ++i) {
    if (i % 3 == 0) {
      EXPECT_FALSE(heap->Contains(KeyName(i)));
    } else {
      ASSERT_TRUE(Holds(*heap, i, 0, LenFor(i)));
    }
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  r = heap->Collect(opts);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ran);
  for (int i = 1; i < 200; i += 3) ASSERT_TRUE(Holds(*heap, i, 0, LenFor(i)));
  close(ready[0]);
  close(ready[1]);
}

// A collector killed mid-compaction: the next attach and the next
// operation report kDataLoss instead of reading moved data.
TEST(Collector, CollectorKilledMidCompactionIsRolledForward) {
  const std::string name = absl::StrCat("shmheap-gc-kill-", getpid());
  Heap::UnlinkNamed(name).IgnoreError();
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, GcOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < 100; ++i) {
    std::vector<float> v = ArrayFor(i, 0, LenFor(i));
    const int64_t dims[] = {int64_t(v.size())};
    ASSERT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  }
  for (int i = 0; i < 100; i += 2) ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
  std::vector<int> codes = testing::RunProcesses(1, [&](int) {
    CollectOptions opts;
    opts.testing_mid_compaction_hook = [] { raise(SIGKILL); };
    (void)heap->Collect(opts);
    return 0;  // not reached
  });
  EXPECT_EQ(codes[0], 1000 + SIGKILL);
  // Attaching finishes the dead collector's work.
  absl::StatusOr<Heap> other = Heap::OpenNamed(name);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(heap->segment().header().phase.load(), internal::kPhaseIdle);
  EXPECT_EQ(heap->segment().header().collections.load(), 1u);
  ASSERT_TRUE(heap->Verify().ok()) << heap->Verify();
  for (int i = 0; i < 100; ++i) {
    if (i % 2 == 0) {
      EXPECT_FALSE(heap->Contains(KeyName(i))) << i;
      continue;
    }
    absl::StatusOr<ArrayView<float>> got = heap->Get<float>(KeyName(i));
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<float> want = ArrayFor(i, 0, LenFor(i));
    ASSERT_EQ(got->size(), static_cast<int64_t>(want.size()));
    for (size_t j = 0; j < want.size(); ++j) ASSERT_EQ(got->flat()[j], want[j]);
  }
  const Stats s = heap->stats();
  EXPECT_EQ(s.live_blobs, 50u);
  EXPECT_EQ(s.dead_bytes, 0u);
  EXPECT_EQ(s.table_tombstones, 0u);
  EXPECT_EQ(s.heap_top, s.live_bytes);
  absl::StatusOr<GcReport> again = heap->Collect();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->bytes_moved, 0u) << "a compact heap is left alone";
  Heap::UnlinkNamed(name).IgnoreError();
}

// A collector that dies before moving anything (during the handshake) does
// not wedge the heap: sessions reopen the world and carry on.
TEST(Collector, CollectorDeadBeforeCompactionReopensTheWorld) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok());
  const float v[] = {5};
  const int64_t dims[] = {1};
  ASSERT_TRUE(*heap->Add<float>("a", v, dims));
  // Simulate: a dead pid holds the lock with the epoch odd.
  internal::Header& h = heap->segment().header();
  std::vector<int> dead = testing::RunProcesses(1, [](int) { return 0; });
  (void)dead;
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  h.gc_lock.store(static_cast<uint32_t>(gone));
  h.gc_epoch.fetch_add(1);
  absl::StatusOr<ArrayView<float>> got = heap->Get<float>("a");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)(0), 5.0f);
  EXPECT_EQ(h.gc_epoch.load() % 2, 0u);
}

// Algorithm R by hand, on a 16-slot table whose one cluster runs from 13
// around the end to 4, with one tombstone, at 14. Scanning on from the hole
// at i, an entry at j stays exactly when its home lies cyclically in
// (i, j]: across the wrap (j < i) that is "home > i or home <= j".
//   slot 15  home 15  stays (15 > 14)
//   slot  0  home  0  stays (at its home: home == j)
//   slot  1  home 15  stays (15 > 14)
//   slot  2  home  0  stays (0 <= 2)
//   slot  3  home 14  moves into the hole at 14, leaving one at 3
//   slot  4  home  1  moves into the hole at 3
// Each of the stays is a case that a wrong wrap condition (&& for ||, <
// for <=, i <= home for i < home, or moving every entry) gets wrong, and
// the test checks the whole table afterwards, slot by slot.
TEST(Collector, ClearTombstonesKeepsProbeChainsAcrossTheWrap) {
  testing::Watchdog watchdog(std::chrono::seconds(30),
                             "ClearTombstonesKeepsProbeChainsAcrossTheWrap");
  std::vector<internal::Slot> slots(16);
  for (auto& s : slots) {
    s.hash.store(0);
    s.addr.store(0);
  }
  internal::Table table(slots.data(), 4);
  // Homes in insertion order; hash k has home homes[k] (its low 4 bits) and
  // address 8 * (k + 1).
  const uint64_t homes[] = {13, 14, 15, 0, 15, 0, 14, 1};
  std::vector<uint64_t> hashes;
  for (uint64_t k = 0; k < std::size(homes); ++k) {
    hashes.push_back((k + 1) * 16 + homes[k]);
    bool claimed;
    absl::StatusOr<uint64_t> i = table.FindOrClaim(hashes[k], &claimed);
    ASSERT_TRUE(i.ok());
    ASSERT_TRUE(claimed);
    ASSERT_EQ(*i, (13 + k) % 16) << "the cluster is 13, 14, ..., 15, 0, ...";
    uint64_t zero = 0;
    ASSERT_TRUE(table.CasAddr(*i, zero, 8 * (k + 1)));
  }
  uint64_t addr = 8 * 2;  // the entry at 14, home 14
  ASSERT_TRUE(table.CasAddr(14, addr, 0));
  EXPECT_EQ(internal::ClearTombstones(slots.data(), 15), 1u);
  // slot -> index into hashes of the entry that must sit there, or -1.
  int expected[16];
  std::fill(std::begin(expected), std::end(expected), -1);
  expected[13] = 0;
  expected[14] = 6;  // moved from 3
  expected[15] = 2;
  expected[0] = 3;
  expected[1] = 4;
  expected[2] = 5;
  expected[3] = 7;  // moved from 4
  for (int i = 0; i < 16; ++i) {
    const int k = expected[i];
    EXPECT_EQ(slots[i].hash.load(), k < 0 ? 0 : hashes[k]) << "slot " << i;
    EXPECT_EQ(slots[i].addr.load(), k < 0 ? 0 : 8 * (k + 1)) << "slot " << i;
  }
  EXPECT_FALSE(table.Find(hashes[1]).has_value());
  for (int k : {0, 2, 3, 4, 5, 6, 7}) {
    std::optional<uint64_t> i = table.Find(hashes[k]);
    ASSERT_TRUE(i.has_value()) << k;
    EXPECT_EQ(table.LoadAddr(*i), 8 * (k + 1u)) << k;
  }
}

// Algorithm R against the definition of linear probing, on 20,000 random
// 8-slot tables (every cluster shape, wrapping or not, up to a full table,
// with any subset of the entries removed): ClearTombstones returns the
// number of tombstones, none is left, the occupied slots are exactly the
// live entries, every live entry is found (Table::Find) with its own
// address, and no removed one is.
TEST(Collector, ClearTombstonesOnRandomTables) {
  testing::Watchdog watchdog(std::chrono::seconds(30),
                             "ClearTombstonesOnRandomTables");
  constexpr uint32_t kLog2 = 3;
  constexpr uint64_t kSlots = uint64_t{1} << kLog2, kMask = kSlots - 1;
  std::mt19937_64 rng(20261122);
  for (int round = 0; round < 20000; ++round) {
    std::vector<internal::Slot> slots(kSlots);
    for (auto& s : slots) {
      s.hash.store(0);
      s.addr.store(0);
    }
    internal::Table table(slots.data(), kLog2);
    auto describe = [&] {
      std::string d = absl::StrCat("round ", round, ", slots (home:addr)");
      for (const internal::Slot& s : slots) {
        absl::StrAppend(&d, " ", s.hash.load() & kMask, ":", s.addr.load());
      }
      return d;
    };
    // Entry k: a distinct nonzero hash with a random home, address 8(k+1).
    const uint64_t n = 1 + rng() % kSlots;
    std::vector<uint64_t> hashes;
    for (uint64_t k = 0; k < n; ++k) {
      hashes.push_back(((k + 1) << kLog2) | (rng() & kMask));
      bool claimed;
      absl::StatusOr<uint64_t> i = table.FindOrClaim(hashes[k], &claimed);
      ASSERT_TRUE(i.ok() && claimed) << describe();
      uint64_t zero = 0;
      ASSERT_TRUE(table.CasAddr(*i, zero, 8 * (k + 1)));
    }
    std::vector<bool> removed(n);
    uint64_t tombstones = 0;
    for (uint64_t k = 0; k < n; ++k) {
      if (rng() % 2 == 0) continue;
      uint64_t addr = 8 * (k + 1);
      ASSERT_TRUE(table.CasAddr(*table.Find(hashes[k]), addr, 0));
      removed[k] = true;
      ++tombstones;
    }
    const std::string before = describe();
    ASSERT_EQ(internal::ClearTombstones(slots.data(), kMask), tombstones)
        << before;
    uint64_t used = 0;
    for (const internal::Slot& s : slots) {
      if (s.hash.load() == 0) continue;
      ++used;
      ASSERT_NE(s.addr.load(), 0u) << "a tombstone is left: " << describe();
    }
    ASSERT_EQ(used, n - tombstones) << before << " -> " << describe();
    for (uint64_t k = 0; k < n; ++k) {
      const std::optional<uint64_t> i = table.Find(hashes[k]);
      if (removed[k]) {
        ASSERT_FALSE(i.has_value()) << before << " -> " << describe();
      } else {
        ASSERT_TRUE(i.has_value())
            << "entry " << k << " unreachable: " << before << " -> "
            << describe();
        ASSERT_EQ(table.LoadAddr(*i), 8 * (k + 1)) << describe();
      }
    }
  }
}

// Twenty rounds of 300 adds and six removes in seven, on a 1024-slot table
// (long clusters, some wrapping around the end), collecting whenever the
// tombstones fill the table: afterwards the table holds exactly the live
// keys and no tombstone, and every live key holds its value. A broken
// ClearTombstones can loop forever, hence the watchdog.
TEST(Collector, TombstonesClearedAfterRemoveHeavyChurn) {
  testing::Watchdog watchdog(std::chrono::seconds(30),
                             "TombstonesClearedAfterRemoveHeavyChurn");
  Options o = GcOptions();
  o.table_slots_log2 = 10;  // 1024 slots: long clusters, wraparound
  // And they stay 1024: a table that grew would shorten the clusters.
  o.max_table_slots_log2 = 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok());
  std::map<int, int> live;  // key -> version
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 300; ++i) {
      const int key = round * 300 + i;
      std::vector<float> v = ArrayFor(key, round, 4);
      const int64_t dims[] = {4};
      absl::StatusOr<bool> r = heap->Add<float>(KeyName(key), v, dims);
      if (!r.ok()) {
        // Table full of tombstones: collect and retry.
        ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
        ASSERT_TRUE(heap->Collect().ok());
        ASSERT_TRUE(*heap->Add<float>(KeyName(key), v, dims));
      }
      live[key] = round;
    }
    // Remove most of them.
    for (auto it = live.begin(); it != live.end();) {
      if (it->first % 7 != 0) {
        ASSERT_TRUE(heap->Remove(KeyName(it->first)).ok());
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    if (live.size() > 500) break;
  }
  ASSERT_TRUE(heap->Collect().ok());
  EXPECT_EQ(heap->stats().table_tombstones, 0u);
  uint64_t tombstones = 0, used = 0;
  internal::Slot* slots = heap->segment().slots();
  for (int i = 0; i < 1024; ++i) {
    if (slots[i].hash.load() != 0) ++used;
    if (slots[i].hash.load() != 0 && slots[i].addr.load() == 0) ++tombstones;
  }
  EXPECT_EQ(tombstones, 0u);
  EXPECT_EQ(used, live.size());
  for (const auto& [key, round] : live)
    ASSERT_TRUE(Holds(*heap, key, round, 4));
}

TEST(Collector, MaybeCollectFollowsTheOverheadPolicy) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok());
  std::vector<float> v(1000, 1.0f);
  const int64_t dims[] = {1000};
  for (int i = 0; i < 400; ++i)
    ASSERT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  // Little garbage: nothing to do.
  ASSERT_TRUE(heap->Remove(KeyName(0)).ok());
  absl::StatusOr<GcReport> r = heap->MaybeCollect(Heap::kGentle);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ran);
  // 30% dead: the aggressive preset (1.2) collects, the gentle (2.0) not.
  for (int i = 1; i < 120; ++i) ASSERT_TRUE(heap->Remove(KeyName(i)).ok());
  r = heap->MaybeCollect(Heap::kGentle);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ran);
  r = heap->MaybeCollect(Heap::kAggressive);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ran);
  EXPECT_EQ(heap->stats().live_blobs, 280u);
}

}  // namespace
}  // namespace shmheap

namespace shmheap {
namespace {

// Concurrent collections: when several processes call Collect at once,
// exactly one runs at a time (the collector lock); each of the others
// either waits for the running one and returns ran == false, or runs after
// it. Nobody fails, every value stays intact, and the collections counter
// equals the number of reports with ran == true. The workers have 30 s (a
// run takes well under one): a collection that never returns, or a worker
// that fails and so never reaches the barrier the others spin on, fails the
// test then, with testing::kTimedOut.
TEST(Collector, ConcurrentCollectCallsRunOneAtATime) {
  absl::StatusOr<Heap> heap = Heap::Create(GcOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kProcesses = 4, kRounds = 20, kKeys = 400;
  testing::SharedArray<std::atomic<int>> ran(kProcesses);
  // A reusable barrier: round r waits for (r + 1) * kProcesses arrivals.
  testing::SharedArray<std::atomic<int>> arrived(1);
  for (uint64_t id = 0; id < kKeys; ++id) {
    const std::vector<float> v = ArrayFor(id, 0, LenFor(id));
    const int64_t dims[] = {static_cast<int64_t>(v.size())};
    ASSERT_TRUE(*heap->Add<float>(KeyName(id), v, dims));
  }
  auto worker = [&](int p) {
    for (int round = 0; round < kRounds; ++round) {
      // Make garbage: each process replaces its own quarter of the keys.
      for (uint64_t id = p; id < kKeys; id += kProcesses) {
        const std::vector<float> v = ArrayFor(id, round + 1, LenFor(id));
        const int64_t dims[] = {static_cast<int64_t>(v.size())};
        if (!heap->Replace<float>(KeyName(id), v, dims).ok()) return 1;
      }
      arrived[0].fetch_add(1);  // seq_cst, as everything here
      while (arrived[0].load() < (round + 1) * kProcesses) {
        std::this_thread::yield();
      }
      absl::StatusOr<GcReport> gc = heap->Collect();
      if (!gc.ok()) return 2;
      if (gc->ran) ran[p].fetch_add(1);
    }
    return 0;
  };
  const std::vector<int> codes =
      testing::RunProcessesWithin(kProcesses, worker, std::chrono::seconds(30));
  for (int c : codes) EXPECT_EQ(c, 0) << "kTimedOut = " << testing::kTimedOut;
  int total = 0;
  for (int p = 0; p < kProcesses; ++p) total += ran[p].load();
  EXPECT_GE(total, 1);
  EXPECT_EQ(heap->stats().collections, static_cast<uint64_t>(total));
  for (uint64_t id = 0; id < kKeys; ++id) {
    EXPECT_TRUE(Holds(*heap, id, kRounds, LenFor(id))) << id;
  }
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
}

}  // namespace
}  // namespace shmheap
