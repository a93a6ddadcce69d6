// Regression tests for the library bugs that fuzzing (//fuzz:*) found or
// pointed at: each builds the smallest heap file (or call) that showed the
// bug and checks that it is now an error Status, not a fault, a hang or a
// corrupt heap. The fuzzers' own inputs for them are in fuzz/corpus/*/
// (regression_*), replayed by //fuzz:*_replay.
//
//   * Attach reclaimed a dead session's entry by writing a filler at its
//     chunk record's committed top, unchecked: a file whose record points
//     outside the heap made OpenFile write there (SIGSEGV, or SIGBUS past
//     the file's end).
//   * An odd gc epoch with no collector holding the lock (possible only in
//     a corrupt file) made every attach wait for the epoch forever.
//   * Verify accepted counters that a corrupt file drove negative or past
//     2^64, because stats() clamps its differences at 0; the next write
//     made the heap fail Verify.
//   * WalkHeap followed an open chunk tail whose bounds were not 8-byte
//     aligned, then read a header word straddling the heap's top: SIGBUS
//     when top is the file's (page-aligned) end.
//   * Verify read a record's key hash (its second word) before checking
//     that the record has one: a one-word record at the file's end read past
//     it (SIGBUS).
//   * ComputeGeometry accepted a blob whose size does not fit the header's
//     48-bit size field (a key and a payload each just under its limit).
//   * Recovering a dead collector's collection walked up to the recorded
//     old top, checked only against heap_limit: a record past the file's
//     end made OpenFile read there (SIGBUS).

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "shmheap.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::Header;
using internal::SessionEntry;

// Above Linux's largest pid_max: a process that is never alive.
constexpr uint64_t kDeadPid = 0x7ffffff0;

std::string TempPath(const std::string& name) {
  return shmheap::testing::TempPath("fuzz_regression_" + name);
}

Options Tiny(uint32_t max_sessions) {
  Options o;
  o.heap_bytes = 64 << 10;
  o.table_slots_log2 = 4;
  o.max_sessions = max_sessions;
  o.chunk_bytes = 4096;
  o.min_available_bytes = 0;
  return o;
}

// A heap file holding one small array under "a" (or nothing), closed
// again: its chunk is closed with a filler up to top, and top is the file's
// page-aligned end.
struct File {
  std::string path;
  uint64_t heap_start = 0;
  uint64_t top = 0;
  uint64_t registry = 0;
  uint64_t blob = 0;      // offset of "a"'s blob
  uint64_t blob_end = 0;  // where the filler after it starts
  uint64_t slot = 0;      // offset of "a"'s slot
};

File MakeFile(const std::string& name, uint32_t max_sessions, bool add = true) {
  File f;
  f.path = TempPath(name);
  unlink(f.path.c_str());
  absl::StatusOr<Heap> heap = Heap::CreateFile(f.path, Tiny(max_sessions));
  EXPECT_TRUE(heap.ok()) << heap.status();
  const internal::Segment& seg = heap->segment();
  const Header& h = seg.header();
  f.heap_start = h.heap_start;
  f.registry = h.registry_offset;
  if (!add) return f;
  const float v[3] = {1, 2, 3};
  const int64_t dims[] = {3};
  EXPECT_TRUE(*heap->Add<float>("a", v, dims));
  internal::Table table(seg.slots(), seg.table_slots_log2());
  const uint64_t index = *table.Find(heap->Hash("a"));
  f.top = h.top.load();
  f.blob = internal::AddrOffset(table.LoadAddr(index));
  f.blob_end =
      f.blob + internal::BlobRef(seg.base() + f.blob).header().size_bytes();
  f.slot = seg.table_offset() + index * sizeof(internal::Slot);
  return f;
}

template <class T>
void Poke(const std::string& path, uint64_t offset, T value) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)),
            static_cast<ssize_t>(sizeof value));
  close(fd);
}

uint64_t Entry(const File& f, uint32_t i, size_t field) {
  return f.registry + i * sizeof(SessionEntry) + field;
}

TEST(FuzzRegression, DeadSessionWithChunkOutsideTheHeapIsDataLoss) {
  // max_sessions 1: the only entry belongs to a dead process, so attach
  // must reclaim it, and its chunk record points far past the mapping.
  const File f = MakeFile("reclaim", 1);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, owner_pid)),
                 kDeadPid);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, chunk_start)),
                 uint64_t{1} << 40);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, committed)),
                 uint64_t{1} << 40);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, chunk_end)),
                 (uint64_t{1} << 40) + 4096);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  EXPECT_EQ(heap.status().code(), absl::StatusCode::kDataLoss) << heap.status();
  EXPECT_NE(heap.status().message().find("chunk record outside the heap"),
            std::string::npos)
      << heap.status();
  unlink(f.path.c_str());
}

TEST(FuzzRegression, DeadSessionWithChunkPastTopIsNotReclaimed) {
  // A record inside the mapping but past top (past the file's end) is not
  // followed either; a free entry is taken instead, and Verify reports it.
  const File f = MakeFile("past_top", 2);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, owner_pid)),
                 kDeadPid);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, chunk_start)),
                 f.top + 4096);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, committed)),
                 f.top + 4096);
  Poke<uint64_t>(f.path, Entry(f, 0, offsetof(SessionEntry, chunk_end)),
                 f.top + 8192);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  EXPECT_EQ(heap->Verify().code(), absl::StatusCode::kDataLoss);
  unlink(f.path.c_str());
}

