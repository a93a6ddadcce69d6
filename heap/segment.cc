#include "heap/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "heap/blob.h"
#include "heap/strings.h"

namespace shmheap::internal {
namespace {

constexpr uint64_t kMaxHeapBytes = uint64_t{1} << 46;  // 64 TiB
constexpr uint32_t kMaxSessions = 1 << 16;

uint64_t PageUp(uint64_t v) { return AlignUp(v, kPageSize); }

absl::Status Errno(int err, absl::string_view what) {
  absl::StatusCode code = absl::ErrnoToStatusCode(err);
  if (err == ENOSPC || err == ENOMEM || err == EFBIG || err == EMFILE ||
      err == ENFILE || err == EDQUOT) {
    code = absl::StatusCode::kResourceExhausted;
  }
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err)));
}

// MemAvailable from /proc/meminfo, in bytes; 0 when it cannot be read (the
// caller then skips the check rather than refusing every allocation).
uint64_t MemAvailableBytes() {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long long v;
    if (std::sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
      kib = v;
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

bool IsMemoryBacked(int fd) {
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  return fs.f_type == TMPFS_MAGIC;
}

uint64_t RandomSeed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) {
    seed = static_cast<uint64_t>(time(nullptr)) ^ (uint64_t(getpid()) << 32);
  }
  return seed | 1;
}

uint64_t NowUnixNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000 + uint64_t(ts.tv_nsec);
}

}  // namespace

absl::StatusOr<Geometry> ComputeSegmentGeometry(uint32_t max_sessions,
                                                uint32_t table_slots_log2,
                                                uint64_t heap_bytes) {
  if (max_sessions < 1 || max_sessions > kMaxSessions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_sessions must be 1..", kMaxSessions, ", not ", max_sessions));
  }
  if (table_slots_log2 < 4 || table_slots_log2 > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("table_slots_log2 must be 4..32, not ", table_slots_log2));
  }
  if (heap_bytes < kPageSize || heap_bytes > kMaxHeapBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("heap_bytes must be ", kPageSize, "..", kMaxHeapBytes,
                     ", not ", heap_bytes));
  }
  Geometry g;
  g.registry_offset = kPageSize;
  g.table_offset =
      PageUp(g.registry_offset + uint64_t{max_sessions} * sizeof(SessionEntry));
  g.heap_start =
      PageUp(g.table_offset + (uint64_t{1} << table_slots_log2) * sizeof(Slot));
  g.total_bytes = g.heap_start + PageUp(heap_bytes);
  return g;
}

