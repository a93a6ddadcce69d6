// Verify (fsck) passes on healthy heaps, including after churn and
// collection, and reports kDataLoss for each kind of corruption with the
// message of the check that exists to catch it, compared in full (the
// offset, the slot and the figures it names): a slot pointing inside a
// record, a slot pointing outside the heap, an empty slot with an address,
// a slot unreachable on its probe chain, a stored hash that disagrees with
// its slot, a key tag that disagrees with the stored key, two slots sharing
// a blob, a record header that does not parse, a size that disagrees with
// the blob's kind and dims, and counters that disagree with the table.
// Each corruption is planted so that every check before the one it is
// meant for passes: with that check removed, Verify would report something
// else, or nothing. Corruptions are planted with the default (seq_cst)
// atomic order, before Verify runs in the same thread.

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

constexpr int kKeys = 100;

Heap MakeHeap() {
  Options o;
  o.heap_bytes = 32 << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  EXPECT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < kKeys; ++i) {
    std::vector<float> v = ArrayFor(i, 0, 1 + i % 17);
    const int64_t dims[] = {int64_t(v.size())};
    EXPECT_TRUE(*heap->Add<float>(KeyName(i), v, dims));
  }
  return *std::move(heap);
}

internal::Table TableOf(const Heap& heap) {
  return internal::Table(heap.segment().slots(),
                         heap.segment().table_slots_log2());
}

uint64_t IndexOf(const Heap& heap, const std::string& key) {
  return *TableOf(heap).Find(heap.Hash(key));
}

internal::Slot& SlotOf(const Heap& heap, const std::string& key) {
  return TableOf(heap).slot(IndexOf(heap, key));
}

// The offset of slot `i` in the segment, as Verify names it.
uint64_t SlotOffset(const Heap& heap, uint64_t i) {
  return heap.segment().table_offset() + i * sizeof(internal::Slot);
}

uint64_t BlobOf(const Heap& heap, const std::string& key) {
  return internal::AddrOffset(SlotOf(heap, key).addr.load());
}

// Verify reports kDataLoss with exactly `message` after the heap's name.
void ExpectReport(const Heap& heap, const std::string& message) {
  const absl::Status s = heap.Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(s.message(), heap.segment().Describe() + ": " + message);
}

// The same, for the checks that name an offset ("offset N: what").
void ExpectReportAt(const Heap& heap, uint64_t offset,
                    const std::string& what) {
  ExpectReport(heap, absl::StrCat("offset ", offset, ": ", what));
}

