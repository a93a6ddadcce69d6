// Unit tests of the store protocol (hashtable/store.h), against a Store over
// an anonymous segment.
//
// What they prove:
//  - a key resolves to the same hash and tag whether it is given as bytes or
//    as a HashedKey carrying those bytes, and the tag reaches the slot;
//  - Contains tells two keys with the same 64-bit hash apart by the tag
//    alone: it answers from the table even when the blob's key is damaged,
//    while Find, which compares the stored key, refuses it;
//  - Find and Contains misses allocate nothing;
//  - FindMany and ContainsMany equal the per-key answers, for hits, misses
//    and collisions, across several prefetch groups;
//  - borrowed refs point into the segment and read dims in place;
//  - the collector keeps every slot's tag (compaction threads it through
//    the blob's hash word);
//  - Contains outside a scope stays exact while another process collects
//    again and again (the seqlock read), every answer checked.

#include "hashtable/store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gc/collector.h"
#include "gtest/gtest.h"
#include "heap/blob.h"
#include "heap/segment.h"
#include "heap/testing_hooks.h"
#include "tests/allocation_counter.h"
#include "tests/test_util.h"

namespace shmheap::internal {
namespace {

using testing::ArrayFor;
using testing::KeyName;

std::unique_ptr<Store> MakeStore(uint32_t slots_log2 = 12, uint64_t seed = 42) {
  SegmentOptions o;
  o.heap_bytes = 64 << 20;
  o.table_slots_log2 = slots_log2;
  o.chunk_bytes = 64 << 10;
  o.seed = seed;
  absl::StatusOr<std::unique_ptr<Segment>> seg = Segment::CreateAnonymous(o);
  EXPECT_TRUE(seg.ok()) << seg.status();
  return std::make_unique<Store>(*std::move(seg));
}

void AddFloats(const Store& store, const Key& key, uint64_t k, size_t n) {
  const std::vector<float> v = ArrayFor(k, 0, n);
  const int64_t dims[] = {static_cast<int64_t>(n)};
  absl::StatusOr<bool> added =
      store.Write(store.Resolve(key), Kind::kFloat32, dims, Layout::kC,
                  std::as_bytes(std::span<const float>(v)), false);
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_TRUE(*added);
}

void ExpectFloats(const std::optional<RawRef>& ref, uint64_t k, size_t n) {
  ASSERT_TRUE(ref.has_value());
  absl::StatusOr<ArrayRef<float>> a = ref->As<float>();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->ndims(), 1);
  ASSERT_EQ(a->dim(0), static_cast<int64_t>(n));
  const std::vector<float> want = ArrayFor(k, 0, n);
  for (size_t j = 0; j < n; ++j) ASSERT_EQ(a->flat()[j], want[j]) << j;
}

TEST(Store, BytesAndHashedKeyResolveAlike) {
  std::unique_ptr<Store> store = MakeStore();
  const ResolvedKey a = store->Resolve(Key("file:a.ml"));
  const ResolvedKey b = store->Resolve(Key(HashedKey{a.hash, "file:a.ml"}));
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.tag, b.tag);
  EXPECT_NE(a.tag, 0);
  EXPECT_EQ(a.tag, store->lookup().KeyTag("file:a.ml"));
  // A hash with no bytes has no tag: it is trusted by hash alone.
  const ResolvedKey c = store->Resolve(Key(HashedKey{a.hash, ""}));
  EXPECT_EQ(c.hash, a.hash);
  EXPECT_EQ(c.tag, 0);
  EXPECT_FALSE(c.has_key);
}

