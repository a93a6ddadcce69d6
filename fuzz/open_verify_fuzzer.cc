// Fuzz target: a file of arbitrary bytes is opened as a heap and verified;
// a heap that Verify accepts is then read, written and collected.
//
// What it checks (a violation aborts, which libFuzzer reports as a crash):
//   * Heap::OpenFile on any file returns a Heap or an error Status
//     (kDataLoss, kFailedPrecondition, kPermissionDenied,
//     kResourceExhausted); it never faults (SIGSEGV, or SIGBUS on a page past
//     the end of the file), hangs, or trips ASan or UBSan;
//   * stats() and Verify() on any heap that opened: Verify returns OK or
//     kDataLoss;
//   * once Verify accepts a heap (the README's trust model: a file's table
//     and blobs are trusted only then), every slot's value reads through
//     GetRaw entirely inside [heap_start, top), with Contains agreeing;
//   * a verified heap stays verified after Add, Replace and Remove (which
//     may fail only for capacity or a hash collision) and after Collect,
//     which keeps every lookup's answer and bytes unchanged. (Files whose
//     chunk size is large, or whose counters sit near 2^64, skip the
//     writes: see kMaxChunkForWrites and CountersHaveHeadroom.)
//
// Input: fuzz/heap_image.h (a sparse or raw heap file). The file is a memfd
// opened through /proc/self/fd/N, so OpenFile takes the path a file on disk
// would have, and a page past the memfd's size faults as a file's does.
//
// SHMHEAP_FUZZ_VERBOSE=1 in the environment prints how far each input got
// (the open and Verify statuses), to see which seeds reach deep states.
//
// One input is changed before opening: a Header::gc_lock naming a live
// process is cleared. Attach waits for a running collection by design, and no
// file can tell a live collector from a live unrelated process (pid 1, or the
// fuzzer itself), so such inputs would only hang the fuzzer.

#include <sys/mman.h>
#include <unistd.h>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/heap_image.h"
#include "hashtable/table.h"
#include "heap/blob.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "shmheap.h"
#include "tests/kinds.h"

