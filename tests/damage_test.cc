// What Verify detects in a damaged blob (README, "What Verify detects").
//
// Each test publishes a few arrays, then flips bits of one blob in place,
// one at a time, and asks Verify. They prove:
//  - with Options::checksums, every bit of a blob but its padding is
//    covered: flipping any one of them is reported (kDataLoss), and only
//    the padding (after the key, before and after the payload) goes
//    unreported;
//  - without checksums, every bit of the key hash, dims and key is covered;
//    the payload's are not (the documented gap), nor two header bits that
//    change no size: the layout, and key_hashed turned off;
//  - a flipped key byte names the cause: a key this heap hashed no longer
//    hashes to its slot; a key given with a HashedKey no longer gives the
//    slot's tag.

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"

namespace shmheap {
namespace {

Heap MakeHeap(bool checksums) {
  Options o;
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 8;
  o.chunk_bytes = 64 << 10;
  o.checksums = checksums;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  EXPECT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < 8; ++i) {
    std::vector<float> v(12, 1.5f + i);
    const int64_t dims[] = {3, 4};
    EXPECT_TRUE(*heap->Add<float>(absl::StrCat("key:", i), v, dims));
  }
  return *std::move(heap);
}

// The blob published under `key`, and its bytes.
std::byte* BlobOf(const Heap& heap, const Key& key, uint64_t* size) {
  const internal::Segment& seg = heap.segment();
  internal::Table table(seg.slots(), seg.table_slots_log2());
  const uint64_t hash = key.hashed() ? key.hash() : heap.Hash(key.bytes());
  const uint64_t word = table.LoadAddr(*table.Find(hash));
  std::byte* blob = seg.base() + internal::AddrOffset(word);
  *size = internal::BlobRef(blob).header().size_bytes();
  return blob;
}

// The bits (offset * 8 + bit) of `blob`'s padding: after the key, before
// and after the payload.
std::set<uint64_t> PaddingOf(const std::byte* blob) {
  const internal::BlobRef b(blob);
  std::set<uint64_t> pad;
  auto add = [&](uint64_t from, uint64_t to) {
    for (uint64_t bit = from * 8; bit < to * 8; ++bit) pad.insert(bit);
  };
  add(b.key_offset() + 8 + b.key().size(), b.payload_offset());
  add(b.payload_offset() + b.payload_bytes(),
      b.header().has_checksum ? b.checksum_offset() : b.header().size_bytes());
  return pad;
}

// Flips each bit of `key`'s blob in turn; returns the bits whose flip
// Verify did not report.
std::set<uint64_t> UndetectedFlips(const Heap& heap, const Key& key) {
  uint64_t size = 0;
  std::byte* blob = BlobOf(heap, key, &size);
  std::set<uint64_t> undetected;
  for (uint64_t bit = 0; bit < size * 8; ++bit) {
    const std::byte mask{static_cast<unsigned char>(1u << (bit % 8))};
    blob[bit / 8] ^= mask;
    const absl::Status s = heap.Verify();
    blob[bit / 8] ^= mask;
    if (s.ok()) {
      undetected.insert(bit);
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << bit << ": " << s;
    }
  }
  EXPECT_TRUE(heap.Verify().ok()) << heap.Verify();
  return undetected;
}

TEST(Damage, WithChecksumsEveryBitButPaddingIsCovered) {
  Heap heap = MakeHeap(/*checksums=*/true);
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  uint64_t size = 0;
  const std::byte* blob = BlobOf(heap, "key:3", &size);
  EXPECT_EQ(UndetectedFlips(heap, "key:3"), PaddingOf(blob));
}

TEST(Damage, WithoutChecksumsThePayloadIsNotCovered) {
  Heap heap = MakeHeap(/*checksums=*/false);
  uint64_t size = 0;
  const std::byte* blob = BlobOf(heap, "key:5", &size);
  const internal::BlobRef b(blob);
  std::set<uint64_t> want = PaddingOf(blob);
  for (uint64_t bit = b.payload_offset() * 8;
       bit < (b.payload_offset() + b.payload_bytes()) * 8; ++bit) {
    want.insert(bit);
  }
  want.insert(10);  // the layout: C and Fortran arrays have one size
  want.insert(15);  // key_hashed off: Verify then skips the hash check
  EXPECT_EQ(UndetectedFlips(heap, "key:5"), want);
}

TEST(Damage, FlippedKeyBytesNameTheCause) {
  Heap heap = MakeHeap(/*checksums=*/false);
  const std::vector<float> v(4, 2.0f);
  const int64_t dims[] = {4};
  ASSERT_TRUE(*heap.Add<float>(HashedKey{0x5eed, "given"}, v, dims));
  uint64_t size = 0;
  std::byte* blob = BlobOf(heap, "key:1", &size);
  const uint64_t key_at = internal::BlobRef(blob).key_offset() + 8;
  blob[key_at] ^= std::byte{1};
  absl::Status s = heap.Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("the stored key hashes to"), std::string::npos)
      << s;
  blob[key_at] ^= std::byte{1};
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();

  blob = BlobOf(heap, HashedKey{0x5eed, "given"}, &size);
  blob[internal::BlobRef(blob).key_offset() + 8] ^= std::byte{1};
  s = heap.Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("key tag"), std::string::npos) << s;
}

TEST(Damage, ChecksumsSurviveCollectionAndMove) {
  Heap heap = MakeHeap(/*checksums=*/true);
  ASSERT_TRUE(heap.Remove("key:0").ok());
  ASSERT_TRUE(heap.Move("key:4", "moved:4").ok());
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  absl::StatusOr<GcReport> gc = heap.Collect();
  ASSERT_TRUE(gc.ok()) << gc.status();
  ASSERT_GT(gc->blobs_moved, 0u);
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
  absl::StatusOr<ArrayView<float>> got = heap.Get<float>("moved:4");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)(2, 3), 5.5f);
  // Reserve + Publish seals the payload the caller wrote.
  const int64_t dims[] = {2};
  absl::StatusOr<Builder<double>> b = heap.Reserve<double>("built", dims);
  ASSERT_TRUE(b.ok()) << b.status();
  b->data()[0] = 1;
  b->data()[1] = 2;
  ASSERT_TRUE(*b->Publish());
  ASSERT_TRUE(heap.Verify().ok()) << heap.Verify();
}

}  // namespace
}  // namespace shmheap