TEST(Verify, HealthyHeapsPass) {
  Heap heap = MakeHeap();
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  for (int i = 0; i < kKeys; i += 3) ASSERT_TRUE(heap.Remove(KeyName(i)).ok());
  for (int i = 1; i < kKeys; i += 5) {
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
  const uint64_t i = IndexOf(heap, KeyName(5));
  const uint64_t addr = BlobOf(heap, KeyName(5));
  SlotOf(heap, KeyName(5)).addr.fetch_add(8);
  ExpectReportAt(heap, addr + 8,
                 absl::StrCat("slot ", i, " points inside a record"));
}

TEST(Verify, SlotPointingOutsideTheHeap) {
  Heap heap = MakeHeap();
  const uint64_t i = IndexOf(heap, KeyName(5));
  SlotOf(heap, KeyName(5)).addr.store(uint64_t{1} << 40);
  ExpectReportAt(heap, SlotOffset(heap, i),
                 absl::StrCat("slot ", i, " points at ", uint64_t{1} << 40,
                              ", outside the heap"));
}

TEST(Verify, EmptySlotWithAnAddress) {
  Heap heap = MakeHeap();
  const internal::Table table = TableOf(heap);
  uint64_t empty = 0;
  while (table.slot(empty).hash.load() != 0) ++empty;
  table.slot(empty).addr.store(SlotOf(heap, KeyName(5)).addr.load());
  ExpectReportAt(heap, SlotOffset(heap, empty), "empty slot with an address");
}

// Key 8's slot moves two slots on past the end of its cluster, over an
// empty slot that ends its probe chain: Find no longer reaches it, though
// it still points at its own blob with its own hash and tag, and the
// counters still agree.
TEST(Verify, SlotUnreachableOnItsProbeChain) {
  Heap heap = MakeHeap();
  const internal::Table table = TableOf(heap);
  // A key alone at its home (so no other chain runs through its slot) with
  // two empty slots after it.
  auto empty = [&](uint64_t i) {
    return table.slot(i & table.mask()).hash.load() == 0;
  };
  int key = 0;
  uint64_t home = 0;
  for (; key < kKeys; ++key) {
    home = IndexOf(heap, KeyName(key));
    if ((table.slot(home).hash.load() & table.mask()) == home &&
        empty(home + 1) && empty(home + 2)) {
      break;
    }
  }
  ASSERT_LT(key, kKeys) << "no key alone at its home";
  const uint64_t moved = (home + 2) & table.mask();
  table.slot(moved).hash.store(table.slot(home).hash.load());
  table.slot(moved).addr.store(table.slot(home).addr.load());
  table.slot(home).addr.store(0);
  table.slot(home).hash.store(0);
  ASSERT_FALSE(heap.Contains(KeyName(key)));
  ExpectReportAt(heap, SlotOffset(heap, moved),
                 absl::StrCat("slot ", moved, " unreachable: empty slot ", home,
                              " before it"));
}

TEST(Verify, StoredHashDisagreesWithSlot) {
  Heap heap = MakeHeap();
  const uint64_t i = IndexOf(heap, KeyName(7));
  const uint64_t addr = BlobOf(heap, KeyName(7));
  const uint64_t wrong = 12345;
  std::memcpy(heap.segment().base() + addr + 8, &wrong, 8);
  ExpectReportAt(heap, addr,
                 absl::StrFormat("stored hash %#x, slot %d holds %#x", wrong, i,
                                 SlotOf(heap, KeyName(7)).hash.load()));
}

TEST(Verify, KeyTagDisagreesWithStoredKey) {
  Heap heap = MakeHeap();
  internal::Slot& slot = SlotOf(heap, KeyName(11));
  const uint64_t i = IndexOf(heap, KeyName(11));
  const uint64_t word = slot.addr.load();
  const uint16_t tag = internal::AddrTag(word);
  const uint16_t wrong = tag ^ 0x100;
  slot.addr.store(internal::AddrWord(internal::AddrOffset(word), wrong));
  ExpectReportAt(heap, internal::AddrOffset(word),
                 absl::StrFormat("slot %d has key tag %#x, the stored key's "
                                 "tag is %#x",
                                 i, wrong, tag));
}

// A second slot for key 3's blob, with key 3's hash and tag, at the end of
// key 3's cluster: reachable, pointing at a blob of its hash and tag, so
// only the two-slot check can tell it from a real entry (and, after it,
// the counters).
TEST(Verify, TwoSlotsShareABlob) {
  Heap heap = MakeHeap();
  const internal::Table table = TableOf(heap);
  const internal::Slot& original = SlotOf(heap, KeyName(3));
  const uint64_t i = IndexOf(heap, KeyName(3));
  uint64_t copy = original.hash.load() & table.mask();
  while (table.slot(copy).hash.load() != 0) copy = (copy + 1) & table.mask();
  table.slot(copy).hash.store(original.hash.load());
  table.slot(copy).addr.store(original.addr.load());
  // Verify scans slots in index order: the later of the two is the second.
  ExpectReportAt(heap, BlobOf(heap, KeyName(3)),
                 absl::StrCat("blob referenced by two slots, ",
                              std::min(i, copy), " and ", std::max(i, copy)));
}

TEST(Verify, RecordHeaderDoesNotParse) {
  Heap heap = MakeHeap();
  const uint64_t addr = BlobOf(heap, KeyName(9));
  const uint64_t zero = 0;
  std::memcpy(heap.segment().base() + addr, &zero, 8);
  ExpectReport(heap, absl::StrCat("no record header at offset ", addr));
}

TEST(Verify, SizeDisagreesWithDims) {
  Heap heap = MakeHeap();
  const uint64_t addr = BlobOf(heap, KeyName(16));
  uint64_t header;
  std::memcpy(&header, heap.segment().base() + addr, 8);
  // dims[0] lives at +16: claim more elements than the blob holds.
  const int64_t dim = 1000;
  std::memcpy(heap.segment().base() + addr + 16, &dim, 8);
  ExpectReportAt(
      heap, addr,
      absl::StrCat("size ", internal::BlobHeader::Decode(header).size_bytes(),
                   " or alignment does not match its kind, dims "
                   "and key"));
}

// One counter off at a time, each in a direction that keeps every sum
// non-negative (so the check that fires is the comparison with the table,
// not the sign check before it): the message gives both figures of each
// comparison.
TEST(Verify, CountersDisagreeWithTheTable) {
  struct Case {
    internal::Counter counter;
    uint64_t delta;
    int64_t blobs, slots, bytes;  // what stats() then reads minus the table
  };
  for (const Case& c : {Case{internal::kBlobsPublished, 1, 1, 0, 0},
                        Case{internal::kSlotsClaimed, 1, 0, 1, 0},
                        Case{internal::kBytesPublished, 8, 0, 0, 8}}) {
    SCOPED_TRACE(c.counter);
    Heap heap = MakeHeap();
    const Stats s = heap.stats();
    ASSERT_EQ(s.live_blobs, uint64_t{kKeys});
    heap.segment().header().retired_counters[c.counter].fetch_add(c.delta);
    ExpectReport(heap,
                 absl::StrCat("counters disagree with the table: live blobs ",
                              s.live_blobs + c.blobs, " vs ", s.live_blobs,
                              ", used slots ", s.table_used + c.slots, " vs ",
                              s.table_used, ", live bytes ",
                              s.live_bytes + c.bytes, " vs ", s.live_bytes));
  }
}

}  // namespace
}  // namespace shmheap
