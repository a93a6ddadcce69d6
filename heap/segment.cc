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

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "heap/blob.h"
#include "heap/strings.h"

namespace shmheap::internal {
namespace {

uint64_t PageUp(uint64_t v) { return AlignUp(v, kPageSize); }

// The largest segment any accepted geometry gives: blob offsets below it
// must fit the table's 48 bits (kMaxSegmentBytes, heap/layout.h).
static_assert(TableAreaBytes(4) == kPageSize &&
                  TableAreaBytes(20) == (uint64_t{1} << 20) * sizeof(Slot),
              "TableAreaBytes counts 16-byte slots in whole pages");
static_assert(kPageSize + uint64_t{kMaxSessions} * sizeof(SessionEntry) +
                      kPageSize + 2 * TableAreaBytes(kMaxTableSlotsLog2) +
                      DepAreaBytes(kMaxDepSlotsLog2) + kMaxHeapBytes <
                  kMaxSegmentBytes,
              "every segment offset fits in 48 bits");

// kInvalidArgument "<field> must be <lo>..<hi>, not <value>": every option's
// range is reported the same way.
absl::Status OutOfRange(absl::string_view field, uint64_t value, uint64_t lo,
                        uint64_t hi, absl::string_view extra = "") {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be ", extra, lo, "..", hi, ", not ", value));
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
                                                uint32_t max_table_slots_log2,
                                                uint64_t heap_bytes,
                                                uint32_t dep_slots_log2) {
  if (max_sessions < 1 || max_sessions > kMaxSessions) {
    return OutOfRange("max_sessions", max_sessions, 1, kMaxSessions);
  }
  if (table_slots_log2 < kMinTableSlotsLog2 ||
      table_slots_log2 > kMaxTableSlotsLog2) {
    return OutOfRange("table_slots_log2", table_slots_log2, kMinTableSlotsLog2,
                      kMaxTableSlotsLog2);
  }
  if (max_table_slots_log2 == 0) {
    max_table_slots_log2 = std::min(table_slots_log2 + kDefaultTableGrowthLog2,
                                    kMaxTableSlotsLog2);
  }
  if (max_table_slots_log2 < table_slots_log2 ||
      max_table_slots_log2 > kMaxTableSlotsLog2) {
    return OutOfRange("max_table_slots_log2", max_table_slots_log2,
                      table_slots_log2, kMaxTableSlotsLog2,
                      "0 (the default) or ");
  }
  if (heap_bytes < kPageSize || heap_bytes > kMaxHeapBytes) {
    return OutOfRange("heap_bytes", heap_bytes, kPageSize, kMaxHeapBytes);
  }
  if (dep_slots_log2 != 0 && (dep_slots_log2 < kMinDepSlotsLog2 ||
                              dep_slots_log2 > kMaxDepSlotsLog2)) {
    return OutOfRange("dep_table_slots_log2", dep_slots_log2, kMinDepSlotsLog2,
                      kMaxDepSlotsLog2, "0 (none) or ");
  }
  Geometry g;
  g.registry_offset = kPageSize;
  g.table_areas_offset =
      PageUp(g.registry_offset + uint64_t{max_sessions} * sizeof(SessionEntry));
  g.max_table_slots_log2 = max_table_slots_log2;
  const uint64_t tables_end =
      g.table_areas_offset + 2 * TableAreaBytes(max_table_slots_log2);
  g.dep_slots_log2 = dep_slots_log2;
  g.dep_offset = dep_slots_log2 == 0 ? 0 : tables_end;
  g.heap_start = tables_end + DepAreaBytes(dep_slots_log2);
  g.total_bytes = g.heap_start + PageUp(heap_bytes);
  return g;
}

absl::Status CheckHeaderGeometry(const Header& h) {
  if (h.heap_limit < h.heap_start) {
    return absl::DataLossError("heap limit below heap start");
  }
  const uint64_t table = h.table.load(std::memory_order_relaxed);
  absl::StatusOr<Geometry> g = ComputeSegmentGeometry(
      h.max_sessions, TableSlotsLog2(table), h.max_table_slots_log2,
      h.heap_limit - h.heap_start, h.dep_slots_log2);
  if (!g.ok() || TableArea(table) > 1 || h.max_table_slots_log2 == 0 ||
      g->registry_offset != h.registry_offset ||
      g->table_areas_offset != h.table_areas_offset ||
      g->dep_offset != h.dep_offset || g->heap_start != h.heap_start ||
      g->total_bytes != h.total_bytes || h.heap_limit != h.total_bytes) {
    return absl::DataLossError(absl::StrCat(
        "inconsistent geometry (sessions ", h.max_sessions, ", table 2^",
        TableSlotsLog2(table), " in area ", TableArea(table), " of 2^",
        h.max_table_slots_log2, ", dependency table 2^", h.dep_slots_log2,
        " at ", h.dep_offset, ", heap [", h.heap_start, ", ", h.heap_limit,
        "), total ", h.total_bytes, ")"));
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

absl::StatusOr<Geometry> Segment::CheckOptions(const SegmentOptions& options) {
  absl::StatusOr<Geometry> geometry =
      ComputeSegmentGeometry(options.max_sessions, options.table_slots_log2,
                             options.max_table_slots_log2, options.heap_bytes,
                             options.dep_table_slots_log2);
  if (!geometry.ok()) return geometry.status();
  if (options.chunk_bytes < kPageSize || options.chunk_bytes > kMaxHeapBytes ||
      options.chunk_bytes % kPageSize != 0) {
    return OutOfRange("chunk_bytes", options.chunk_bytes, kPageSize,
                      kMaxHeapBytes,
                      absl::StrCat("a multiple of ", kPageSize, " in "));
  }
  if (options.min_available_bytes > kMaxMinAvailableBytes) {
    return OutOfRange("min_available_bytes", options.min_available_bytes, 0,
                      kMaxMinAvailableBytes);
  }
  return geometry;
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::Initialize(
    int fd, BackingKind backing, std::string name,
    const SegmentOptions& options, const Geometry& geometry) {
  void* base = mmap(nullptr, geometry.total_bytes, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    close(fd);
    return ErrnoError(err,
                      absl::StrCat("mmap of ", geometry.total_bytes, " bytes"));
  }
  std::unique_ptr<Segment> seg(
      new Segment(fd, static_cast<std::byte*>(base), geometry.total_bytes,
                  backing, std::move(name), options.min_available_bytes));
  // The metadata is backed up front: the registry and the live table are
  // written at random places and must never fault. The rest of the table
  // areas stays a hole (a table that grows backs its new slots first,
  // gc/grow.h), but lies inside the object (its last page is backed, which
  // extends the object through Back's limits checks), so that attach finds
  // the heap start covered and a stale read of an unused area reads zeros.
  const uint64_t live_table_end =
      geometry.table_areas_offset +
      (uint64_t{1} << options.table_slots_log2) * sizeof(Slot);
  absl::Status backed = seg->Back(0, live_table_end);
  // The dependency table is written at random places too, and never grows:
  // all of it is backed now.
  if (backed.ok())
    backed =
        seg->Back(geometry.dep_offset, DepAreaBytes(geometry.dep_slots_log2));
  if (backed.ok())
    backed = seg->Back(geometry.heap_start - kPageSize, kPageSize);
  if (!backed.ok()) {
    return absl::Status(
        backed.code(),
        absl::StrCat("creating ", seg->Describe(), ": ", backed.message()));
  }
  Header& h = seg->header();
  h.format = FormatWord();
  h.total_bytes = geometry.total_bytes;
  h.registry_offset = geometry.registry_offset;
  h.table_areas_offset = geometry.table_areas_offset;
  h.max_table_slots_log2 = geometry.max_table_slots_log2;
  h.dep_slots_log2 = geometry.dep_slots_log2;
  h.dep_offset = geometry.dep_offset;
  h.heap_start = geometry.heap_start;
  h.heap_limit = geometry.total_bytes;
  h.seed = options.seed != 0 ? options.seed : RandomSeed();
  // A chunk never exceeds the heap (a small heap would otherwise refuse
  // its first allocation, and attach would call the geometry invalid).
  h.chunk_bytes = std::min<uint64_t>(
      options.chunk_bytes, geometry.total_bytes - geometry.heap_start);
  h.min_available_bytes = options.min_available_bytes;
  h.created_unix_ns = NowUnixNs();
  h.max_sessions = options.max_sessions;
  // Relaxed: published by the magic's release store below.
  h.table.store(TableWord(0, options.table_slots_log2),
                std::memory_order_relaxed);
  h.flags = (options.keep_keys ? kFlagKeepKeys : 0) |
            (options.checksums ? kFlagChecksums : 0) |
            (backing == BackingKind::kAnonymous ? kFlagAnonymous : 0);
  h.owner_uid = geteuid();
  h.owner_pid = getpid();
  // Relaxed: nobody else can see the segment's contents until the release
  // store of the magic below.
  h.top.store(geometry.heap_start, std::memory_order_relaxed);
  // Release: an attacher that reads the magic with acquire sees every field
  // written above. (A named or file segment is still unnamed here; it gets
  // its name only after this store, so no attacher can find it before.)
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
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return NotRegularFileError(what, st.st_mode);
  }
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
    return ErrnoError(
        err, absl::StrCat(what, ": mmap of ", h.total_bytes, " bytes"));
  }
  auto* mapped = static_cast<Header*>(base);
  // Relaxed: a plain mark, read only by `load` on a file nobody maps.
  if (mapped->image_checksum.load(std::memory_order_relaxed) != 0) {
    mapped->image_checksum.store(0, std::memory_order_relaxed);
  }
  return std::unique_ptr<Segment>(
      new Segment(fd, static_cast<std::byte*>(base), h.total_bytes, backing,
                  std::move(name), h.min_available_bytes));
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateAnonymous(
    const SegmentOptions& options) {
  absl::StatusOr<Geometry> geometry = CheckOptions(options);
  if (!geometry.ok()) return geometry.status();
  const int fd = memfd_create("shmheap", MFD_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "memfd_create");
  return Initialize(fd, BackingKind::kAnonymous, "", options, *geometry);
}

namespace {

// Builds a segment in a PendingFile for `path` (`initialize` writes it into
// the descriptor it is given) and publishes it there: the one creation path
// of named and file-backed segments.
absl::StatusOr<std::unique_ptr<Segment>> CreatePublished(
    const std::string& path, const std::string& what,
    absl::FunctionRef<absl::StatusOr<std::unique_ptr<Segment>>(int fd)>
        initialize) {
  absl::StatusOr<PendingFile> pending = PendingFile::Create(path, what);
  if (!pending.ok()) return pending.status();
  // The segment keeps a descriptor of its own; the PendingFile closes its
  // one when it goes, and an unnamed file lives on through the segment's.
  const int fd = fcntl(pending->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("creating ", what));
  absl::StatusOr<std::unique_ptr<Segment>> seg = initialize(fd);
  if (!seg.ok()) return seg.status();
  if (absl::Status s = pending->Publish(); !s.ok()) return s;
  return seg;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateNamed(
    std::string_view name, const SegmentOptions& options) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  // New names are printable: a tab or a newline in a name breaks every
  // listing of /dev/shm. (Opening and unlinking still take any name, so an
  // old heap with such a name can be removed.)
  if (std::any_of(n->begin(), n->end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid heap name \"", absl::CHexEscape(Sv(name)),
                     "\": a new heap's name has no control characters"));
  }
  absl::StatusOr<Geometry> geometry = CheckOptions(options);
  if (!geometry.ok()) return geometry.status();
  return CreatePublished(ShmPath(*n), absl::StrCat("heap ", *n), [&](int fd) {
    return Initialize(fd, BackingKind::kNamed, *n, options, *geometry);
  });
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::OpenNamed(
    std::string_view name) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  // A name is one object directly in /dev/shm: a link there is refused.
  absl::StatusOr<int> fd = OpenRegularFile(ShmPath(*n), O_RDWR, Links::kRefuse,
                                           absl::StrCat("heap ", *n));
  if (!fd.ok()) {
    if (fd.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("no heap named ", *n));
    }
    return fd.status();
  }
  return Attach(*fd, BackingKind::kNamed, *n);
}

absl::Status Segment::UnlinkNamed(std::string_view name) {
  absl::StatusOr<std::string> n = NormalizeName(name);
  if (!n.ok()) return n.status();
  if (unlink(ShmPath(*n).c_str()) != 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("no heap named ", *n));
    return ErrnoError(errno, absl::StrCat("removing heap ", *n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::CreateFile(
    const std::string& path, const SegmentOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("empty heap file path");
  absl::StatusOr<Geometry> geometry = CheckOptions(options);
  if (!geometry.ok()) return geometry.status();
  return CreatePublished(path, absl::StrCat("heap file ", path), [&](int fd) {
    return Initialize(fd, BackingKind::kFile, path, options, *geometry);
  });
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::OpenFile(
    const std::string& path) {
  absl::StatusOr<int> fd = OpenRegularFile(path, O_RDWR, Links::kFollow,
                                           absl::StrCat("heap file ", path));
  if (!fd.ok()) return fd.status();
  return Attach(*fd, BackingKind::kFile, path);
}

absl::StatusOr<std::unique_ptr<Segment>> Segment::MapAgain() const {
  const int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "dup");
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
    // Not `available < length + floor`: the sum wraps for a floor near 2^64
    // (a header from a file can hold any value), which turned the floor off.
    if (available != 0 && (available < floor || available - floor < length)) {
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
    return ErrnoError(errno, absl::StrCat(Describe(), ": backing [", offset,
                                          ", +", length, ")"));
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
  return ErrnoError(errno, absl::StrCat(Describe(), ": releasing [", offset,
                                        ", +", length, ")"));
}

absl::StatusOr<uint64_t> Segment::BackedBytes() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) {
    return absl::InternalError(
        absl::StrCat(Describe(), ": fstat: ", std::strerror(errno)));
  }
  return static_cast<uint64_t>(st.st_size);
}

std::string ShmPath(std::string_view normalized_name) {
  return absl::StrCat(kShmDir, Sv(normalized_name));
}

absl::Status ErrnoError(int err, std::string_view what) {
  absl::StatusCode code = absl::ErrnoToStatusCode(err);
  if (err == ENOSPC || err == ENOMEM || err == EFBIG || err == EMFILE ||
      err == ENFILE || err == EDQUOT) {
    code = absl::StatusCode::kResourceExhausted;
  }
  return absl::Status(code, absl::StrCat(Sv(what), ": ", std::strerror(err)));
}

std::string_view FileTypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
  }
  return "a file of unknown type";
}

absl::Status NotRegularFileError(std::string_view what, mode_t mode) {
  return absl::FailedPreconditionError(absl::StrCat(
      Sv(what), ": is ", Sv(FileTypeName(mode)), ", not a regular file"));
}

absl::Status AlreadyExistsError(const std::string& path,
                                std::string_view what) {
  struct stat st;
  const bool other = lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  return absl::AlreadyExistsError(absl::StrCat(
      Sv(what), " already exists",
      other ? absl::StrCat(" (", Sv(FileTypeName(st.st_mode)), ")") : ""));
}

absl::StatusOr<int> OpenRegularFile(const std::string& path, int flags,
                                    Links links, std::string_view what) {
  const bool follow = links == Links::kFollow;
  auto fail = [&](int err) -> absl::Status {
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no ", Sv(what)));
    }
    // EISDIR (a directory opened for writing), ELOOP (a link with
    // O_NOFOLLOW), ENXIO (a FIFO or socket with no one at the other end)
    // and their like: say what is there rather than the errno's words.
    struct stat st;
    const int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
    if (rc == 0 && !S_ISREG(st.st_mode)) {
      return NotRegularFileError(what, st.st_mode);
    }
    return ErrnoError(err, what);
  };
  struct stat st;
  const int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  if (rc != 0) return fail(errno);
  if (!S_ISREG(st.st_mode)) return NotRegularFileError(what, st.st_mode);
  const int fd = open(path.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                                        (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return fail(errno);
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, what);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return NotRegularFileError(what, st.st_mode);
  }
  return fd;
}

namespace {

// "dir" and "base" of a path, as dirname(3) and basename(3) would give
// them ("." for a bare name).
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// Whether linkat can reach an unnamed file through /proc/self/fd/N.
bool CanLinkThroughProc(const std::string& open_path) {
  return access(open_path.c_str(), F_OK) == 0;
}

}  // namespace

absl::StatusOr<PendingFile> PendingFile::Create(const std::string& path,
                                                std::string_view what,
                                                Strategy strategy) {
  if (path.empty() || path.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(what), ": not a file name"));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) return AlreadyExistsError(path, what);
  const auto [dir, base] = SplitPath(path);
  const std::string creating = absl::StrCat("creating ", Sv(what));
  if (strategy != Strategy::kNamedTemporary) {
    const int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string open_path = absl::StrCat("/proc/self/fd/", fd);
      if (CanLinkThroughProc(open_path)) {
        // The mode given to open is masked by the umask, which can only
        // remove bits; fchmod pins it to exactly owner read/write.
        fchmod(fd, 0600);
        return PendingFile(fd, path, dir, std::string(what), "",
                           std::move(open_path));
      }
      close(fd);
      if (strategy == Strategy::kUnnamed) {
        return absl::FailedPreconditionError(
            absl::StrCat(creating, ": /proc is not mounted"));
      }
    } else {
      const int err = errno;
      // Filesystems without O_TMPFILE answer EOPNOTSUPP; kernels older than
      // 3.11 EISDIR or EINVAL. Anything else (no such directory, no
      // permission) fails the same way for a named temporary.
      if (err != EOPNOTSUPP && err != EISDIR && err != EINVAL) {
        return ErrnoError(err, creating);
      }
      if (strategy == Strategy::kUnnamed) {
        return absl::FailedPreconditionError(absl::StrCat(
            creating, ": no O_TMPFILE here (", std::strerror(err), ")"));
      }
    }
  }
  // Unique per process and per call: a temporary left by a killed process
  // is never in the way of a later one.
  for (int attempt = 0;; ++attempt) {
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) {
      nonce = NowUnixNs() ^ uint64_t(attempt);
    }
    // NAME_MAX is 255: keep the base short enough for the suffix.
    const std::string temporary =
        absl::StrCat(dir, "/.", base.substr(0, 200), ".tmp-", getpid(), "-",
                     absl::Hex(nonce, absl::kZeroPad16));
    const int fd =
        open(temporary.c_str(),
             O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      fchmod(fd, 0600);
      return PendingFile(fd, path, dir, std::string(what), temporary,
                         temporary);
    }
    if (errno != EEXIST || attempt == 100) return ErrnoError(errno, creating);
  }
}

