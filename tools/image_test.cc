// Heap images carry a checksum of their own (tools/image.h).
//
// What it proves: an image that save sealed loads; flipping any one of a
// sample of bytes across the whole file (header, registry, table and heap:
// also bytes Verify does not look at, such as a dead session's counters)
// makes load refuse it with kDataLoss naming the checksum, and leaves no
// heap behind; and an image that a process attached to (and so changed)
// carries no checksum any more and is checked by Verify alone; a wait in
// the source heap is not carried into its image.

#include "tools/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap::tools {
namespace {

// A small heap: 4 MiB, 2^8 slots, 64 KiB chunks.
absl::StatusOr<Heap> SmallHeap() {
  Options o;
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 8;
  o.chunk_bytes = 64 << 10;
  return Heap::Create(o);
}

std::string MakeImage(const std::string& path) {
  absl::StatusOr<Heap> heap = SmallHeap();
  EXPECT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < 20; ++i) {
    const std::vector<double> v(50, i + 0.5);
    const int64_t dims[] = {50};
    EXPECT_TRUE(*heap->Add<double>(absl::StrCat("k", i), v, dims));
  }
  absl::StatusOr<SaveReport> saved = SaveImage(*heap, path, {}, {});
  EXPECT_TRUE(saved.ok()) << saved.status();
  return path;
}

void FlipByte(const std::string& path, off_t at) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  unsigned char b = 0;
  ASSERT_EQ(pread(fd, &b, 1, at), 1);
  b ^= 0x20;
  ASSERT_EQ(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

off_t FileSize(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const off_t n = lseek(fd, 0, SEEK_END);
  close(fd);
  return n;
}

TEST(Image, FlippedBytesAnywhereAreRefusedByLoad) {
  const std::string path = MakeImage(testing::TempPath("image"));
  const std::string name = testing::UniqueName("image");
  {
    absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(loaded->Verify().ok());
  }
  ASSERT_TRUE(Heap::UnlinkNamed(name).ok());
  const off_t size = FileSize(path);
  int refused = 0, tried = 0;
  // A byte in every 61 (and the session registry's first line), but not
  // the checksum field itself (then the whole file disagrees with it too).
  for (off_t at = 0; at < size; at += 61) {
    if (at >= static_cast<off_t>(offsetof(internal::Header, image_checksum)) &&
        at < static_cast<off_t>(offsetof(internal::Header, image_checksum) +
                                8)) {
      continue;
    }
    FlipByte(path, at);
    absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
    FlipByte(path, at);
    ++tried;
    if (!loaded.ok()) {
      ++refused;
      EXPECT_NE(loaded.status().code(), absl::StatusCode::kOk);
      EXPECT_FALSE(Heap::OpenNamed(name).ok()) << "a heap was left at " << at;
    } else {
      ADD_FAILURE() << "byte " << at << " flipped, and the image loaded";
      loaded = absl::UnknownError("");
      Heap::UnlinkNamed(name).IgnoreError();
    }
  }
  EXPECT_EQ(refused, tried);
  EXPECT_GT(tried, 50);
  unlink(path.c_str());
}

TEST(Image, ChecksumMismatchIsDataLossNamingIt) {
  const std::string path = MakeImage(testing::TempPath("image2"));
  // A registry byte: Verify reads no dead entry's counters.
  FlipByte(path, 4096 + 100);
  absl::StatusOr<Heap> loaded =
      LoadImage(path, testing::UniqueName("image2"), {});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find("checksum"), std::string::npos)
      << loaded.status();
  unlink(path.c_str());
}

TEST(Image, AnAttachedImageIsLiveAndLoadsWithoutItsChecksum) {
  const std::string path = MakeImage(testing::TempPath("image3"));
  {
    absl::StatusOr<Heap> opened = Heap::OpenFile(path);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->segment().header().image_checksum.load(), 0u);
  }
  const std::string name = testing::UniqueName("image3");
  absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->Contains("k7"));
  Heap::UnlinkNamed(name).IgnoreError();
  unlink(path.c_str());
}

// A heap whose table grew saves with the unused parts of both table areas
// left as holes (an image the size of two largest tables would defeat the
// reservation), and loads with the grown table, every value readable.
TEST(Image, AGrownTableSavesSparseAndLoadsWhole) {
  Options o;
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 6;
  o.max_table_slots_log2 = 16;  // two areas of 1 MiB
  o.chunk_bytes = 64 << 10;
  // A dependency table of 8 KiB: an image allocates it whole.
  o.dep_table_slots_log2 = 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (int i = 0; i < 300; ++i) {
    const std::vector<double> v(3, i + 0.5);
    const int64_t dims[] = {3};
    ASSERT_TRUE(*heap->Add<double>(absl::StrCat("k", i), v, dims));
  }
  ASSERT_GE(heap->stats().table_slots, 512u);
  const std::string path = testing::TempPath("image-grown");
  absl::StatusOr<SaveReport> saved = SaveImage(*heap, path, {}, {});
  ASSERT_TRUE(saved.ok()) << saved.status();
  // After the save, whose collection may have grown the table again.
  const uint64_t slots = heap->stats().table_slots;
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  // Header, registry, a table of at most 64 KiB, the dependency table and
  // a few KiB of heap.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{1} << 20);
  const std::string name = testing::UniqueName("image-grown");
  absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->Verify().ok()) << loaded->Verify();
  EXPECT_EQ(loaded->stats().table_slots, slots);
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<ArrayView<double>> v =
        loaded->Get<double>(absl::StrCat("k", i));
    ASSERT_TRUE(v.ok()) << i << ": " << v.status();
    EXPECT_EQ(v->flat()[2], i + 0.5);
  }
  Heap::UnlinkNamed(name).IgnoreError();
  unlink(path.c_str());
}

