#include "tools/image.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
// XXH3_state_t on the stack.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "heap/blob.h"
#include "heap/layout.h"
#include "heap/segment.h"
#include "heap/strings.h"

namespace shmheap::tools {
namespace {

using internal::Header;
using internal::kPageSize;
using internal::SessionEntry;
using internal::Sv;

// Copies move this much at a time: large enough for few system calls, small
// enough that the buffer never matters next to the heap.
constexpr uint64_t kCopyBlock = uint64_t{1} << 20;

using internal::ErrnoError;
using internal::PendingFile;

// Closes a descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `n` bytes at `offset`; a file that ends first is truncated.
absl::Status ReadAt(int fd, void* buf, uint64_t n, uint64_t offset,
                    std::string_view what) {
  auto* p = static_cast<std::byte*>(buf);
  while (n > 0) {
    const ssize_t r = pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, absl::StrCat(Sv(what), ": reading"));
    if (r == 0) {
      return absl::DataLossError(
          absl::StrCat(Sv(what), ": truncated at offset ", offset));
    }
    p += r;
    n -= static_cast<uint64_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return absl::OkStatus();
}

absl::Status WriteAt(int fd, const void* buf, uint64_t n, uint64_t offset,
                     std::string_view what) {
  auto* p = static_cast<const std::byte*>(buf);
  while (n > 0) {
    const ssize_t w = pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoError(errno, absl::StrCat(Sv(what), ": writing"));
    p += w;
    n -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

bool AllZero(const std::byte* p, uint64_t n) {
  // Compares the range with itself shifted by one byte: equal and starting
  // with 0 means every byte is 0, at memcmp's speed.
  return n == 0 || (p[0] == std::byte{0} && std::memcmp(p, p + 1, n - 1) == 0);
}

// Writes buf[0, n) at `offset`, skipping whole pages of zeros: the
// destination was just allocated and reads as zeros there already.
absl::Status WriteNonZeroPages(int fd, const std::byte* buf, uint64_t n,
                               uint64_t offset, std::string_view what) {
  uint64_t run = 0, run_bytes = 0;  // a run of non-zero pages not yet written
  for (uint64_t page = 0; page < n; page += kPageSize) {
    const uint64_t len = std::min(kPageSize, n - page);
    if (!AllZero(buf + page, len)) {
      if (run_bytes == 0) run = page;
      run_bytes += len;
      continue;
    }
    if (run_bytes != 0) {
      if (absl::Status s =
              WriteAt(fd, buf + run, run_bytes, offset + run, what);
          !s.ok()) {
        return s;
      }
      run_bytes = 0;
    }
  }
  if (run_bytes == 0) return absl::OkStatus();
  return WriteAt(fd, buf + run, run_bytes, offset + run, what);
}

// Allocates [0, bytes) of `fd` (and sets its size), so that a full disk or
// /dev/shm is reported here rather than halfway through the copy.
absl::Status Allocate(int fd, uint64_t offset, uint64_t bytes,
                      std::string_view what) {
  // Growing a file past RLIMIT_FSIZE raises SIGXFSZ, which kills the process
  // by default; check first so it is an error return instead.
  struct rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      offset + bytes > rl.rlim_cur) {
    return absl::ResourceExhaustedError(
        absl::StrCat(Sv(what), ": ", offset + bytes,
                     " bytes would pass RLIMIT_FSIZE (", rl.rlim_cur, ")"));
  }
  int rc =
      fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(bytes));
  if (rc != 0 && errno == EOPNOTSUPP) {
    rc = posix_fallocate(fd, static_cast<off_t>(offset),
                         static_cast<off_t>(bytes));
    if (rc != 0) errno = rc;
  }
  if (rc != 0) {
    return ErrnoError(errno,
                      absl::StrCat(Sv(what), ": allocating ", bytes, " bytes"));
  }
  return absl::OkStatus();
}

// An 8-byte word to write into the heap part of an image.
struct Patch {
  uint64_t offset;
  uint64_t word;
};

// Turns the copied header and registry `meta` ([0, table_offset) of the
// source) into those of a heap with no processes, whose heap ends at `top`
// (see image.h). A chunk that a process had open is closed by a filler from
// its committed top, which goes into `patches` since it lies in the heap.
// An entry whose chunk is not inside [heap_start, top) means the source
// changed under the copy (save) or is damaged (load): `inconsistent` is the
// code returned for it.
absl::Status MakeQuiet(std::byte* meta, const ImageInfo& info, uint64_t top,
                       absl::StatusCode inconsistent, std::string_view what,
                       std::vector<Patch>* patches) {
  // The buffer is private to this process, so relaxed accesses to its
  // atomics order nothing and need not.
  constexpr auto kRelaxed = std::memory_order_relaxed;
  Header& h = *reinterpret_cast<Header*>(meta);
  if (h.phase.load(kRelaxed) != internal::kPhaseIdle) {
    return absl::DataLossError(absl::StrCat(
        Sv(what), ": a collection (pid ", h.gc_lock.load(kRelaxed),
        ") was in progress in it; open the heap to finish it first"));
  }
  auto* registry = reinterpret_cast<SessionEntry*>(meta + info.registry_offset);
  for (uint32_t i = 0; i < info.max_sessions; ++i) {
    SessionEntry& e = registry[i];
    const uint64_t start = e.chunk_start.load(kRelaxed);
    const uint64_t end = e.chunk_end.load(kRelaxed);
    const uint64_t committed = e.committed.load(kRelaxed);
    if (end != 0) {
      if (start < info.heap_start || start > committed || committed > end ||
          end > top || committed % 8 != 0) {
        return absl::Status(
            inconsistent,
            absl::StrCat(Sv(what), ": session ", i, " has chunk [", start, ", ",
                         end, ") committed up to ", committed,
                         ", not inside the heap [", info.heap_start, ", ", top,
                         ")"));
      }
      if (committed < end) {
        patches->push_back({committed, internal::FillerWord(end - committed)});
        h.retired_counters[internal::kBytesAllocated].fetch_add(end - committed,
                                                                kRelaxed);
      }
    }
    for (int c = 0; c < internal::kNumCounters; ++c) {
      h.retired_counters[c].fetch_add(e.counters[c].load(kRelaxed), kRelaxed);
    }
    // Zeroing the whole entry frees it, whatever fields a later format adds.
    std::memset(static_cast<void*>(&e), 0, sizeof e);
  }
  h.top.store(top, kRelaxed);
  // The image holds [0, top) only: nothing above it is backed.
  h.reuse_end.store(0, kRelaxed);
  h.gc_lock.store(0, kRelaxed);
  // Nobody waits for a key in a heap with no processes: the waits counted
  // in the source went with their (zeroed) entries' shares.
  h.waiters.store(0, kRelaxed);
  // An odd epoch means a collector was waiting for the source to quiesce
  // (the copy held a Pin, so it had not started); the image has none.
  const uint32_t epoch = h.gc_epoch.load(kRelaxed);
  if (epoch & 1) h.gc_epoch.store(epoch + 1, kRelaxed);
  h.owner_uid = static_cast<uint32_t>(geteuid());
  return absl::OkStatus();
}

bool Cancelled(const CancelCheck& cancelled) {
  return cancelled != nullptr && cancelled();
}

absl::Status CancelledError(std::string_view what) {
  return absl::CancelledError(absl::StrCat(
      Sv(what), ": cancelled before it was complete; nothing was written"));
}

// Writes the image of [0, top) of `src` (whose header `info` describes) into
// the empty file `dst`, polling `cancelled` before each block.
absl::Status CopyImage(int src, const ImageInfo& info, uint64_t top, int dst,
                       absl::StatusCode inconsistent, std::string_view src_what,
                       std::string_view dst_what,
                       const CancelCheck& cancelled) {
  // table_offset is a multiple of the page size, as aligned_alloc requires.
  const uint64_t meta_bytes = info.table_offset;
  std::unique_ptr<std::byte, decltype(&std::free)> meta(
      static_cast<std::byte*>(std::aligned_alloc(kPageSize, meta_bytes)),
      &std::free);
  if (meta == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat(Sv(src_what), ": no memory for ", meta_bytes,
                     " bytes of header and registry"));
  }
  if (absl::Status s = ReadAt(src, meta.get(), meta_bytes, 0, src_what);
      !s.ok()) {
    return s;
  }
  std::vector<Patch> patches;
  if (absl::Status s =
          MakeQuiet(meta.get(), info, top, inconsistent, src_what, &patches);
      !s.ok()) {
    return s;
  }
  // Header, registry, the live table, the dependency table (whole, as a
  // live heap backs it: hashtable/deps.h) and the heap; the rest of the two
  // table areas stays a hole, as in a live heap (gc/grow.h): allocated, it
  // would cost two tables of the largest size. The heap's range comes last,
  // so the file ends at top. Every byte in [meta_bytes, top), the
  // dependency table's included, is copied below.
  const uint64_t table =
      info.table_offset +
      info.table_area * internal::TableAreaBytes(info.max_table_slots_log2);
  for (const auto& [offset, bytes] :
       {std::pair<uint64_t, uint64_t>{0, meta_bytes},
        {table,
         (uint64_t{1} << info.table_slots_log2) * sizeof(internal::Slot)},
        {info.dep_offset, internal::DepAreaBytes(info.dep_slots_log2)},
        {info.heap_start, top - info.heap_start}}) {
    if (bytes == 0) continue;  // no dependency table (fallocate refuses 0)
    if (absl::Status s = Allocate(dst, offset, bytes, dst_what); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s =
          WriteNonZeroPages(dst, meta.get(), meta_bytes, 0, dst_what);
      !s.ok()) {
    return s;
  }
  // The table, then the heap, in address order: a slot is read before the
  // heap bytes it points at, so a blob published in a copied slot was
  // complete before those bytes were read. (A writer racing with the copy
  // can still leave slots and counters that disagree; Verify catches that.)
  std::vector<std::byte> block(kCopyBlock);
  for (uint64_t offset = meta_bytes; offset < top; offset += kCopyBlock) {
    if (Cancelled(cancelled)) return CancelledError(dst_what);
    const uint64_t n = std::min(kCopyBlock, top - offset);
    if (absl::Status s = ReadAt(src, block.data(), n, offset, src_what);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            WriteNonZeroPages(dst, block.data(), n, offset, dst_what);
        !s.ok()) {
      return s;
    }
  }
  for (const Patch& p : patches) {
    if (absl::Status s = WriteAt(dst, &p.word, 8, p.offset, dst_what);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Opens the unpublished `file` as a later user will open the published one
// (Heap::OpenFile) and runs Verify; messages name it `shown_as` instead of
// its /proc/self/fd path. The stats of the verified image.
absl::StatusOr<Stats> VerifyPending(const PendingFile& file,
                                    std::string_view shown_as) {
  absl::StatusOr<Heap> heap = Heap::OpenFile(file.open_path());
  const absl::Status verified = heap.ok() ? heap->Verify() : heap.status();
  if (!verified.ok()) {
    return absl::Status(
        verified.code(),
        absl::StrReplaceAll(
            verified.message(),
            {{absl::StrCat("heap file ", file.open_path()), Sv(shown_as)}}));
  }
  return heap->stats();
}

}  // namespace

// XXH3-64 of the first `bytes` bytes of `fd` with Header::image_checksum
// read as 0.
absl::StatusOr<uint64_t> ImageChecksum(int fd, uint64_t bytes,
                                       std::string_view what) {
  void* p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return ErrnoError(errno, absl::StrCat(Sv(what), ": mmap to checksum"));
  }
  const auto* image = static_cast<const unsigned char*>(p);
  constexpr size_t kAt = offsetof(Header, image_checksum);
  const uint64_t zero = 0;
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, image, kAt);
  XXH3_64bits_update(&state, &zero, 8);
  XXH3_64bits_update(&state, image + kAt + 8, bytes - kAt - 8);
  const uint64_t sum = XXH3_64bits_digest(&state);
  munmap(p, bytes);
  return sum != 0 ? sum : 1;  // 0 means "no checksum"
}

absl::StatusOr<ImageInfo> ReadImageInfo(int fd, std::string_view what) {
  auto fail = [&](absl::StatusCode code, std::string_view why) {
    return absl::Status(code, absl::StrCat(Sv(what), ": ", Sv(why)));
  };
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, what);
  if (!S_ISREG(st.st_mode)) {
    return internal::NotRegularFileError(what, st.st_mode);
  }
  ImageInfo info;
  info.file_bytes = static_cast<uint64_t>(st.st_size);
  // A private copy of the header page, zero-filled past a short file, so
  // that nothing is trusted before it is checked.
  alignas(Header) std::byte page[kPageSize] = {};
  const uint64_t n = std::min<uint64_t>(info.file_bytes, kPageSize);
  if (absl::Status s = ReadAt(fd, page, n, 0, what); !s.ok()) return s;
  Header h;
  std::memcpy(static_cast<void*>(&h), page, sizeof(Header));
  if (h.magic != internal::kMagic) {
    return fail(
        absl::StatusCode::kFailedPrecondition,
        n < sizeof h.magic
            ? absl::StrCat("not a shmheap image (", info.file_bytes, " bytes)")
            : absl::StrFormat("not a shmheap image (magic %#x)", h.magic));
  }
  if (h.format != internal::FormatWord()) {
    return fail(
        absl::StatusCode::kFailedPrecondition,
        absl::StrFormat("format word %#x (version %d), this build "
                        "reads %#x (version %d)",
                        h.format, h.format >> 48, internal::FormatWord(),
                        internal::kFormatVersion));
  }
  if (info.file_bytes < kPageSize) {
    return fail(absl::StatusCode::kDataLoss,
                absl::StrCat("truncated: ", info.file_bytes, " bytes"));
  }
  if (absl::Status s = internal::CheckHeaderGeometry(h); !s.ok()) {
    return fail(s.code(), std::string(s.message()));
  }
  // Relaxed: a private copy.
  const uint64_t top = h.top.load(std::memory_order_relaxed);
  if (info.file_bytes < h.heap_start || info.file_bytes > h.total_bytes) {
    return fail(
        absl::StatusCode::kDataLoss,
        absl::StrCat("truncated or overlong: ", info.file_bytes,
                     " bytes, expected ", h.heap_start, "..", h.total_bytes));
  }
  if (top < h.heap_start || top > info.file_bytes || top % 8 != 0) {
    return fail(absl::StatusCode::kDataLoss,
                absl::StrCat("heap top ", top, " outside [", h.heap_start, ", ",
                             info.file_bytes, "]"));
  }
  info.total_bytes = h.total_bytes;
  info.registry_offset = h.registry_offset;
  info.table_offset = h.table_areas_offset;
  info.heap_start = h.heap_start;
  info.heap_limit = h.heap_limit;
  info.top = top;
  info.chunk_bytes = h.chunk_bytes;
  info.max_sessions = h.max_sessions;
  info.table_slots_log2 =
      internal::TableSlotsLog2(h.table.load(std::memory_order_relaxed));
  info.table_area =
      internal::TableArea(h.table.load(std::memory_order_relaxed));
  info.max_table_slots_log2 = h.max_table_slots_log2;
  info.dep_offset = h.dep_offset;
  info.dep_slots_log2 = h.dep_slots_log2;
  info.owner_uid = h.owner_uid;
  info.phase = h.phase.load(std::memory_order_relaxed);
  info.gc_lock = h.gc_lock.load(std::memory_order_relaxed);
  return info;
}

absl::StatusOr<SaveReport> SaveImage(Heap& heap, const std::string& path,
                                     const CollectOptions& options,
                                     const CancelCheck& cancelled) {
  if (path.empty()) return absl::InvalidArgumentError("empty file name");
  const std::string what = absl::StrCat("file ", path);
  // Before the collection, so that a FILE that exists is refused before any
  // work (Publish checks again).
  absl::StatusOr<PendingFile> out = PendingFile::Create(path, what);
  if (!out.ok()) return out.status();
  SaveReport report;
  absl::StatusOr<GcReport> gc = heap.Collect(options);
  if (!gc.ok()) return gc.status();
  report.gc = *gc;
  if (Cancelled(cancelled)) return CancelledError(what);
  const internal::Segment& seg = heap.segment();
  absl::Status copied = [&]() -> absl::Status {
    // While the Pin lives no collection moves data under the copy.
    absl::StatusOr<Pin> pin = heap.Enter();
    if (!pin.ok()) return pin.status();
    // Acquire: pairs with the release half of each chunk claim's CAS, so the
    // claims below this top (and their registry records) are visible.
    report.image_bytes = seg.header().top.load(std::memory_order_acquire);
    absl::StatusOr<ImageInfo> info = ReadImageInfo(seg.fd(), seg.Describe());
    if (!info.ok()) return info.status();
    return CopyImage(seg.fd(), *info, report.image_bytes, out->fd(),
                     absl::StatusCode::kAborted, seg.Describe(), what,
                     cancelled);
  }();
  if (copied.code() == absl::StatusCode::kAborted) {
    return absl::AbortedError(absl::StrCat(
        copied.message(),
        "; a process wrote the heap during the save (nothing saved)"));
  }
  if (!copied.ok()) return copied;
  // Check the image exactly as a later user will open it.
  absl::StatusOr<Stats> stats = VerifyPending(*out, what);
  if (!stats.ok()) {
    return absl::AbortedError(absl::StrCat(
        what, ": the image does not verify, so it was not saved (did a ",
        "process write the heap during the save?): ",
        stats.status().message()));
  }
  report.stats = *stats;
  // Sealed last: Verify attached to the file, which changes its registry.
  absl::StatusOr<uint64_t> sum =
      ImageChecksum(out->fd(), report.image_bytes, what);
  if (!sum.ok()) return sum.status();
  if (absl::Status s =
          WriteAt(out->fd(), &*sum, 8, offsetof(Header, image_checksum), what);
      !s.ok()) {
    return s;
  }
  if (fsync(out->fd()) != 0) {
    return ErrnoError(errno, absl::StrCat(what, ": fsync"));
  }
  if (Cancelled(cancelled)) return CancelledError(what);
  if (absl::Status s = out->Publish(); !s.ok()) return s;
  out->SyncDirectory();  // the name as durable as the data
  return report;
}

absl::StatusOr<Heap> LoadImage(const std::string& path, std::string_view name,
                               const CancelCheck& cancelled) {
  absl::StatusOr<std::string> n = internal::Segment::NormalizeName(name);
  if (!n.ok()) return n.status();
  const std::string what = absl::StrCat("file ", path);
  absl::StatusOr<int> fd =
      internal::OpenRegularFile(path, O_RDONLY, internal::Links::kFollow, what);
  if (!fd.ok()) return fd.status();
  Fd in(*fd);
  absl::StatusOr<ImageInfo> info = ReadImageInfo(in.get(), what);
  if (!info.ok()) return info.status();
  // An image sealed by save must still hash to its checksum: that covers
  // the header, registry and table too, which Verify checks only in part.
  uint64_t sealed = 0;
  if (absl::Status s =
          ReadAt(in.get(), &sealed, 8, offsetof(Header, image_checksum), what);
      !s.ok()) {
    return s;
  }
  if (sealed != 0) {
    absl::StatusOr<uint64_t> sum = ImageChecksum(in.get(), info->top, what);
    if (!sum.ok()) return sum.status();
    if (*sum != sealed) {
      return absl::DataLossError(absl::StrFormat(
          "%s: the image's checksum is %#x, its contents hash to %#x: it "
          "changed or was damaged after it was saved",
          std::string(what), sealed, *sum));
    }
  }
  const std::string heap_what = absl::StrCat("heap ", *n);
  absl::StatusOr<PendingFile> shm =
      PendingFile::Create(internal::ShmPath(*n), heap_what);
  if (!shm.ok()) return shm.status();
  if (absl::Status s =
          CopyImage(in.get(), *info, info->top, shm->fd(),
                    absl::StatusCode::kDataLoss, what, heap_what, cancelled);
      !s.ok()) {
    return s;
  }
  // The image was validated only as far as its header; Verify checks every
  // slot and blob before the heap gets its name.
  if (absl::Status s = VerifyPending(*shm, heap_what).status(); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(what, ": not loaded: ", s.message()));
  }
  if (Cancelled(cancelled)) return CancelledError(heap_what);
  if (absl::Status s = shm->Publish(); !s.ok()) return s;
  return Heap::OpenNamed(*n);
}

}  // namespace shmheap::tools