TEST(Store, KeyHashingIsXxh3_128WithTheSeedAtEveryLength) {
  // Lookup inlines xxhash's short-input cases itself: for every length
  // through and past each of xxhash's cases (0, 1-3, 4-8, 9-16, 17-128,
  // 129-240, long), the hash and tag must be the public function's.
  std::unique_ptr<Store> store = MakeStore();
  const uint64_t seed = store->segment().header().seed;
  std::string bytes;
  for (size_t len = 0; len <= 300; ++len) {
    const XXH128_hash_t want =
        XXH3_128bits_withSeed(bytes.data(), bytes.size(), seed);
    EXPECT_EQ(store->lookup().KeyHash(bytes), Table::Remap(want.low64)) << len;
    const uint16_t tag = static_cast<uint16_t>(want.high64 >> 48);
    EXPECT_EQ(store->lookup().KeyTag(bytes), tag != 0 ? tag : 1) << len;
    bytes.push_back(static_cast<char>('a' + len * 7 % 26));
  }
}

TEST(Store, SameBytesComparesEveryByteAtEveryLength) {
  // Lookup::SameBytes compares short keys in overlapping words: every
  // byte of every length through and past its cases must count.
  for (size_t n = 0; n <= 40; ++n) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i * 5 % 26);
    const std::string same = a;
    EXPECT_TRUE(Lookup::SameBytes(a, same)) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] = static_cast<char>(b[i] ^ 0x20);
      EXPECT_FALSE(Lookup::SameBytes(a, b)) << n << " at " << i;
    }
    EXPECT_FALSE(Lookup::SameBytes(a, a + "y")) << n;
  }
}

TEST(Store, TagReachesTheSlotAndSurvivesCollection) {
  std::unique_ptr<Store> store = MakeStore();
  for (int k = 0; k < 200; ++k) AddFloats(*store, KeyName(k), k, 8 + k % 5);
  for (int k = 0; k < 200; k += 3) {
    ASSERT_TRUE(store->Remove(store->Resolve(Key(KeyName(k)))).ok());
  }
  auto check = [&] {
    for (int k = 0; k < 200; ++k) {
      const ResolvedKey r = store->Resolve(Key(KeyName(k)));
      const std::optional<uint64_t> i = store->table().Find(r.hash);
      if (k % 3 == 0) {  // a tombstone, or nothing once collected
        ASSERT_TRUE(!i || store->table().LoadAddr(*i) == 0) << k;
        continue;
      }
      ASSERT_TRUE(i.has_value()) << k;
      const uint64_t word = store->table().LoadAddr(*i);
      ASSERT_EQ(AddrTag(word), r.tag) << k;
      const BlobRef blob(store->segment().base() + AddrOffset(word));
      ASSERT_EQ(blob.key_hash(), r.hash);
      ASSERT_EQ(blob.key(), KeyName(k));
    }
  };
  check();
  absl::StatusOr<LocalSession*> self = store->Session();
  ASSERT_TRUE(self.ok());
  absl::StatusOr<GcReport> gc = Collect(store->segment(), *self, {});
  ASSERT_TRUE(gc.ok()) << gc.status();
  ASSERT_GT(gc->blobs_moved, 0u);
  check();
  ASSERT_TRUE(store->Verify().ok()) << store->Verify();
  absl::StatusOr<Pin> pin = store->Enter();
  ASSERT_TRUE(pin.ok());
  for (int k = 1; k < 200; k += 3) {
    ExpectFloats(store->lookup().Find(store->Resolve(Key(KeyName(k)))), k,
                 8 + k % 5);
  }
}

