// Heap::Clear in one process (gc/clear.h).
//
// What it proves: Clear empties the heap in place (every value, counters
// made by FetchAdd among them, the table's slots, the dependency table's
// edges, removed ones too, the statistics), keeps
// the table's size and the stop flag, leaves a heap that verifies and
// works with no re-attach (Get finds nothing, Add and FetchAdd start
// afresh, a session's open chunk is gone), that a second Clear of the
// empty heap changes nothing, and that a Clear from inside this process's
// own scope is refused with nothing changed. Every value read back is
// checked element by element.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::ArrayFor;
using testing::KeyName;

constexpr int kKeys = 300;

Heap MakeHeap() {
  Options options;
  options.heap_bytes = uint64_t{64} << 20;
  options.table_slots_log2 = 10;
  options.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(options);
  EXPECT_TRUE(heap.ok()) << heap.status();
  return *std::move(heap);
}

void Fill(Heap& heap, uint64_t version) {
  for (int i = 0; i < kKeys; ++i) {
    const std::vector<float> v = ArrayFor(i, version, 1 + i % 40);
    const int64_t dims[] = {static_cast<int64_t>(v.size())};
    absl::StatusOr<bool> r = heap.Replace<float>(KeyName(i), v, dims);
    ASSERT_TRUE(r.ok()) << r.status();
  }
}

void ExpectValues(const Heap& heap, uint64_t version) {
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<ArrayView<float>> v = heap.Get<float>(KeyName(i));
    ASSERT_TRUE(v.ok()) << KeyName(i) << ": " << v.status();
    const std::vector<float> want = ArrayFor(i, version, 1 + i % 40);
    ASSERT_EQ(v->size(), static_cast<int64_t>(want.size()));
    for (size_t j = 0; j < want.size(); ++j) {
      ASSERT_EQ(v->flat()[j], want[j]) << KeyName(i) << " element " << j;
    }
  }
}

void ExpectEmpty(const Heap& heap, uint64_t table_slots) {
  const Stats s = heap.stats();
  EXPECT_EQ(s.live_blobs, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.dead_bytes, 0u);
  EXPECT_EQ(s.heap_top, 0u);
  EXPECT_EQ(s.table_used, 0u);
  EXPECT_EQ(s.table_tombstones, 0u);
  EXPECT_EQ(s.table_slots, table_slots);
  const internal::Header& h = heap.segment().header();
  EXPECT_EQ(h.top.load(), h.heap_start);
  EXPECT_EQ(h.phase.load(), internal::kPhaseIdle);
  EXPECT_EQ(h.gc_epoch.load() % 2, 0u);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_FALSE(heap.Contains(KeyName(i))) << KeyName(i);
    EXPECT_EQ(heap.Get<float>(KeyName(i)).status().code(),
              absl::StatusCode::kNotFound);
  }
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
}