PendingFile::PendingFile(PendingFile&& other) noexcept {
  *this = std::move(other);
}

PendingFile& PendingFile::operator=(PendingFile&& other) noexcept {
  if (this != &other) {
    Discard();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    dir_ = std::move(other.dir_);
    what_ = std::move(other.what_);
    temporary_ = std::exchange(other.temporary_, "");
    open_path_ = std::move(other.open_path_);
    published_ = std::exchange(other.published_, true);
  }
  return *this;
}

PendingFile::~PendingFile() { Discard(); }

void PendingFile::Discard() {
  if (!published_ && !temporary_.empty()) unlink(temporary_.c_str());
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status PendingFile::Publish() {
  if (published_) {
    return absl::FailedPreconditionError(
        absl::StrCat(what_, ": already published"));
  }
  const std::string publishing = absl::StrCat("publishing ", what_);
  if (unnamed()) {
    // linkat never replaces newpath (EEXIST, as O_EXCL) and never follows a
    // link there.
    if (linkat(AT_FDCWD, open_path_.c_str(), AT_FDCWD, path_.c_str(),
               AT_SYMLINK_FOLLOW) != 0) {
      if (errno == EEXIST) return AlreadyExistsError(path_, what_);
      return ErrnoError(errno, publishing);
    }
  } else if (renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, path_.c_str(),
                       RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) return AlreadyExistsError(path_, what_);
    if (errno != EINVAL && errno != ENOSYS) {
      return ErrnoError(errno, publishing);
    }
    // No RENAME_NOREPLACE on this filesystem: link(2) never replaces
    // either; the temporary's name is then dropped.
    if (link(temporary_.c_str(), path_.c_str()) != 0) {
      if (errno == EEXIST) return AlreadyExistsError(path_, what_);
      return ErrnoError(errno, publishing);
    }
    unlink(temporary_.c_str());
  }
  published_ = true;
  return absl::OkStatus();
}

void PendingFile::SyncDirectory() const {
  const int fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace shmheap::internal