// Two keys with one 64-bit hash (a HashedKey makes that easy to arrange).
TEST(Store, SameHashDifferentKeysToldApartWithoutTheBlob) {
  std::unique_ptr<Store> store = MakeStore();
  const uint64_t h = 0x1234567890abcdefULL;
  ASSERT_NE(store->lookup().KeyTag("first"), store->lookup().KeyTag("second"));
  AddFloats(*store, HashedKey{h, "first"}, 1, 4);
  const ResolvedKey first = store->Resolve(Key(HashedKey{h, "first"}));
  const ResolvedKey second = store->Resolve(Key(HashedKey{h, "second"}));
  absl::StatusOr<Pin> pin = store->Enter();
  ASSERT_TRUE(pin.ok());
  EXPECT_TRUE(store->lookup().Contains(first));
  EXPECT_FALSE(store->lookup().Contains(second));
  EXPECT_TRUE(store->Contains(first));
  EXPECT_FALSE(store->Contains(second));
  ExpectFloats(store->lookup().Find(first), 1, 4);
  EXPECT_FALSE(store->lookup().Find(second).has_value());
  // Find's own resolution computes no tag for a HashedKey: the stored key's
  // full comparison alone must tell the two apart.
  const ResolvedKey second_untagged =
      store->lookup().ResolveForFind(Key(HashedKey{h, "second"}));
  EXPECT_EQ(second_untagged.tag, 0);
  EXPECT_EQ(second_untagged.hash, second.hash);
  EXPECT_FALSE(store->lookup().Find(second_untagged).has_value());
  ExpectFloats(store->lookup().Find(
                   store->lookup().ResolveForFind(Key(HashedKey{h, "first"}))),
               1, 4);
  // The hash alone still finds it.
  EXPECT_TRUE(store->lookup().Contains(store->Resolve(Key(HashedKey{h, ""}))));

  // Damage the stored key: Find, which compares it, refuses; Contains,
  // which reads only the table, still answers from the tag. That is the
  // evidence that Contains does not touch the blob.
  const uint64_t word = store->table().LoadAddr(*store->table().Find(h));
  std::byte* blob = store->segment().base() + AddrOffset(word);
  const uint64_t key_at = BlobRef(blob).key_offset() + 8;
  blob[key_at] = std::byte{'F'};
  EXPECT_FALSE(store->lookup().Find(first).has_value());
  EXPECT_TRUE(store->lookup().Contains(first));
  blob[key_at] = std::byte{'f'};
  EXPECT_TRUE(store->lookup().Find(first).has_value());
}

TEST(Store, MissesAllocateNothing) {
  std::unique_ptr<Store> store = MakeStore();
  for (int k = 0; k < 100; ++k) AddFloats(*store, KeyName(k), k, 4);
  absl::StatusOr<Pin> pin = store->Enter();
  ASSERT_TRUE(pin.ok());
  std::vector<ResolvedKey> misses;
  std::vector<std::string> names;
  for (int k = 1000; k < 1100; ++k) names.push_back(KeyName(k));
  for (const std::string& n : names) misses.push_back(store->Resolve(Key(n)));
  const uint64_t before = testing::Allocations();
  int found = 0;
  for (const ResolvedKey& r : misses) {
    found += store->lookup().Find(r).has_value();
    found += store->lookup().Contains(r);
    found += store->Contains(r);
  }
  EXPECT_EQ(testing::Allocations(), before);
  EXPECT_EQ(found, 0);
}

TEST(Store, BatchesEqualSingleLookups) {
  std::unique_ptr<Store> store = MakeStore();
  const uint64_t h = 0xfeedfacecafebeefULL;
  AddFloats(*store, HashedKey{h, "owner"}, 7, 3);
  for (int k = 0; k < 150; k += 2) AddFloats(*store, KeyName(k), k, 1 + k % 9);
  // Keys: hits, misses, a collision, a hash-only lookup; 153 of them, so
  // the last prefetch group is partial.
  std::vector<std::string> names;
  for (int k = 0; k < 150; ++k) names.push_back(KeyName(k));
  std::vector<Key> keys(names.begin(), names.end());
  keys.push_back(HashedKey{h, "owner"});
  keys.push_back(HashedKey{h, "intruder"});
  keys.push_back(HashedKey{h, ""});
  absl::StatusOr<Pin> pin = store->Enter();
  ASSERT_TRUE(pin.ok());
  std::vector<std::optional<RawRef>> refs(keys.size());
  std::unique_ptr<bool[]> present(new bool[keys.size()]);
  const size_t found = store->FindMany(keys, refs);
  const size_t contained =
      store->ContainsMany(keys, std::span<bool>(present.get(), keys.size()));
  size_t want_found = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const ResolvedKey r = store->Resolve(keys[i]);
    const std::optional<RawRef> one = store->lookup().Find(r);
    ASSERT_EQ(refs[i].has_value(), one.has_value()) << i;
    ASSERT_EQ(present[i], store->lookup().Contains(r)) << i;
    if (one) {
      ++want_found;
      ASSERT_EQ(refs[i]->data(), one->data()) << i;
    }
    if (i < 150) {
      ASSERT_EQ(one.has_value(), i % 2 == 0) << i;
      if (one) ExpectFloats(refs[i], i, 1 + i % 9);
    }
  }
  EXPECT_EQ(found, want_found);
  EXPECT_EQ(found, 75u + 2u);  // the evens, "owner", and the hash-only one
  EXPECT_EQ(contained, found);
  EXPECT_FALSE(refs[151].has_value());
  ExpectFloats(refs[150], 7, 3);
}

