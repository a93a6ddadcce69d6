// The segment: position independence, attach validation and every error
// that the environment can cause, and concurrent chunked allocation by
// forked processes leaving a heap that parses end to end. Then files: every
// option's range; FIFOs, directories, links and devices refused at once
// wherever a path is opened (under alarm(2), so a hang fails the test
// instead of stalling it), even when a FIFO is swapped in between the
// stat and the open; PendingFile (both strategies) showing nothing until
// it is complete and never replacing anything; and CreateNamed racing
// OpenNamed in forked processes, 200 times: nothing or a complete heap.

#include "heap/segment.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/walk.h"
#include "shmheap.h"
#include "tests/planted_files.h"
#include "tests/test_util.h"

namespace shmheap {
namespace {

using internal::BlobRef;
using internal::Segment;

using testing::TempPath;
using testing::UniqueName;

Options SmallOptions() {
  Options o;
  o.heap_bytes = 32 << 20;
  o.table_slots_log2 = 10;
  o.chunk_bytes = 64 << 10;
  o.max_sessions = 32;
  return o;
}

TEST(Segment, MappedTwiceAtDifferentAddresses) {
  absl::StatusOr<Heap> heap = Heap::Create(SmallOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::vector<double> v = {1.5, -2.5, 3.25, 1e300};
  const int64_t dims[] = {2, 2};
  ASSERT_TRUE(*heap->Add<double>("x", v, dims));
  absl::StatusOr<std::unique_ptr<Segment>> again = heap->segment().MapAgain();
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_NE((*again)->base(), heap->segment().base());
  // Find the blob through the second mapping's own table.
  internal::Table table((*again)->slots(), (*again)->table_slots_log2());
  std::optional<uint64_t> slot = table.Find(heap->Hash("x"));
  ASSERT_TRUE(slot.has_value());
  const uint64_t addr = internal::AddrOffset(table.LoadAddr(*slot));
  ASSERT_NE(addr, 0u);
  BlobRef blob((*again)->base() + addr);
  EXPECT_EQ(blob.key(), "x");
  ASSERT_EQ(blob.dims().size(), 2u);
  EXPECT_EQ(blob.dims()[0], 2);
  EXPECT_EQ(0, std::memcmp(blob.payload(), v.data(), sizeof(double) * 4));
  // And a write through the second mapping shows in the first.
  double* p = reinterpret_cast<double*>((*again)->base() + addr +
                                        blob.payload_offset());
  absl::StatusOr<ArrayView<double>> view = heap->Get<double>("x");
  ASSERT_TRUE(view.ok());
  EXPECT_NE(static_cast<const void*>(view->data()), static_cast<void*>(p));
  EXPECT_EQ((*view)(1, 1), 1e300);
}

TEST(Segment, NamedCreateOpenUnlink) {
  const std::string name = UniqueName("named");
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, SmallOptions());
  ASSERT_TRUE(heap.ok()) << heap.status();
  struct stat st;
  ASSERT_EQ(0, stat(absl::StrCat("/dev/shm/", name).c_str(), &st));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Heap::CreateNamed(name, SmallOptions()).status().code(),
            absl::StatusCode::kAlreadyExists);
  const int32_t v[] = {7, 8, 9};
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<int32_t>("k", v, dims));
  absl::StatusOr<Heap> other = Heap::OpenNamed("/" + name);
  ASSERT_TRUE(other.ok()) << other.status();
  absl::StatusOr<ArrayView<int32_t>> got = other->Get<int32_t>("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)(2), 9);
  EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
  EXPECT_EQ(Heap::UnlinkNamed(name).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Heap::OpenNamed(name).status().code(), absl::StatusCode::kNotFound);
  // Existing mappings stay valid after unlink.
  EXPECT_EQ((*got)(0), 7);
}

TEST(Segment, InvalidNames) {
  for (const char* bad : {"", "/", "a/b", "/a/b", ".", "..", "/.."}) {
    EXPECT_EQ(Heap::CreateNamed(bad, SmallOptions()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(Heap::OpenNamed(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(Heap::OpenNamed(std::string(300, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Heap::OpenNamed(std::string("a\0b", 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A heap smaller than one chunk takes chunks of the heap's size: it can
// be written, and attached to by name.
TEST(Segment, ChunkLargerThanTheHeapIsClamped) {
  Options o = SmallOptions();
  o.heap_bytes = 64 << 10;
  o.chunk_bytes = 1 << 20;
  const std::string name = UniqueName("tiny");
  absl::StatusOr<Heap> heap = Heap::CreateNamed(name, o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const int32_t v[] = {4, 5, 6};
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<int32_t>("k", v, dims));
  absl::StatusOr<Heap> other = Heap::OpenNamed(name);
  ASSERT_TRUE(other.ok()) << other.status();
  absl::StatusOr<ArrayView<int32_t>> got = other->Get<int32_t>("k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)(2), 6);
  EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
}

// Every option is range-checked before anything is created, and the error
// names the field, the value and the range.
TEST(Segment, OptionsOutOfRangeAreRefusedNamingFieldValueAndRange) {
  struct Case {
    const char* what;
    void (*set)(Options&);
    const char* message;
  };
  const Case cases[] = {
      {"table_slots_log2 3", [](Options& o) { o.table_slots_log2 = 3; },
       "table_slots_log2 must be 4..32, not 3"},
      {"table_slots_log2 40", [](Options& o) { o.table_slots_log2 = 40; },
       "table_slots_log2 must be 4..32, not 40"},
      {"max_sessions 0", [](Options& o) { o.max_sessions = 0; },
       "max_sessions must be 1..65536, not 0"},
      {"max_sessions 65537", [](Options& o) { o.max_sessions = 65537; },
       "max_sessions must be 1..65536, not 65537"},
      {"heap_bytes 0", [](Options& o) { o.heap_bytes = 0; },
       "heap_bytes must be 4096..70368744177664, not 0"},
      {"heap_bytes 4095", [](Options& o) { o.heap_bytes = 4095; },
       "heap_bytes must be 4096..70368744177664, not 4095"},
      {"heap_bytes 2^46 + 1",
       [](Options& o) { o.heap_bytes = (uint64_t{1} << 46) + 1; },
       "heap_bytes must be 4096..70368744177664, not 70368744177665"},
      {"heap_bytes 2^64 - 1", [](Options& o) { o.heap_bytes = UINT64_MAX; },
       "heap_bytes must be 4096..70368744177664, not 18446744073709551615"},
      {"chunk_bytes 0", [](Options& o) { o.chunk_bytes = 0; },
       "chunk_bytes must be a multiple of 4096 in 4096..70368744177664, not "
       "0"},
      {"chunk_bytes 1000", [](Options& o) { o.chunk_bytes = 1000; },
       "chunk_bytes must be a multiple of 4096 in 4096..70368744177664, not "
       "1000"},
      {"chunk_bytes 6000", [](Options& o) { o.chunk_bytes = 6000; },
       "chunk_bytes must be a multiple of 4096 in 4096..70368744177664, not "
       "6000"},
      {"chunk_bytes 2^47",
       [](Options& o) { o.chunk_bytes = uint64_t{1} << 47; },
       "chunk_bytes must be a multiple of 4096 in 4096..70368744177664, not "
       "140737488355328"},
      {"min_available_bytes 2^48 + 1",
       [](Options& o) { o.min_available_bytes = (uint64_t{1} << 48) + 1; },
       "min_available_bytes must be 0..281474976710656, not "
       "281474976710657"},
      // -1 through an unsigned field: once a floor that turned itself off.
      {"min_available_bytes 2^64 - 1",
       [](Options& o) { o.min_available_bytes = UINT64_MAX; },
       "min_available_bytes must be 0..281474976710656, not "
       "18446744073709551615"},
  };
  const std::string name = UniqueName("options");
  const std::string path = TempPath("options");
  unlink(path.c_str());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Options o = SmallOptions();
    c.set(o);
    for (const absl::Status& s :
         {Heap::Create(o).status(), Heap::CreateNamed(name, o).status(),
          Heap::CreateFile(path, o).status()}) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_EQ(s.message(), c.message) << s;
    }
    struct stat st;
    EXPECT_NE(stat(("/dev/shm/" + name).c_str(), &st), 0) << "left a heap";
    EXPECT_NE(stat(path.c_str(), &st), 0) << "left a file";
  }
  // The edges of each range are accepted (2^46 of heap is only reserved).
  Options o = SmallOptions();
  o.table_slots_log2 = 4;
  o.max_sessions = 1;
  o.heap_bytes = 4096;
  o.chunk_bytes = 4096;
  o.min_available_bytes = 0;
  EXPECT_TRUE(Heap::Create(o).ok()) << Heap::Create(o).status();
  o = SmallOptions();
  o.heap_bytes = uint64_t{1} << 46;
  o.chunk_bytes = uint64_t{1} << 46;
  o.max_sessions = 65536;
  o.min_available_bytes = uint64_t{1} << 48;  // refuses to grow, but valid
  absl::StatusOr<Heap> big = Heap::Create(o);
  // The floor stops even the metadata from being backed.
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted)
      << big.status();
  o.min_available_bytes = 0;
  big = Heap::Create(o);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->stats().heap_capacity, uint64_t{1} << 46);
}

TEST(Segment, FileBackedMapsStraightBack) {
  const std::string path = TempPath("file-heap");
  unlink(path.c_str());
  {
    absl::StatusOr<Heap> heap = Heap::CreateFile(path, SmallOptions());
    ASSERT_TRUE(heap.ok()) << heap.status();
    const float v[] = {1, 2, 3, 4, 5, 6};
    const int64_t dims[] = {2, 3};
    ASSERT_TRUE(*heap->Add<float>("m", v, dims, Layout::kFortran));
    EXPECT_EQ(Heap::CreateFile(path, SmallOptions()).status().code(),
              absl::StatusCode::kAlreadyExists);
  }
  absl::StatusOr<Heap> heap = Heap::OpenFile(path);
  ASSERT_TRUE(heap.ok()) << heap.status();
  absl::StatusOr<ArrayView<float>> m = heap->Get<float>("m");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->layout(), Layout::kFortran);
  EXPECT_EQ((*m)(2, 3), 6.0f);  // Fortran: 1-based, column-major
  EXPECT_EQ((*m)(2, 1), 2.0f);
  unlink(path.c_str());
  EXPECT_EQ(Heap::OpenFile(path).status().code(), absl::StatusCode::kNotFound);
}

// Writes `bytes` at `offset` of the file at `path`.
void Poke(const std::string& path, off_t offset, const void* bytes, size_t n) {
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes, n, offset), static_cast<ssize_t>(n));
  close(fd);
}

std::string MakeHeapFile(const std::string& tag) {
  const std::string path = TempPath(tag);
  unlink(path.c_str());
  absl::StatusOr<Heap> heap = Heap::CreateFile(path, SmallOptions());
  EXPECT_TRUE(heap.ok()) << heap.status();
  const float v[] = {1, 2};
  const int64_t dims[] = {2};
  EXPECT_TRUE(heap->Add<float>("a", v, dims).ok());
  return path;
}

TEST(Segment, AttachRejectsRandomBytes) {
  const std::string path = TempPath("random");
  std::vector<char> junk(1 << 16);
  std::mt19937 rng(42);
  for (char& c : junk) c = static_cast<char>(rng());
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_EQ(write(fd, junk.data(), junk.size()),
            static_cast<ssize_t>(junk.size()));
  close(fd);
  absl::Status s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("not a shmheap segment"), std::string::npos) << s;
  // Too short to hold a header at all.
  ASSERT_EQ(0, truncate(path.c_str(), 100));
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  unlink(path.c_str());
}

TEST(Segment, AttachRejectsTruncatedSegment) {
  const std::string path = MakeHeapFile("truncated");
  struct stat st;
  ASSERT_EQ(0, stat(path.c_str(), &st));
  // Cut into the heap, below its top: its blobs would fault.
  ASSERT_EQ(0, truncate(path.c_str(), 8192));
  absl::Status s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
  unlink(path.c_str());
}

TEST(Segment, AttachRejectsWrongMagicAndFormat) {
  std::string path = MakeHeapFile("magic");
  const uint64_t bad = 0x1234;
  Poke(path, offsetof(internal::Header, magic), &bad, 8);
  absl::Status s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s;
  unlink(path.c_str());

  path = MakeHeapFile("format");
  const uint64_t format = internal::FormatWord() + (uint64_t{1} << 48);
  Poke(path, offsetof(internal::Header, format), &format, 8);
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  // The message names the version this build reads.
  EXPECT_NE(s.message().find(
                absl::StrCat("(version ", internal::kFormatVersion, ")")),
            std::string::npos)
      << s;
  unlink(path.c_str());

  path = MakeHeapFile("geometry");
  const uint64_t table = 12345;
  Poke(path, offsetof(internal::Header, table_areas_offset), &table, 8);
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  unlink(path.c_str());

  // A live table in an area that does not exist, or larger than its area.
  for (const uint64_t word :
       {internal::TableWord(2, 10), internal::TableWord(0, 30),
        internal::TableWord(1, 3)}) {
    path = MakeHeapFile("table word");
    Poke(path, offsetof(internal::Header, table), &word, 8);
    s = Heap::OpenFile(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << word << ": " << s;
    unlink(path.c_str());
  }

  path = MakeHeapFile("top");
  const uint64_t top = uint64_t{1} << 40;
  Poke(path, offsetof(internal::Header, top), &top, 8);
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  unlink(path.c_str());
}

TEST(Segment, AttachRejectsAnotherOwner) {
  // The header names another owner than the object's.
  std::string path = MakeHeapFile("owner-header");
  const uint32_t uid = geteuid() + 1;
  Poke(path, offsetof(internal::Header, owner_uid), &uid, 4);
  absl::Status s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  unlink(path.c_str());
  // The object itself belongs to another uid (needs root to arrange).
  path = MakeHeapFile("owner");
  if (chown(path.c_str(), 12345, 12345) != 0) {
    unlink(path.c_str());
    GTEST_SKIP() << "cannot chown here: " << strerror(errno);
  }
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("uid 12345"), std::string::npos) << s;
  unlink(path.c_str());
}

TEST(Segment, HeapFullIsAnErrorAndTheHeapStaysUsable) {
  Options o = SmallOptions();
  o.heap_bytes = 1 << 20;
  o.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  std::vector<float> v(4000, 1.0f);
  const int64_t dims[] = {4000};
  int added = 0;
  absl::Status last;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<bool> r = heap->Add<float>(absl::StrCat("k", i), v, dims);
    if (!r.ok()) {
      last = r.status();
      break;
    }
    ++added;
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
  EXPECT_NE(last.message().find("full"), std::string::npos) << last;
  ASSERT_GT(added, 10);
  // Everything published before is intact and readable; removes still work.
  for (int i = 0; i < added; ++i) {
    absl::StatusOr<ArrayView<float>> got =
        heap->Get<float>(absl::StrCat("k", i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->size(), 4000);
    EXPECT_EQ((*got)(3999), 1.0f);
  }
  EXPECT_TRUE(heap->Remove("k0").ok());
  EXPECT_FALSE(heap->Contains("k0"));
}

// RLIMIT_FSIZE would raise SIGXFSZ on the write that crosses it, killing
// the process: a file-backed heap must return an error before that.
TEST(Segment, FileSizeLimitIsAnErrorNotASignal) {
  const std::string path = TempPath("fsize");
  unlink(path.c_str());
  std::vector<int> codes = testing::RunProcesses(1, [&](int) {
    Options o = SmallOptions();
    absl::StatusOr<Heap> heap = Heap::CreateFile(path, o);
    if (!heap.ok()) return 10;
    const uint64_t start = heap->segment().header().heap_start;
    struct rlimit rl = {start + (256 << 10), RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 11;
    std::vector<double> v(1000, 2.0);
    const int64_t dims[] = {1000};
    int i = 0;
    for (; i < 10000; ++i) {
      absl::StatusOr<bool> r = heap->Add<double>(absl::StrCat("k", i), v, dims);
      if (!r.ok()) {
        if (r.status().code() != absl::StatusCode::kResourceExhausted)
          return 12;
        if (r.status().message().find("RLIMIT_FSIZE") == std::string::npos)
          return 13;
        break;
      }
    }
    if (i == 0 || i == 10000) return 14;
    for (int j = 0; j < i; ++j) {
      absl::StatusOr<ArrayView<double>> got =
          heap->Get<double>(absl::StrCat("k", j));
      if (!got.ok() || (*got)(999) != 2.0) return 15;
    }
    return 0;
  });
  EXPECT_EQ(codes[0], 0);
  unlink(path.c_str());
}

TEST(Segment, MaxSessionsReached) {
  Options o = SmallOptions();
  o.max_sessions = 2;
  const std::string name = UniqueName("sessions");
  absl::StatusOr<Heap> a = Heap::CreateNamed(name, o);
  ASSERT_TRUE(a.ok()) << a.status();
  // Each Heap object is one session of this process.
  absl::StatusOr<Heap> b = Heap::OpenNamed(name);
  ASSERT_TRUE(b.ok()) << b.status();
  absl::Status s = Heap::OpenNamed(name).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // A session that leaves frees its entry.
  *b = *std::move(a);
  EXPECT_TRUE(Heap::OpenNamed(name).ok());
  Heap::UnlinkNamed(name).IgnoreError();
}

// Forked children allocate in their own chunks at once; afterwards every
// blob is intact and the heap parses end to end from heap_start to top.
TEST(Segment, ConcurrentChunkedAllocationParses) {
  Options o = SmallOptions();
  o.heap_bytes = 256 << 20;
  o.table_slots_log2 = 16;
  o.chunk_bytes = 64 << 10;
  absl::StatusOr<Heap> heap = Heap::Create(o);
  ASSERT_TRUE(heap.ok()) << heap.status();
  constexpr int kProcs = 6, kPerProc = 3000;
  std::vector<int> codes = testing::RunProcesses(kProcs, [&](int p) {
    for (int i = 0; i < kPerProc; ++i) {
      const uint64_t key = p * kPerProc + i;
      // Sizes from tiny to over a chunk, so large blobs get chunks of their
      // own.
      const size_t n = i % 500 == 0 ? 20000 : 1 + (key * 37) % 300;
      std::vector<float> v = testing::ArrayFor(key, 0, n);
      const int64_t dims[] = {static_cast<int64_t>(n)};
      absl::StatusOr<bool> r = heap->Add<float>(testing::KeyName(key), v, dims);
      if (!r.ok() || !*r) return 1;
    }
    return 0;
  });
  for (int c : codes) ASSERT_EQ(c, 0);
  for (uint64_t key = 0; key < kProcs * kPerProc; ++key) {
    absl::StatusOr<ArrayView<float>> got =
        heap->Get<float>(testing::KeyName(key));
    ASSERT_TRUE(got.ok()) << got.status();
    for (int64_t j = 0; j < got->size(); ++j) {
      ASSERT_EQ((*got)(j), testing::ValueFor(key, 0, j)) << key;
    }
  }
  uint64_t blobs = 0, fillers = 0;
  absl::Status walk = internal::WalkHeap(heap->segment(),
                                         [&](uint64_t, internal::BlobHeader h) {
                                           (h.is_filler() ? fillers : blobs)++;
                                           return true;
                                         });
  ASSERT_TRUE(walk.ok()) << walk;
  EXPECT_EQ(blobs, uint64_t{kProcs * kPerProc});
  EXPECT_GT(fillers, 0u);  // children left, closing their chunks
  Stats s = heap->stats();
  EXPECT_EQ(s.live_blobs, uint64_t{kProcs * kPerProc});
  EXPECT_GT(s.live_bytes, uint64_t{kProcs * kPerProc} * 24);
  EXPECT_LE(s.live_bytes + s.dead_bytes, s.heap_top);
  EXPECT_EQ(s.sessions, 1u);  // the children died; only the parent lives
}

// ---------------------------------------------------------------------------
// Files.

// Fails the test (the process dies of SIGALRM) if it is still running after
// `seconds`: a call that blocks on a FIFO fails fast instead of hanging.
class HangGuard {
 public:
  explicit HangGuard(unsigned seconds) { alarm(seconds); }
  ~HangGuard() { alarm(0); }
};

using testing::BaseOf;
using testing::DirOf;
using testing::EntriesContaining;
using testing::kEveryPlant;
using testing::Plant;
using testing::PlantAt;
using testing::PlantName;
using testing::RemovePlant;
using testing::TypeAt;

// Every library call that takes a name or a path refuses each kind of
// non-regular file at once: opening it is kFailedPrecondition saying what
// it is, creating over it is kAlreadyExists saying what is there, and the
// planted object is left as it was. A name in /dev/shm never follows a
// link; a heap file path follows one, to a target that must pass the same
// checks.
TEST(Files, NonRegularFilesAreRefusedAtOnceSayingWhatTheyAre) {
  HangGuard guard(30);
  for (Plant p : kEveryPlant) {
    SCOPED_TRACE(PlantName(p));
    const std::string name = UniqueName("plant");
    const std::string shm = "/dev/shm/" + name;
    const std::string file = TempPath("plant");
    RemovePlant(shm);
    RemovePlant(file);
    if (!PlantAt(p, shm) || !PlantAt(p, file)) {
      std::printf("skipping %s: %s\n", PlantName(p), std::strerror(errno));
      RemovePlant(shm);
      continue;
    }
    const mode_t type = TypeAt(shm);
    // The link in /dev/shm is refused as a link; the link at a file path is
    // followed to /dev/null, a character device.
    const std::string is = absl::StrCat(": is ", PlantName(p));
    const std::string followed =
        p == Plant::kSymlink ? ": is a character device" : is;
    absl::Status s = Heap::OpenNamed(name).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(s.message(),
              absl::StrCat("heap /", name, is, ", not a regular file"));
    s = Heap::OpenFile(file).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(s.message(), absl::StrCat("heap file ", file, followed,
                                        ", not a regular file"));
    s = Heap::CreateNamed(name, SmallOptions()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    EXPECT_EQ(s.message(), absl::StrCat("heap /", name, " already exists (",
                                        PlantName(p), ")"));
    s = Heap::CreateFile(file, SmallOptions()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    EXPECT_EQ(s.message(), absl::StrCat("heap file ", file, " already exists (",
                                        PlantName(p), ")"));
    EXPECT_EQ(TypeAt(shm), type) << "the planted object was changed";
    EXPECT_EQ(TypeAt(file), type) << "the planted object was changed";
    // Unlinking a name removes whatever it names, without opening it.
    if (p != Plant::kDirectory) {
      EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
      EXPECT_EQ(TypeAt(shm), 0u);
    }
    RemovePlant(shm);
    RemovePlant(file);
  }
  // A FIFO that has a reader and a writer still is no heap.
  const std::string fifo = TempPath("busy-fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const int rw = open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(rw, 0);
  absl::Status s = Heap::OpenFile(fifo).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  close(rw);
  unlink(fifo.c_str());
}

// OpenRegularFile stats a path before it opens it, but the path can change
// in between: a child swaps a FIFO and a regular file at the path
// (renameat2 RENAME_EXCHANGE) as fast as it can while this process opens
// it read-only (as load and rm do) 20,000 times. Each open returns the
// regular file or refuses the FIFO; none blocks. Without O_NONBLOCK an open
// that lands on the FIFO after the stat saw the file waits for a writer
// forever, and the alarm fails the test.
TEST(Files, AFifoSwappedInAfterTheStatDoesNotBlockTheOpen) {
  HangGuard guard(60);
  const std::string path = TempPath("swap");
  const std::string other = TempPath("swap-other");
  unlink(path.c_str());
  unlink(other.c_str());
  {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "regular", 7), 7);
    close(fd);
  }
  ASSERT_EQ(mkfifo(other.c_str(), 0600), 0);
  const pid_t swapper = fork();
  if (swapper == 0) {
    for (;;) {
      if (renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, other.c_str(),
                    RENAME_EXCHANGE) != 0) {
        _exit(2);
      }
    }
  }
  int regular = 0, fifo = 0;
  for (int i = 0; i < 20000; ++i) {
    absl::StatusOr<int> fd = internal::OpenRegularFile(
        path, O_RDONLY, internal::Links::kRefuse, "the file");
    if (fd.ok()) {
      struct stat st;
      ASSERT_EQ(fstat(*fd, &st), 0);
      EXPECT_TRUE(S_ISREG(st.st_mode));
      close(*fd);
      ++regular;
    } else if (fd.status().code() == absl::StatusCode::kNotFound) {
      // renameat2 exchanges atomically; nothing is ever missing.
      ADD_FAILURE() << fd.status();
    } else {
      ASSERT_EQ(fd.status().code(), absl::StatusCode::kFailedPrecondition)
          << fd.status();
      EXPECT_EQ(fd.status().message(),
                "the file: is a FIFO, not a regular file");
      ++fifo;
    }
  }
  kill(swapper, SIGKILL);
  int status = 0;
  waitpid(swapper, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the swapper failed: " << status;
  std::printf("opens while swapping: %d regular, %d FIFO\n", regular, fifo);
  EXPECT_GT(regular, 0);
  EXPECT_GT(fifo, 0);
  unlink(path.c_str());
  unlink(other.c_str());
}

using internal::PendingFile;
using Strategy = internal::PendingFile::Strategy;

class PendingFileTest : public ::testing::TestWithParam<Strategy> {};

// A pending file is nowhere to be seen until Publish, which gives it its
// path in one step; one that is dropped leaves nothing (no temporary).
TEST_P(PendingFileTest, InvisibleUntilPublishedAndLeavesNothingWhenDropped) {
  const std::string path = TempPath("pending");
  unlink(path.c_str());
  {
    absl::StatusOr<PendingFile> f =
        PendingFile::Create(path, "the file", GetParam());
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->unnamed(), GetParam() == Strategy::kUnnamed);
    ASSERT_EQ(pwrite(f->fd(), "contents", 8, 0), 8);
    EXPECT_EQ(TypeAt(path), 0u);
    // The unpublished file can be opened through open_path.
    const int fd = open(f->open_path().c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << f->open_path();
    char buf[8];
    EXPECT_EQ(pread(fd, buf, 8, 0), 8);
    close(fd);
  }
  EXPECT_EQ(TypeAt(path), 0u);
  EXPECT_EQ(EntriesContaining(DirOf(path), BaseOf(path)),
            std::vector<std::string>{})
      << "a temporary was left behind";
  {
    absl::StatusOr<PendingFile> f =
        PendingFile::Create(path, "the file", GetParam());
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(pwrite(f->fd(), "contents", 8, 0), 8);
    ASSERT_TRUE(f->Publish().ok());
    EXPECT_EQ(f->Publish().code(), absl::StatusCode::kFailedPrecondition);
  }
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(EntriesContaining(DirOf(path), BaseOf(path)),
            std::vector<std::string>{BaseOf(path)});
  unlink(path.c_str());
}

// Publish never replaces what appeared at the path after Create, whatever
// it is, and never follows a link there; the file then stays unpublished
// and is dropped. Create refuses a path that exists already.
TEST_P(PendingFileTest, PublishNeverReplacesAnything) {
  const std::string path = TempPath("noreplace");
  const std::string target = TempPath("noreplace-target");
  for (Plant p : {Plant::kFifo, Plant::kDirectory, Plant::kSymlink}) {
    SCOPED_TRACE(PlantName(p));
    RemovePlant(path);
    absl::StatusOr<PendingFile> f =
        PendingFile::Create(path, "the file", GetParam());
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(PlantAt(p, path)) << std::strerror(errno);
    const mode_t type = TypeAt(path);
    absl::Status s = f->Publish();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    EXPECT_EQ(s.message(),
              absl::StrCat("the file already exists (", PlantName(p), ")"));
    EXPECT_EQ(TypeAt(path), type);
    s = PendingFile::Create(path, "the file", GetParam()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    *f = *PendingFile::Create(target, "other", GetParam());  // drops the first
    RemovePlant(path);
  }
  // A dangling link: its target is not created.
  unlink(target.c_str());
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  EXPECT_EQ(PendingFile::Create(path, "the file", GetParam()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(TypeAt(target), 0u);
  unlink(path.c_str());
  EXPECT_EQ(EntriesContaining(DirOf(path), BaseOf(path)),
            std::vector<std::string>{});
}

// A process killed before Publish leaves nothing at the path, and at most
// a uniquely named temporary (named strategy) that does not stop the next
// file: 20 children are SIGKILLed with a pending file half written.
TEST_P(PendingFileTest, AKilledWriterLeavesNothingInTheWay) {
  const std::string path = TempPath("killed");
  unlink(path.c_str());
  for (int i = 0; i < 20; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      absl::StatusOr<PendingFile> f =
          PendingFile::Create(path, "the file", GetParam());
      if (!f.ok()) _exit(1);
      (void)!pwrite(f->fd(), "half", 4, 0);
      raise(SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
  }
  EXPECT_EQ(TypeAt(path), 0u);
  const std::vector<std::string> left =
      EntriesContaining(DirOf(path), BaseOf(path));
  if (GetParam() == Strategy::kUnnamed) {
    EXPECT_EQ(left, std::vector<std::string>{});
  } else {
    EXPECT_EQ(left.size(), 20u);  // one distinct temporary per process
  }
  absl::StatusOr<PendingFile> f =
      PendingFile::Create(path, "the file", GetParam());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Publish().ok());
  unlink(path.c_str());
  for (const std::string& e : left) unlink((DirOf(path) + "/" + e).c_str());
}

// A reader racing the writer of a pending file: 200 times a child writes
// 1 MiB into a pending file and publishes it while this process opens the
// path in a loop. Every open finds nothing or the whole 1 MiB.
TEST_P(PendingFileTest, AReaderSeesNothingOrTheWholeFile) {
  HangGuard guard(120);
  const std::string path = TempPath("race");
  const std::vector<char> data(1 << 20, 'x');
  int saw_nothing_first = 0;
  for (int i = 0; i < 200; ++i) {
    unlink(path.c_str());
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      char c;
      if (read(go[0], &c, 1) != 1) _exit(1);
      absl::StatusOr<PendingFile> f =
          PendingFile::Create(path, "the file", GetParam());
      if (!f.ok()) _exit(2);
      for (size_t off = 0; off < data.size(); off += 4096) {
        if (pwrite(f->fd(), data.data() + off, 4096, off) != 4096) _exit(3);
      }
      _exit(f->Publish().ok() ? 0 : 4);
    }
    ASSERT_EQ(write(go[1], "g", 1), 1);
    bool nothing = false;
    for (;;) {
      const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        ASSERT_EQ(errno, ENOENT);
        nothing = true;
        continue;
      }
      struct stat st;
      ASSERT_EQ(fstat(fd, &st), 0);
      close(fd);
      ASSERT_EQ(st.st_size, 1 << 20) << "try " << i;
      break;
    }
    saw_nothing_first += nothing;
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    close(go[0]);
    close(go[1]);
  }
  EXPECT_GT(saw_nothing_first, 100);
  unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(BothStrategies, PendingFileTest,
                         ::testing::Values(Strategy::kUnnamed,
                                           Strategy::kNamedTemporary),
                         [](const ::testing::TestParamInfo<Strategy>& info) {
                           return info.param == Strategy::kUnnamed
                                      ? "Unnamed"
                                      : "NamedTemporary";
                         });

// A program waiting for a heap to appear can tell creation from damage: a
// forked creator calls CreateNamed while this process calls OpenNamed on
// the same name in a loop, 200 times. Every open answers kNotFound (not
// there yet) or a complete heap: the creator's geometry and seed, and
// Verify passes. Never kDataLoss ("truncated: 0 bytes" was the answer
// about 1 time in 6 while creation wrote the heap in place) nor "not a
// shmheap segment" (magic not yet written).
TEST(Segment, OpenRacingCreateFindsNothingOrACompleteHeap) {
  HangGuard guard(240);
  Options o = SmallOptions();
  o.table_slots_log2 = 16;  // 1 MiB of table: a wide window while backed
  o.max_sessions = 64;
  o.seed = 0x5eed;
  int saw_nothing_first = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string name = UniqueName(absl::StrCat("race-", i));
    (void)Heap::UnlinkNamed(name);
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      char c;
      if (read(go[0], &c, 1) != 1) _exit(1);
      _exit(Heap::CreateNamed(name, o).ok() ? 0 : 2);
    }
    ASSERT_EQ(write(go[1], "g", 1), 1);
    bool nothing = false;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    absl::StatusOr<Heap> heap = absl::UnknownError("not opened");
    for (;;) {
      heap = Heap::OpenNamed(name);
      if (heap.ok()) break;
      ASSERT_EQ(heap.status().code(), absl::StatusCode::kNotFound)
          << "try " << i << ": " << heap.status();
      nothing = true;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "try " << i;
    }
    saw_nothing_first += nothing;
    const internal::Header& h = heap->segment().header();
    EXPECT_EQ(h.seed, 0x5eedu);
    EXPECT_EQ(internal::TableSlotsLog2(h.table.load()), 16u);
    EXPECT_EQ(h.max_sessions, 64u);
    EXPECT_EQ(heap->stats().heap_capacity, uint64_t{32} << 20);
    EXPECT_TRUE(heap->Verify().ok()) << heap->Verify();
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    close(go[0]);
    close(go[1]);
    EXPECT_TRUE(Heap::UnlinkNamed(name).ok());
  }
  std::printf("opens that found nothing before the heap: %d of 200\n",
              saw_nothing_first);
  EXPECT_GT(saw_nothing_first, 100);
}

}  // namespace
}  // namespace shmheap