// A heap saved while a thread waits for a key: the image has no
// processes, so nobody waits in it, and the loaded heap's publishes pay no
// wake (Header::waiters 0).
TEST(Image, AWaitInTheSourceIsNotCarriedIntoTheImage) {
  absl::StatusOr<Heap> heap = SmallHeap();
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::vector<double> v(3, 1.5);
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<double>("early", v, dims));
  absl::Status waited = absl::UnknownError("not yet");
  std::thread waiter(
      [&] { waited = heap->WaitFor("late", absl::Seconds(30)); });
  while (heap->segment().header().waiters.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::string path = testing::TempPath("image-waited");
  absl::StatusOr<SaveReport> saved = SaveImage(*heap, path, {}, {});
  EXPECT_TRUE(*heap->Add<double>("late", v, dims));
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited;
  ASSERT_TRUE(saved.ok()) << saved.status();
  const std::string name = testing::UniqueName("image-waited");
  absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->segment().header().waiters.load(), 0u);
  EXPECT_TRUE(loaded->Verify().ok()) << loaded->Verify();
  Heap::UnlinkNamed(name).IgnoreError();
  unlink(path.c_str());
}

// The dependency table is part of the image: save copies it, load brings
// it back whole (allocated, so a write to it cannot fault on a full disk)
// with its removed edges, and the loaded heap verifies and takes new edges.
TEST(Image, DependencyTableRoundTrips) {
  Options o;
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 6;
  o.chunk_bytes = 64 << 10;
  // 512 KiB: 128 pages for 150 edges, so that many pages hold none.
  o.dep_table_slots_log2 = 16;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  for (uint32_t k = 0; k < 50; ++k) {
    for (uint32_t v = 0; v <= k % 5; ++v) {
      ASSERT_TRUE(*heap->AddDep(k, k * 100 + v));
    }
  }
  ASSERT_EQ(*heap->RemoveDeps(3), 4u);
  const Stats before = heap->stats();
  const std::string path = testing::TempPath("image-deps");
  absl::StatusOr<SaveReport> saved = SaveImage(*heap, path, {}, {});
  ASSERT_TRUE(saved.ok()) << saved.status();
  const std::string name = testing::UniqueName("image-deps");
  absl::StatusOr<Heap> loaded = LoadImage(path, name, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->Verify().ok()) << loaded->Verify();
  const Stats after = loaded->stats();
  EXPECT_EQ(after.dep_slots, 65536u);
  EXPECT_EQ(after.dep_used, before.dep_used);
  EXPECT_EQ(after.dep_removed, 4u);
  for (uint32_t k = 0; k < 50; ++k) {
    absl::StatusOr<std::vector<uint32_t>> got = loaded->GetDeps(k);
    ASSERT_TRUE(got.ok()) << got.status();
    std::sort(got->begin(), got->end());
    std::vector<uint32_t> want;
    if (k != 3) {
      for (uint32_t v = 0; v <= k % 5; ++v) want.push_back(k * 100 + v);
    }
    EXPECT_EQ(*got, want) << "key " << k;
  }
  EXPECT_EQ(*loaded->AddDep(3, 7), true);
  EXPECT_EQ(*loaded->AddDep(4, 400), false);
  // The loaded heap's dependency area is allocated whole, though most of
  // its pages hold no edge: the file has at least the header and registry,
  // the live table, the whole area and the heap's used bytes allocated.
  // (st_blocks, not SEEK_HOLE: tmpfs reports fallocated pages never
  // written as holes.)
  const internal::Header& h = loaded->segment().header();
  const uint64_t least = h.table_areas_offset +
                         (uint64_t{16} << o.table_slots_log2) +
                         internal::DepAreaBytes(h.dep_slots_log2) +
                         (h.top.load(std::memory_order_relaxed) - h.heap_start);
  struct stat st;
  ASSERT_EQ(fstat(loaded->segment().fd(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, least);
  // And so is the image's, which Heap::OpenFile maps straight back.
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, least);
  absl::StatusOr<Heap> opened = Heap::OpenFile(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->stats().dep_used, before.dep_used);
  Heap::UnlinkNamed(name).IgnoreError();
  unlink(path.c_str());
}

}  // namespace
}  // namespace shmheap::tools
