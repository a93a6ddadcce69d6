// Verify (fsck) passes on healthy heaps, including after churn and
// collection, and reports kDataLoss naming the offset for each kind of
// corruption: a slot pointing inside a record, a slot pointing outside the
// heap, a stored hash that disagrees with its slot, two slots sharing a
// blob, a record header that does not parse, and a size that disagrees with
// the blob's kind and dims.

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using testing::ArrayFor;
using testing::KeyName;

struct Fixture {
  Heap heap;
  internal::Table table;
};

Heap MakeHeap() {
  Options o;
  o.heap_bytes = 32 << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  EXPECT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < 100; ++i) {
    std::vector<float> v = ArrayFor(i, 0, 1 + i % 17);
    const int64_t dims[] = {int64_t(v.size())};
    EXPECT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  }
  return *std::move(heap);
}

internal::Slot& SlotOf(const Heap& heap, const std::string& key) {
  internal::Table table(heap.segment().slots(),
                        heap.segment().header().table_slots_log2);
  return table.slot(*table.Find(heap.Hash(key)));
}

void ExpectDataLoss(const Heap& heap, const std::string& needle) {
  absl::Status s = heap.Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST(Verify, HealthyHeapsPass) {
  Heap heap = MakeHeap();
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  for (int i = 0; i < 100; i += 3) ASSERT_TRUE(heap.Remove(KeyName(i)).ok());
  for (int i = 1; i < 100; i += 5) {
    std::vector<float> v = ArrayFor(i, 1, 40);
    const int64_t dims[] = {4, 10};
    ASSERT_TRUE(heap.Replace<float>(KeyName(i), v, dims).ok());
  }
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  ASSERT_TRUE(heap.Collect().ok());
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
}

TEST(Verify, SlotPointingInsideARecord) {
  Heap heap = MakeHeap();
  SlotOf(heap, KeyName(5)).addr.fetch_add(8);
  ExpectDataLoss(heap, "points inside a record");
}

TEST(Verify, SlotPointingOutsideTheHeap) {
  Heap heap = MakeHeap();
  SlotOf(heap, KeyName(5)).addr.store(uint64_t{1} << 40);
  ExpectDataLoss(heap, "outside the heap");
}

TEST(Verify, StoredHashDisagreesWithSlot) {
  Heap heap = MakeHeap();
  const uint64_t addr =
      internal::AddrOffset(SlotOf(heap, KeyName(7)).addr.load());
  const uint64_t wrong = 12345;
  std::memcpy(heap.segment().base() + addr + 8, &wrong, 8);
  ExpectDataLoss(heap, "stored hash");
}

TEST(Verify, TwoSlotsShareABlob) {
  Heap heap = MakeHeap();
  SlotOf(heap, KeyName(3)).addr.store(SlotOf(heap, KeyName(4)).addr.load());
  ExpectDataLoss(heap, "");
}

TEST(Verify, RecordHeaderDoesNotParse) {
  Heap heap = MakeHeap();
  const uint64_t addr =
      internal::AddrOffset(SlotOf(heap, KeyName(9)).addr.load());
  const uint64_t zero = 0;
  std::memcpy(heap.segment().base() + addr, &zero, 8);
  ExpectDataLoss(heap, "no record header");
}

TEST(Verify, SizeDisagreesWithDims) {
  Heap heap = MakeHeap();
  const uint64_t addr =
      internal::AddrOffset(SlotOf(heap, KeyName(16)).addr.load());
  // dims[0] lives at +16: claim more elements than the blob holds.
  const int64_t dim = 1000;
  std::memcpy(heap.segment().base() + addr + 16, &dim, 8);
  ExpectDataLoss(heap, "does not match");
}

}  // namespace
}  // namespace shmheap