TEST(Store, RefsPointIntoTheSegmentAndReadDimsInPlace) {
  std::unique_ptr<Store> store = MakeStore();
  const std::vector<double> v(24, 2.5);
  const int64_t dims[] = {2, 3, 4};
  ASSERT_TRUE(*store->Write(store->Resolve(Key("m")), Kind::kFloat64, dims,
                            Layout::kFortran,
                            std::as_bytes(std::span<const double>(v)), false));
  absl::StatusOr<Pin> pin = store->Enter();
  ASSERT_TRUE(pin.ok());
  const std::optional<RawRef> r =
      store->lookup().Find(store->Resolve(Key("m")));
  ASSERT_TRUE(r.has_value());
  const std::byte* lo = store->segment().base();
  const std::byte* hi = lo + store->segment().header().total_bytes;
  EXPECT_GE(r->data(), lo);
  EXPECT_LT(r->data(), hi);
  const auto* dims_at = reinterpret_cast<const std::byte*>(r->dims().data());
  EXPECT_GE(dims_at, lo);
  EXPECT_LT(dims_at, hi);
  EXPECT_EQ(r->layout(), Layout::kFortran);
  absl::StatusOr<ArrayRef<double>> a = r->As<double>();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)(2, 3, 4), 2.5);
  EXPECT_EQ(a->size(), 24);
  EXPECT_FALSE(r->As<float>().ok());
}