absl::Status CheckHeaderGeometry(const Header& h) {
  if (h.heap_limit < h.heap_start) {
    return absl::DataLossError("heap limit below heap start");
  }
  absl::StatusOr<Geometry> g = ComputeSegmentGeometry(
      h.max_sessions, h.table_slots_log2, h.heap_limit - h.heap_start);
  if (!g.ok() || g->registry_offset != h.registry_offset ||
      g->table_offset != h.table_offset || g->heap_start != h.heap_start ||
      g->total_bytes != h.total_bytes || h.heap_limit != h.total_bytes) {
    return absl::DataLossError(
        absl::StrCat("inconsistent geometry (sessions ", h.max_sessions,
                     ", table 2^", h.table_slots_log2, ", heap [", h.heap_start,
                     ", ", h.heap_limit, "), total ", h.total_bytes, ")"));
  }
  if (h.chunk_bytes < kPageSize || h.chunk_bytes % kPageSize ||
      h.chunk_bytes > h.total_bytes) {
    return absl::DataLossError(
        absl::StrCat("invalid chunk size ", h.chunk_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Segment::NormalizeName(std::string_view name) {
  std::string_view bare = name;
  if (!bare.empty() && bare.front() == '/') bare.remove_prefix(1);
  if (bare.empty() || bare.size() > 200 || bare == "." || bare == ".." ||
      bare.find('/') != std::string_view::npos ||
      bare.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid heap name \"", absl::CHexEscape(Sv(name)),
        "\": 1 to 200 bytes, no '/' except a leading one, not . or .."));
  }
  return absl::StrCat("/", Sv(bare));
}

std::string Segment::Describe() const {
  switch (backing_) {
    case BackingKind::kAnonymous:
      return "anonymous heap";
    case BackingKind::kNamed:
      return absl::StrCat("heap ", name_);
    case BackingKind::kFile:
      return absl::StrCat("heap file ", name_);
  }
  return "heap";
}

Segment::~Segment() {
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::Initialize(
    int fd, BackingKind backing, std::string name,
    const SegmentOptions& options) {
  absl::StatusOr<Geometry> geometry = ComputeSegmentGeometry(
      options.max_sessions, options.table_slots_log2, options.heap_bytes);
  if (!geometry.ok()) {
    close(fd);
    return geometry.status();
  }
  if (options.chunk_bytes < kPageSize || options.chunk_bytes % kPageSize) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("chunk_bytes must be a multiple of ", kPageSize, ", not ",
                     options.chunk_bytes));
  }
  void* base = mmap(nullptr, geometry->total_bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(fd);
    return Errno(err,
                 absl::StrCat("mmap of ", geometry->total_bytes, " bytes"));
  }
  std::unique_ptr<Segment> seg(
      new Segment(fd, static_cast<std::byte*>(base), geometry->total_bytes,
                  backing, std::move(name), options.min_available_bytes));
  // The metadata is backed up front: the table and registry are written at
  // random places and must never fault.
  if (absl::Status s = seg->Back(0, geometry->heap_start); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("creating ", seg->Describe(),
                                               ": ", s.message()));
  }
  Header& h = seg->header();
  h.format = FormatWord();
  h.total_bytes = geometry->total_bytes;
  h.registry_offset = geometry->registry_offset;
  h.table_offset = geometry->table_offset;
  h.heap_start = geometry->heap_start;
  h.heap_limit = geometry->total_bytes;
  h.seed = options.seed != 0 ? options.seed : RandomSeed();
  // A chunk never exceeds the heap (a small heap would otherwise refuse
  // its first allocation, and attach would call the geometry invalid).
  h.chunk_bytes = std::min<uint64_t>(
      options.chunk_bytes, geometry->total_bytes - geometry->heap_start);
  h.min_available_bytes = options.min_available_bytes;
  h.created_unix_ns = NowUnixNs();
  h.max_sessions = options.max_sessions;
  h.table_slots_log2 = options.table_slots_log2;
  h.flags = (options.keep_keys ? kFlagKeepKeys : 0) |
            (options.checksums ? kFlagChecksums : 0) |
            (backing == BackingKind::kAnonymous ? kFlagAnonymous : 0);
  h.owner_uid = geteuid();
  h.owner_pid = getpid();
  // Relaxed: nobody else can see the segment's contents until the release
  // store of the magic below.
  h.top.store(geometry->heap_start, std::memory_order_relaxed);
  // Release: an attacher that reads the magic with acquire sees every field
  // written above.
  std::atomic_ref<uint64_t>(h.magic).store(kMagic, std::memory_order_release);
  return seg;
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::Attach(int fd,
                                                         BackingKind backing,
                                                         std::string name) {
  const std::string what = backing == BackingKind::kFile
                               ? absl::StrCat("heap file ", name)
                               : absl::StrCat("heap ", name);
  auto fail = [&](absl::StatusCode code, absl::string_view why) {
    close(fd);
    return absl::Status(code, absl::StrCat(what, ": ", why));
  };
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail(absl::StatusCode::kInternal, std::strerror(errno));
  if (st.st_uid != geteuid()) {
    return fail(absl::StatusCode::kPermissionDenied,
                absl::StrCat("owned by uid ", st.st_uid, ", not ", geteuid()));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < kPageSize) {
    return fail(absl::StatusCode::kDataLoss,
                absl::StrCat("truncated: ", file_size,
                             " bytes, a segment has at least ", kPageSize));
  }
  // Validate a private copy of the header before mapping anything.
  alignas(Header) std::byte page[kPageSize];
  if (pread(fd, page, kPageSize, 0) != static_cast<ssize_t>(kPageSize)) {
    return fail(absl::StatusCode::kDataLoss, "cannot read the header");
  }
  Header h;
  std::memcpy(static_cast<void*>(&h), page, sizeof(Header));
  if (h.magic != kMagic) {
    return fail(absl::StatusCode::kFailedPrecondition,
                absl::StrFormat("not a shmheap segment (magic %#x)", h.magic));
  }
  if (h.format != FormatWord()) {
    return fail(absl::StatusCode::kFailedPrecondition,
                absl::StrFormat("format word %#x (version %d), this build "
                                "reads %#x (version %d)",
                                h.format, h.format >> 48, FormatWord(),
                                kFormatVersion));
  }
  if (absl::Status s = CheckHeaderGeometry(h); !s.ok()) {
    return fail(s.code(), s.message());
  }
  if (h.owner_uid != st.st_uid) {
    return fail(absl::StatusCode::kPermissionDenied,
                absl::StrCat("header names owner uid ", h.owner_uid,
                             " but the object belongs to uid ", st.st_uid));
  }
  const uint64_t top = h.top.load(std::memory_order_relaxed);
  if (file_size < h.heap_start || file_size > h.total_bytes) {
    return fail(
        absl::StatusCode::kDataLoss,
        absl::StrCat("truncated or overlong: ", file_size, " bytes, expected ",
                     h.heap_start, "..", h.total_bytes));
  }
  if (top < h.heap_start || top > file_size || top % 8 != 0) {
    return fail(absl::StatusCode::kDataLoss,
                absl::StrCat("heap top ", top, " outside [", h.heap_start, ", ",
                             file_size, "]"));
  }
  void* base = mmap(nullptr, h.total_bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(fd);
    return Errno(err,
                 absl::StrCat(what, ": mmap of ", h.total_bytes, " bytes"));
  }
  return std::unique_ptr<Segment>(
      new Segment(fd, static_cast<std::byte*>(base), h.total_bytes, backing,
                  std::move(name), h.min_available_bytes));
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateAnonymous(
    const SegmentOptions& options) {
  const int fd = memfd_create("shmheap", MFD_CLOEXEC);
  if (fd < 0) return Errno(errno, "memfd_create");
  return Initialize(fd, BackingKind::kAnonymous, "", options);
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateNamed(
    std::string_view name, const SegmentOptions& options) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  const int fd =
      shm_open(n->c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("heap ", *n, " already exists"));
    }
    return Errno(err, absl::StrCat("creating heap ", *n));
  }
  // The mode passed to shm_open is masked by umask, which can only remove
  // bits; fchmod pins it to exactly owner read/write.
  fchmod(fd, 0600);
  absl::StatusOr<std::unique_ptr<Segment>> seg =
      Initialize(fd, BackingKind::kNamed, *n, options);
  if (!seg.ok()) shm_unlink(n->c_str());
  return seg;
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::OpenNamed(
    std::string_view name) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  const int fd = shm_open(n->c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      return absl::NotFoundError(absl::StrCat("no heap named ", *n));
    if (err == EACCES) {
      return absl::PermissionDeniedError(
          absl::StrCat("heap ", *n, ": ", std::strerror(err)));
    }
    return Errno(err, absl::StrCat("opening heap ", *n));
  }
  return Attach(fd, BackingKind::kNamed, *n);
}

