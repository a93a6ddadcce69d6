// The segment: position independence, attach validation and every error
// that the environment can cause, and concurrent chunked allocation by
// forked processes leaving a heap that parses end to end.

#include "heap/segment.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
  internal::Table table((*again)->slots(), (*again)->header().table_slots_log2);
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

TEST(Segment, InvalidOptions) {
  Options o = SmallOptions();
  o.table_slots_log2 = 40;
  EXPECT_EQ(Heap::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = SmallOptions();
  o.max_sessions = 0;
  EXPECT_EQ(Heap::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = SmallOptions();
  o.chunk_bytes = 1000;
  EXPECT_EQ(Heap::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
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
  Poke(path, offsetof(internal::Header, table_offset), &table, 8);
  s = Heap::OpenFile(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  unlink(path.c_str());

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

}  // namespace
}  // namespace shmheap