TEST(Clear, EmptiesKeysCountersAndStats) {
  Heap heap = MakeHeap();
  Fill(heap, 1);
  Fill(heap, 2);  // dead bytes too
  for (int c = 0; c < 5; ++c) {
    for (int n = 0; n < 7; ++n) {
      ASSERT_EQ(*heap.FetchAdd("counter" + std::to_string(c)), n);
    }
  }
  ASSERT_TRUE(heap.Remove(KeyName(0)).ok());  // a tombstone
  // Dependency edges, a removed one among them (it keeps its slot).
  for (uint32_t v = 1; v <= 20; ++v) ASSERT_TRUE(*heap.AddDep(7, v));
  ASSERT_TRUE(*heap.AddDep(8, 1));
  ASSERT_EQ(*heap.RemoveDeps(8), 1u);
  ASSERT_EQ(heap.stats().dep_used, 21u);
  heap.RequestStop();
  const uint64_t slots = heap.stats().table_slots;
  const uint64_t collections = heap.stats().collections;
  const uint64_t top_before = heap.stats().heap_top;

  absl::StatusOr<GcReport> r = heap.Clear();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ran);
  EXPECT_EQ(r->bytes_before, top_before);
  EXPECT_EQ(r->bytes_after, 0u);
  EXPECT_EQ(r->live_blobs, 0u);
  EXPECT_EQ(r->bytes_kept + r->bytes_released, top_before);
  EXPECT_EQ(r->table_slots_after, slots);
  ExpectEmpty(heap, slots);
  for (int c = 0; c < 5; ++c) {
    EXPECT_FALSE(heap.Contains("counter" + std::to_string(c)));
  }
  EXPECT_EQ(heap.stats().dep_used, 0u);
  EXPECT_EQ(heap.stats().dep_removed, 0u);
  EXPECT_TRUE(heap.GetDeps(7)->empty());
  EXPECT_TRUE(heap.GetDeps(8)->empty());
  // The stop flag is a control word, not data; Clear is not a collection.
  EXPECT_TRUE(heap.StopRequested());
  EXPECT_EQ(heap.stats().collections, collections);

  // The heap works with no re-attach: counters start again at 0, values
  // are added anew (in a new chunk: the old one was forgotten).
  EXPECT_EQ(*heap.FetchAdd("counter0"), 0);
  EXPECT_EQ(*heap.FetchAdd("counter0"), 1);
  EXPECT_TRUE(*heap.AddDep(7, 1));  // stored anew
  EXPECT_EQ(*heap.GetDeps(7), std::vector<uint32_t>{1});
  Fill(heap, 3);
  ExpectValues(heap, 3);
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
  EXPECT_EQ(heap.stats().live_blobs, kKeys + 1u);
}

TEST(Clear, SecondClearOfAnEmptyHeapChangesNothing) {
  Heap heap = MakeHeap();
  Fill(heap, 1);
  ASSERT_TRUE(heap.Clear().ok());
  const uint64_t slots = heap.stats().table_slots;
  ExpectEmpty(heap, slots);
  absl::StatusOr<GcReport> r = heap.Clear();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes_before, 0u);
  EXPECT_EQ(r->bytes_kept, 0u);
  EXPECT_EQ(r->bytes_released, 0u);
  ExpectEmpty(heap, slots);
  Fill(heap, 2);
  ExpectValues(heap, 2);
}

TEST(Clear, KeepsWhatTheReuseSlackAsksFor) {
  Heap heap = MakeHeap();
  Fill(heap, 1);
  const uint64_t top = heap.stats().heap_top;
  ASSERT_GT(top, 2 * internal::kPageSize);
  CollectOptions options;
  options.reuse_slack_bytes = internal::kPageSize;
  absl::StatusOr<GcReport> r = heap.Clear(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes_kept, internal::kPageSize);
  EXPECT_EQ(r->bytes_released, top - internal::kPageSize);
  const internal::Header& h = heap.segment().header();
  EXPECT_EQ(h.reuse_end.load(), h.heap_start + internal::kPageSize);
  options.reuse_slack_bytes = 0;
  Fill(heap, 2);
  r = heap.Clear(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes_kept, 0u);
  ExpectEmpty(heap, heap.stats().table_slots);
}

TEST(Clear, RefusedInsideOwnScope) {
  Heap heap = MakeHeap();
  Fill(heap, 1);
  {
    absl::StatusOr<ReadScope> scope = heap.Read();
    ASSERT_TRUE(scope.ok());
    absl::StatusOr<GcReport> r = heap.Clear();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  ExpectValues(heap, 1);
  EXPECT_TRUE(heap.Verify().ok());
}

TEST(Clear, MovedFromHeap) {
  Heap heap = MakeHeap();
  Heap other = std::move(heap);
  EXPECT_EQ(heap.Clear().status().code(),  // NOLINT(bugprone-use-after-move)
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(other.Clear().ok());
}

}  // namespace
}  // namespace shmheap