TEST(FuzzRegression, OddEpochWithoutCollectorDoesNotHang) {
  const File f = MakeFile("odd_epoch", 2);
  Poke<uint32_t>(f.path, offsetof(Header, gc_epoch), 7);
  Poke<uint32_t>(f.path, offsetof(Header, gc_lock), 0);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(heap->segment().header().gc_epoch.load() % 2, 0u);
  EXPECT_EQ(heap->segment().header().gc_lock.load(), 0u);
  EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
  EXPECT_TRUE(heap->Collect().ok());
  EXPECT_TRUE(heap->Contains("a"));
  unlink(f.path.c_str());
}

TEST(FuzzRegression, NegativeCountersFailVerify) {
  // An empty heap that has cleared a tombstone it never claimed: stats()
  // clamps used slots to 0, which matches the empty table.
  const File f = MakeFile("negative", 2, /*add=*/false);
  Poke<uint64_t>(
      f.path,
      offsetof(Header, retired_counters) + 8 * internal::kTombstonesCleared, 1);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::Status s = heap->Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("ran negative"), std::string::npos) << s;
  unlink(f.path.c_str());
}

TEST(FuzzRegression, OverflowingCountersFailVerify) {
  const File f = MakeFile("overflow", 2);
  // One slot claimed and 2^64 cleared: the sum wraps to 0, and stats()
  // would count one used slot, as the table has. Entry 1 stays free (attach
  // takes entry 0), and a free entry's counters count too.
  Poke<uint64_t>(f.path,
                 Entry(f, 1, offsetof(SessionEntry, counters)) +
                     8 * internal::kTombstonesCleared,
                 ~uint64_t{0});
  Poke<uint64_t>(
      f.path,
      offsetof(Header, retired_counters) + 8 * internal::kTombstonesCleared, 1);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::Status s = heap->Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("overflows"), std::string::npos) << s;
  unlink(f.path.c_str());
}

TEST(FuzzRegression, UnalignedChunkTailIsDataLoss) {
  // Entry 2, of a dead process (attach takes free entry 0 and leaves it),
  // records an open tail from the filler to 4 bytes below top, the file's
  // page-aligned end: the walk would resume at top - 4 and read past it.
  const File f = MakeFile("unaligned_tail", 3);
  ASSERT_EQ(f.top % 4096, 0u);
  Poke<uint64_t>(f.path, Entry(f, 2, offsetof(SessionEntry, owner_pid)),
                 kDeadPid);
  Poke<uint64_t>(f.path, Entry(f, 2, offsetof(SessionEntry, chunk_start)),
                 f.blob_end);
  Poke<uint64_t>(f.path, Entry(f, 2, offsetof(SessionEntry, committed)),
                 f.blob_end);
  Poke<uint64_t>(f.path, Entry(f, 2, offsetof(SessionEntry, chunk_end)),
                 f.top - 4);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  EXPECT_EQ(heap->Verify().code(), absl::StatusCode::kDataLoss);
  unlink(f.path.c_str());
}

TEST(FuzzRegression, OneWordRecordAtTheEndIsDataLoss) {
  // The filler after "a" is shortened by a word, and that last word of the
  // file becomes a float32 record of one word; "a"'s slot points at it.
  const File f = MakeFile("one_word", 2);
  ASSERT_EQ(f.top % 4096, 0u);
  Poke<uint64_t>(f.path, f.blob_end,
                 internal::FillerWord(f.top - 8 - f.blob_end));
  internal::BlobHeader one_word;
  one_word.size_words = 1;
  one_word.kind = static_cast<uint8_t>(Kind::kFloat32);
  Poke<uint64_t>(f.path, f.top - 8, one_word.Encode());
  Poke<uint64_t>(f.path, f.slot + offsetof(internal::Slot, addr), f.top - 8);
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::Status s = heap->Verify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("smaller than its own prefix"), std::string::npos)
      << s;
  unlink(f.path.c_str());
}

TEST(FuzzRegression, BlobTooLargeForTheSizeFieldIsInvalid) {
  // Each just under ComputeGeometry's per-part limit; together past the
  // 48-bit word count of the header.
  const uint64_t part = internal::kMaxBlobWords * 8 / 2;
  absl::StatusOr<internal::BlobGeometry> g = internal::ComputeGeometry(
      Kind::kChar, 0, static_cast<int64_t>(part), true, part);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument)
      << (g.ok() ? g->total_bytes : 0);
}

TEST(FuzzRegression, RecordedTopPastTheFileIsDataLoss) {
  // A collector "died" closing chunks, its record naming a top a page past
  // the file's end (inside heap_limit): attach rolls the collection forward
  // and must stop at the record instead of walking off the file.
  const File f = MakeFile("old_top", 2);
  ASSERT_EQ(f.top % 4096, 0u);
  Poke<uint64_t>(f.path, offsetof(Header, gc_old_top), f.top + 4096);
  Poke<uint32_t>(f.path, offsetof(Header, phase), internal::kPhaseClosing);
  Poke<uint32_t>(f.path, offsetof(Header, gc_epoch), 1);
  Poke<uint32_t>(f.path, offsetof(Header, gc_lock),
                 static_cast<uint32_t>(kDeadPid));
  absl::StatusOr<Heap> heap = Heap::OpenFile(f.path);
  EXPECT_EQ(heap.status().code(), absl::StatusCode::kDataLoss) << heap.status();
  EXPECT_NE(heap.status().message().find("backed bytes"), std::string::npos)
      << heap.status();
  unlink(f.path.c_str());
}

}  // namespace
}  // namespace shmheap