namespace shmheap::fuzz {
namespace {

using absl::StatusCode;
using internal::Header;

// Writes are tried only when a chunk is small: a fuzzed chunk_bytes of
// gigabytes would be fallocated in memory by the first Add.
constexpr uint64_t kMaxChunkForWrites = 64 << 10;

// The memfd that holds the current input's file, reused across inputs.
int ImageFd() {
  static const int fd = memfd_create("open_verify_fuzzer", MFD_CLOEXEC);
  return fd;
}

bool WriteFile(int fd, const std::string& file) {
  if (ftruncate(fd, 0) != 0) return false;
  size_t done = 0;
  while (done < file.size()) {
    const ssize_t n = pwrite(fd, file.data() + done, file.size() - done,
                             static_cast<off_t>(done));
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void ForgetLiveCollector(std::string& file) {
  constexpr size_t kOffset = offsetof(Header, gc_lock);
  if (file.size() < kOffset + 4) return;
  uint32_t pid;
  std::memcpy(&pid, file.data() + kOffset, 4);
  if (pid != 0 && internal::ProcessAlive(static_cast<pid_t>(pid), 0)) {
    pid = 0;
    std::memcpy(file.data() + kOffset, &pid, 4);
  }
}

// Prints a stage's outcome when SHMHEAP_FUZZ_VERBOSE is set.
void Trace(const char* stage, const absl::Status& status) {
  static const bool verbose = std::getenv("SHMHEAP_FUZZ_VERBOSE") != nullptr;
  if (verbose)
    std::fprintf(stderr, "%s: %s\n", stage, status.ToString().c_str());
}

// What one lookup answered: the code, and for a value its shape and bytes.
struct Answer {
  StatusCode code = StatusCode::kOk;
  Kind kind = Kind::kChar;
  Layout layout = Layout::kC;
  std::vector<int64_t> dims;
  std::string bytes;

  bool operator==(const Answer&) const = default;
};

// The (hash, key) of every slot that holds a value, as a reader holding
// only the file would look them up.
std::vector<std::pair<uint64_t, std::string>> Lookups(const Heap& heap) {
  const internal::Segment& seg = heap.segment();
  internal::Table table(seg.slots(), seg.table_slots_log2());
  std::vector<std::pair<uint64_t, std::string>> out;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    const uint64_t addr = internal::AddrOffset(table.LoadAddr(i));
    if (addr == 0) continue;
    // Verify has checked that the key lies inside the blob.
    const internal::BlobRef blob(seg.base() + addr);
    out.emplace_back(table.slot(i).hash.load(std::memory_order_relaxed),
                     std::string(blob.key()));
  }
  return out;
}

Answer Read(const Heap& heap, uint64_t hash, const std::string& key) {
  const HashedKey hashed{hash, key};
  Answer a;
  absl::StatusOr<RawView> v = heap.GetRaw(hashed);
  FUZZ_CHECK(heap.Contains(hashed) == v.ok(), v.status().ToString());
  if (!v.ok()) {
    FUZZ_CHECK_CODE(v.status(), StatusCode::kNotFound);
    a.code = v.status().code();
    return a;
  }
  const internal::Segment& seg = heap.segment();
  const Header& h = seg.header();
  const std::byte* lo = seg.base() + h.heap_start;
  const std::byte* hi = seg.base() + h.top.load(std::memory_order_relaxed);
  const std::span<const std::byte> bytes = v->bytes();
  FUZZ_CHECK(bytes.data() >= lo && bytes.data() <= hi &&
                 bytes.size() <= static_cast<size_t>(hi - bytes.data()),
             absl::StrCat("a value of ", bytes.size(), " bytes at heap offset ",
                          bytes.data() - lo, " is outside the heap's ", hi - lo,
                          " bytes"));
  FUZZ_CHECK(v->As<char>().ok() == (v->kind() == Kind::kChar));
  if (v->ndims() > 0) {
    testing::VisitKind(v->kind(), [&](auto zero) {
      using T = decltype(zero);
      absl::StatusOr<ArrayView<T>> typed = v->As<T>();
      FUZZ_CHECK(typed.ok(), typed.status().ToString());
      // Bigarray's sub and slice of stored data: the slowest dimension's
      // full range is a valid Sub, and fixing its first index a valid Slice
      // exactly when it is not empty.
      const int axis = typed->layout() == Layout::kC ? 0 : typed->ndims() - 1;
      const int64_t base = typed->layout() == Layout::kC ? 0 : 1;
      const int64_t first[] = {base};
      FUZZ_CHECK(typed->Sub(base, typed->dim(axis)).ok());
      FUZZ_CHECK(typed->Slice(first).ok() == (typed->dim(axis) > 0));
    });
  }
  a.kind = v->kind();
  a.layout = v->layout();
  a.dims.assign(v->dims().begin(), v->dims().end());
  a.bytes.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return a;
}

std::vector<Answer> ReadAll(
    const Heap& heap,
    const std::vector<std::pair<uint64_t, std::string>>& lookups) {
  std::vector<Answer> out;
  for (const auto& [hash, key] : lookups) {
    out.push_back(Read(heap, hash, key));
    // The hash alone (a HashedKey with no key) finds a value whenever the
    // hash and key do.
    if (out.back().code == StatusCode::kOk) {
      FUZZ_CHECK(heap.Contains(HashedKey{hash, {}}));
    }
  }
  return out;
}

void CheckVerifies(const Heap& heap, const char* after) {
  const absl::Status s = heap.Verify();
  FUZZ_CHECK(s.ok(), absl::StrCat("a verified heap fails Verify after ", after,
                                  ": ", s.ToString()));
}

// Whether every counter sum is far from 2^64. Verify rejects sums that
// overflow, so a write could turn a file whose counters sit just below 2^64
// (no real heap's do) from verified into corrupt; such files skip writes.
bool CountersHaveHeadroom(const Heap& heap) {
  const internal::Segment& seg = heap.segment();
  const Header& h = seg.header();
  constexpr uint64_t kHeadroom = uint64_t{1} << 62;
  for (int c = 0; c < internal::kNumCounters; ++c) {
    uint64_t sum = h.retired_counters[c].load(std::memory_order_relaxed);
    for (uint32_t e = 0; e < h.max_sessions; ++e) {
      const uint64_t v =
          seg.registry()[e].counters[c].load(std::memory_order_relaxed);
      if (v >= kHeadroom || sum >= kHeadroom) return false;
      sum += v;
    }
    if (sum >= kHeadroom) return false;
  }
  return true;
}

// Writes a few values, then collects; the heap must verify after each step.
void WriteAndCollect(Heap& heap) {
  if (heap.segment().header().chunk_bytes > kMaxChunkForWrites) return;
  if (!CountersHaveHeadroom(heap)) return;
  auto write_ok = [](const absl::Status& s) {
    if (!s.ok()) {
      FUZZ_CHECK_CODE(s, StatusCode::kResourceExhausted,
                      StatusCode::kAlreadyExists);
    }
  };
  const float floats[6] = {1, 2, 3, 4, 5, 6};
  const int64_t dims23[] = {2, 3};
  write_ok(heap.Add<float>("fuzz:floats", floats, dims23).status());
  CheckVerifies(heap, "Add");
  const std::complex<double> complexes[2] = {{1, 2}, {3, 4}};
  const int64_t dims2[] = {2};
  write_ok(heap.Replace<std::complex<double>>("fuzz:complex", complexes, dims2,
                                              Layout::kFortran)
               .status());
  CheckVerifies(heap, "Replace");
  const absl::Status removed = heap.Remove("fuzz:floats");
  if (!removed.ok()) FUZZ_CHECK_CODE(removed, StatusCode::kNotFound);
  CheckVerifies(heap, "Remove");

  const auto lookups = Lookups(heap);
  const std::vector<Answer> before = ReadAll(heap, lookups);
  CollectOptions options;
  // Entries of live processes (pid 1, say) that are pinned keep the world
  // from stopping; a short deadline turns them into kDeadlineExceeded fast.
  options.deadline = std::chrono::milliseconds(5);
  absl::StatusOr<GcReport> report = heap.Collect(options);
  Trace("collect", report.status());
  if (!report.ok()) {
    FUZZ_CHECK_CODE(report.status(), StatusCode::kDeadlineExceeded);
    return;
  }
  CheckVerifies(heap, "Collect");
  FUZZ_CHECK(ReadAll(heap, lookups) == before,
             "Collect changed what a lookup returns");
}

}  // namespace

int OpenVerifyOne(std::span<const uint8_t> data) {
  std::string file = DecodeImage(data);
  ForgetLiveCollector(file);
  const int fd = ImageFd();
  FUZZ_CHECK(fd >= 0 && WriteFile(fd, file), "cannot write the memfd");
  absl::StatusOr<Heap> heap =
      Heap::OpenFile(absl::StrCat("/proc/self/fd/", fd));
  Trace("open", heap.status());
  if (!heap.ok()) {
    FUZZ_CHECK_CODE(
        heap.status(), StatusCode::kDataLoss, StatusCode::kFailedPrecondition,
        StatusCode::kPermissionDenied, StatusCode::kResourceExhausted);
    return 0;
  }
  (void)heap->stats();
  const absl::Status verified = heap->Verify();
  Trace("verify", verified);
  if (!verified.ok()) {
    FUZZ_CHECK_CODE(verified, StatusCode::kDataLoss);
    return 0;
  }
  // A key the heap may or may not hold: only the absence of a crash counts.
  (void)heap->Contains("fuzz:probe");
  ReadAll(*heap, Lookups(*heap));
  WriteAndCollect(*heap);
  (void)heap->stats();
  return 0;
}

}  // namespace shmheap::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return shmheap::fuzz::OpenVerifyOne({data, size});
}