// The seqlock read. The table is laid out in clusters: each starts with a
// scratch key and goes on with stable keys of the same home slot (HashedKey
// makes the homes). Round by round a child process removes one batch of
// clusters' scratch keys and collects: clearing each tombstone shifts its
// cluster's stable keys back one by one, and the child pauses after each
// shift (a testing hook), while the keys behind the cascade's hole are
// unreachable. Meanwhile the parent asks Contains, outside any scope, about
// every stable key and about absent keys, and checks every answer: only the
// epoch re-check keeps it from reporting a stable key absent (without it,
// this test fails).
TEST(Store, ContainsOutsideScopeIsExactUnderConcurrentCollection) {
  std::unique_ptr<Store> owned = MakeStore(/*slots_log2=*/12, /*seed=*/7);
  Store& store = *owned;
  constexpr int kRounds = 24, kClustersPerRound = 8, kStablePerCluster = 6;
  constexpr uint64_t kSpacing = 8;  // cluster homes, so clusters never touch
  std::vector<std::string> stable, scratch;
  std::vector<uint64_t> stable_hash, scratch_hash;
  for (int c = 0; c < kRounds * kClustersPerRound; ++c) {
    const uint64_t home = 1 + c * kSpacing;
    scratch.push_back(absl::StrCat("scratch:", c));
    scratch_hash.push_back(home | (uint64_t{1} << 40));
    AddFloats(store, HashedKey{scratch_hash.back(), scratch.back()}, c, 4);
    for (int k = 0; k < kStablePerCluster; ++k) {
      stable.push_back(absl::StrCat("stable:", c, ":", k));
      stable_hash.push_back(home | (static_cast<uint64_t>(k + 2) << 40));
      AddFloats(store, HashedKey{stable_hash.back(), stable.back()}, k, 4);
    }
  }
  testing::SharedArray<std::atomic<int>> done(1);
  const pid_t child = fork();
  if (child == 0) {
    SetTestingHook([](TestingPoint p) {
      if (p == TestingPoint::kGcMovedSlot) usleep(300);
    });
    for (int round = 0; round < kRounds; ++round) {
      for (int c = round * kClustersPerRound;
           c < (round + 1) * kClustersPerRound; ++c) {
        if (!store.Remove(store.Resolve(HashedKey{scratch_hash[c], scratch[c]}))
                 .ok()) {
          _exit(2);
        }
      }
      absl::StatusOr<LocalSession*> self = store.Session();
      if (!self.ok()) _exit(4);
      absl::StatusOr<GcReport> gc = Collect(store.segment(), *self, {});
      if (!gc.ok() || gc->tombstones_cleared != kClustersPerRound) _exit(5);
    }
    done[0].store(1);
    _exit(0);
  }
  int64_t checked = 0;
  while (done[0].load() == 0) {
    for (size_t i = 0; i < stable.size(); ++i) {
      ASSERT_TRUE(
          store.Contains(store.Resolve(HashedKey{stable_hash[i], stable[i]})))
          << stable[i] << " reported absent";
      ++checked;
    }
    ASSERT_FALSE(store.Contains(store.Resolve(Key("never added"))));
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_GT(checked, 0);
  ASSERT_TRUE(store.Verify().ok()) << store.Verify();
}

// The seqlock's re-check, for a collection that begins while a probe is
// already on its way: one cluster of 3,000 keys (a probe for its last key
// walks all of it), whose head key a child removes before each of its
// collections, so each collection shifts the whole cluster back one slot
// while the parent probes for the last keys. A probe that
// began before the collection and meets the cascade's hole must notice the
// changed epoch (without the re-check, this test fails).
TEST(Store, ContainsNoticesACollectionThatBeginsMidProbe) {
  std::unique_ptr<Store> owned = MakeStore(/*slots_log2=*/12, /*seed=*/9);
  Store& store = *owned;
  constexpr int kCluster = 3000;
  constexpr uint64_t kHome = 5;
  auto hash_of = [](int k) {
    return kHome | (static_cast<uint64_t>(k + 1) << 40);
  };
  std::vector<std::string> names;
  for (int k = 0; k < kCluster; ++k) {
    names.push_back(absl::StrCat("c", k));
    AddFloats(store, HashedKey{hash_of(k), names.back()}, k, 1);
  }
  testing::SharedArray<std::atomic<int>> done(1);
  const pid_t child = fork();
  if (child == 0) {
    // Each round removes the key at the cluster's head (c0, then c1, ...:
    // a re-added key joins at the cluster's end), so every collection's
    // tombstone cascade shifts the whole cluster.
    for (int round = 0; round < 200; ++round) {
      const int k = round;
      const ResolvedKey r = store.Resolve(HashedKey{hash_of(k), names[k]});
      if (!store.Remove(r).ok()) _exit(2);
      absl::StatusOr<LocalSession*> self = store.Session();
      if (!self.ok()) _exit(4);
      if (!Collect(store.segment(), *self, {}).ok()) _exit(5);
      AddFloats(store, HashedKey{hash_of(k), names[k]}, k, 1);
    }
    done[0].store(1);
    _exit(0);
  }
  int64_t checked = 0;
  while (done[0].load() == 0) {
    for (int k = kCluster - 1; k >= kCluster - 64; --k) {
      ASSERT_TRUE(
          store.Contains(store.Resolve(HashedKey{hash_of(k), names[k]})))
          << names[k] << " reported absent";
      ++checked;
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_GT(checked, 0);
  ASSERT_TRUE(store.Verify().ok()) << store.Verify();
}

}  // namespace
}  // namespace shmheap::internal