absl::Status Segment::UnlinkNamed(std::string_view name) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  if (shm_unlink(n->c_str()) != 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("no heap named ", *n));
    return Errno(errno, absl::StrCat("removing heap ", *n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateFile(
    const std::string& path, const SegmentOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("empty heap file path");
  const int fd =
      open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("heap file ", path, " already exists"));
    }
    return Errno(err, absl::StrCat("creating heap file ", path));
  }
  absl::StatusOr<std::unique_ptr<Segment>> seg =
      Initialize(fd, BackingKind::kFile, path, options);
  if (!seg.ok()) unlink(path.c_str());
  return seg;
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::OpenFile(
    const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      return absl::NotFoundError(absl::StrCat("no heap file ", path));
    return Errno(err, absl::StrCat("opening heap file ", path));
  }
  return Attach(fd, BackingKind::kFile, path);
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::MapAgain() const {
  const int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Errno(errno, "dup");
  return Attach(fd, backing_, name_);
}

absl::Status Segment::Back(uint64_t offset, uint64_t length) const {
  if (length == 0) return absl::OkStatus();
  if (!Contains(offset, length)) {
    return absl::ResourceExhaustedError(absl::StrCat(Describe(), ": range [",
                                                     offset, ", +", length,
                                                     ") beyond the segment"));
  }
  if (backing_ == BackingKind::kFile) {
    // Growing a file past RLIMIT_FSIZE raises SIGXFSZ, which kills the
    // process by default; check first so it is an error return instead.
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        offset + length > rl.rlim_cur) {
      return absl::ResourceExhaustedError(
          absl::StrCat(Describe(), ": growing to ", offset + length,
                       " bytes would pass RLIMIT_FSIZE (", rl.rlim_cur, ")"));
    }
  }
  if (backing_ == BackingKind::kAnonymous || IsMemoryBacked(fd_)) {
    const uint64_t floor = min_available_bytes_;
    const uint64_t available = MemAvailableBytes();
    if (available != 0 && available < length + floor) {
      return absl::ResourceExhaustedError(absl::StrCat(
          Describe(), ": only ", available, " bytes of memory available, ",
          length, " more wanted with a floor of ", floor));
    }
  }
  int rc =
      fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (rc != 0 && errno == EOPNOTSUPP) {
    rc = posix_fallocate(fd_, static_cast<off_t>(offset),
                         static_cast<off_t>(length));
    if (rc != 0) errno = rc;
  }
  if (rc != 0) {
    return Errno(errno, absl::StrCat(Describe(), ": backing [", offset, ", +",
                                     length, ")"));
  }
  return absl::OkStatus();
}

absl::Status Segment::Release(uint64_t offset, uint64_t length) const {
  if (length == 0) return absl::OkStatus();
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
    return absl::OkStatus();
  }
  if (madvise(base_ + offset, length, MADV_REMOVE) == 0)
    return absl::OkStatus();
  return Errno(errno, absl::StrCat(Describe(), ": releasing [", offset, ", +",
                                   length, ")"));
}

}  // namespace shmheap::internal
