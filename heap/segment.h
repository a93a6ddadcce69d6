// Segment: one contiguous shared mapping, addressed only by offsets.
//
// A segment is created anonymous (memfd, inherited across fork), named
// (a file in /dev/shm, mode 0600) or over a regular file, and attached from
// any process at any address. Its layout is in heap/layout.h.
//
// Creation is invisible until it is complete: a named or file-backed
// segment is built in an unnamed file (PendingFile below) and gets its name
// only after its header, magic last, is written. An attacher therefore finds
// either no object (kNotFound) or a complete segment, never one half made;
// a creator killed at any instruction leaves nothing behind.
//
// Every path is opened with O_NONBLOCK and fstat'ed before use
// (OpenRegularFile below): a FIFO, directory, device, socket or (for names
// in /dev/shm) symbolic link is refused with kFailedPrecondition saying what
// it is, and an open never waits.
//
// The whole range is reserved with MAP_SHARED | MAP_NORESERVE; physical pages
// come on demand. The backing object grows only through Segment::Back(),
// which fallocates a range before anyone writes into it, so a full /dev/shm,
// a full disk or RLIMIT_FSIZE is an error return, never SIGBUS or SIGXFSZ.
// A memfd's tmpfs has no size limit and fallocating past free RAM gets the
// process OOM-killed instead of returning ENOSPC, so Back() first checks a
// floor of available memory (MemAvailable, or statvfs of the backing
// filesystem), as hh_shared's minimum-available check does.
//
// Attach validates the magic, the format word, the geometry against the
// object's size and the owner uid before it trusts a single offset.
//
// Thread safety: a Segment is immutable after construction except through
// the atomics of the shared structs; Back() may be called concurrently.
//
// Errors (absl::Status codes):
//   kNotFound            no segment of that name / no such file
//   kAlreadyExists       CreateNamed or CreateFile on a name that exists
//                        (whatever it is: a FIFO, a symbolic link...)
//   kInvalidArgument     bad name; an option out of its range (the message
//                        names the field, the value and the range)
//   kPermissionDenied    the segment belongs to another uid
//   kFailedPrecondition  not a regular file (a FIFO, a directory, a device,
//                        a socket; a symbolic link in /dev/shm); not a
//                        shmheap segment; another format version; or a
//                        collection died while compacting it (see gc/)
//   kDataLoss            truncated or inconsistent geometry
//   kResourceExhausted   no memory, no space, RLIMIT_FSIZE, mmap failure
//   kInternal            an unexpected system call failure (errno named)

#ifndef SHMHEAP_HEAP_SEGMENT_H_
#define SHMHEAP_HEAP_SEGMENT_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "heap/layout.h"

namespace shmheap::internal {

// Where named segments live: the segment named "/x" is the file
// kShmDir + "/x" (as shm_open(3) places it).
inline constexpr char kShmDir[] = "/dev/shm";

// Option ranges, checked (kInvalidArgument) before anything is created.
// The largest segment a geometry allows stays below kMaxSegmentBytes (2^48,
// heap/layout.h: the table packs blob offsets into 48 bits; asserted in
// segment.cc); 2^46 bytes of heap also stays inside the 47-bit user address
// space of x86-64 and AArch64.
inline constexpr uint64_t kMaxHeapBytes = uint64_t{1} << 46;  // 64 TiB
inline constexpr uint32_t kMinTableSlotsLog2 = 4;
inline constexpr uint32_t kMaxTableSlotsLog2 = 32;
inline constexpr uint32_t kMaxSessions = 1 << 16;
// The dependency table (hashtable/deps.h): 0 (none) or 2^4..2^32 slots.
inline constexpr uint32_t kMinDepSlotsLog2 = 4;
inline constexpr uint32_t kMaxDepSlotsLog2 = 32;
// hh_shared's default dep_table_pow for Hack: 2^17 slots, 1 MiB backed at
// creation (the key-value table's default takes 16 MiB).
inline constexpr uint32_t kDefaultDepSlotsLog2 = 17;
// A floor above any machine's memory means "never grow"; one near 2^64 is
// an unsigned wrap of a negative number, so it is refused.
inline constexpr uint64_t kMaxMinAvailableBytes = uint64_t{1} << 48;

// A table may grow to 2^(table_slots_log2 + kDefaultTableGrowthLog2) slots
// (at most 2^kMaxTableSlotsLog2) unless the options say otherwise.
inline constexpr uint32_t kDefaultTableGrowthLog2 = 6;

struct SegmentOptions {
  uint64_t heap_bytes = uint64_t{1} << 30;  // 4096..kMaxHeapBytes
  uint32_t table_slots_log2 = 20;           // 4..32: the table at creation
  // table_slots_log2..32: the largest table a collection may grow it to
  // (both table areas reserve room for it; nothing is backed until used).
  // 0: table_slots_log2 + kDefaultTableGrowthLog2, at most 32.
  uint32_t max_table_slots_log2 = 0;
  uint32_t max_sessions = 256;  // 1..kMaxSessions
  bool keep_keys = true;
  bool checksums = false;
  // A multiple of 4096 in 4096..kMaxHeapBytes; a chunk larger than the heap
  // is cut to the heap's size.
  uint64_t chunk_bytes = uint64_t{1} << 20;
  uint64_t min_available_bytes = uint64_t{64} << 20;  // 0..2^48
  uint64_t seed = 0;                                  // 0: a random seed
  // The dependency table: 0 (none) or 4..32, 2^n slots of 8 bytes, all
  // backed at creation; it never grows.
  uint32_t dep_table_slots_log2 = kDefaultDepSlotsLog2;
};

enum class BackingKind { kAnonymous, kNamed, kFile };

// Geometry of a segment for the given options, computed the same way by
// creation and validation.
struct Geometry {
  uint64_t registry_offset;
  uint64_t table_areas_offset;  // area 0; area 1 at + TableAreaBytes(max)
  uint32_t max_table_slots_log2;
  uint32_t dep_slots_log2;  // 0: no dependency table
  uint64_t dep_offset;      // 0 when dep_slots_log2 is 0
  uint64_t heap_start;
  uint64_t total_bytes;
};

// The live table: its slots, their number (log2) and offset.
struct TableGeometry {
  Slot* slots;
  uint32_t slots_log2;
  uint64_t offset;
};

class Segment {
 public:
  // Errors: kInvalidArgument (an option out of range), kResourceExhausted.
  static absl::StatusOr<std::unique_ptr<Segment>> CreateAnonymous(
      const SegmentOptions& options);
  // Builds the segment unnamed in /dev/shm, then links it in as `name`
  // (mode 0600, never replacing anything). Errors: kInvalidArgument (name
  // or options), kAlreadyExists (whatever exists there), kPermissionDenied,
  // kResourceExhausted.
  static absl::StatusOr<std::unique_ptr<Segment>> CreateNamed(
      std::string_view name, const SegmentOptions& options);
  // Errors: kInvalidArgument (name), kNotFound (no such name, including a
  // segment still being created), kFailedPrecondition (not a regular file,
  // or a symbolic link: names never follow links; not a segment; another
  // format), kPermissionDenied, kDataLoss, kResourceExhausted.
  static absl::StatusOr<std::unique_ptr<Segment>> OpenNamed(
      std::string_view name);
  // As CreateNamed, in the directory of `path`.
  static absl::StatusOr<std::unique_ptr<Segment>> CreateFile(
      const std::string& path, const SegmentOptions& options);
  // As OpenNamed; a symbolic link at `path` is followed (to a regular
  // file: its target must pass the same checks).
  static absl::StatusOr<std::unique_ptr<Segment>> OpenFile(
      const std::string& path);
  // Removes a name from /dev/shm (whatever it names; nothing is opened);
  // mappings that exist stay valid. Errors: kInvalidArgument, kNotFound,
  // kPermissionDenied.
  static absl::Status UnlinkNamed(std::string_view name);
  // "/name" for a valid name (a leading '/' is optional, no other '/', at
  // most 200 bytes, not "." or ".."), else kInvalidArgument.
  static absl::StatusOr<std::string> NormalizeName(std::string_view name);

  // Maps the same backing object once more, at another address.
  absl::StatusOr<std::unique_ptr<Segment>> MapAgain() const;

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  std::byte* base() const { return base_; }
  uint64_t size() const { return size_; }
  Header& header() const { return *reinterpret_cast<Header*>(base_); }
  SessionEntry* registry() const {
    return reinterpret_cast<SessionEntry*>(base_ + header().registry_offset);
  }
  // The live table (Header::table), read with `order`. A collection may
  // replace it, so REQUIRES: this process is in scope or holds gc_lock with
  // the world stopped (then relaxed suffices: the scope handshake or the
  // lock orders it after the collection that installed the table), or the
  // caller re-checks the gc epoch after use (the seqlock read, acquire).
  TableGeometry table(std::memory_order order) const {
    const uint64_t word = header().table.load(order);
    const uint64_t offset = table_area_offset(TableArea(word));
    return {reinterpret_cast<Slot*>(base_ + offset), TableSlotsLog2(word),
            offset};
  }
  // The live table's slots, size and offset (relaxed; the REQUIRES above).
  Slot* slots() const { return table(std::memory_order_relaxed).slots; }
  uint32_t table_slots_log2() const {
    return table(std::memory_order_relaxed).slots_log2;
  }
  uint64_t table_offset() const {
    return table(std::memory_order_relaxed).offset;
  }
  // Where table area 0 or 1 starts (any area number is clamped to 0..1, so
  // a corrupt Header::table still names a place inside the segment).
  uint64_t table_area_offset(uint32_t area) const {
    const Header& h = header();
    return h.table_areas_offset +
           (area & 1) * TableAreaBytes(h.max_table_slots_log2);
  }
  int fd() const { return fd_; }
  BackingKind backing() const { return backing_; }
  // The name ("/x") or path; "" for an anonymous segment.
  const std::string& name() const { return name_; }
  // "heap /x", "heap file /tmp/h" or "anonymous heap", for messages.
  std::string Describe() const;

  // Makes [offset, offset + length) of the backing object allocated, so
  // that writes there cannot fault. Idempotent, may run concurrently.
  absl::Status Back(uint64_t offset, uint64_t length) const;
  // Gives [offset, offset + length) back to the OS; reads return zeros.
  absl::Status Release(uint64_t offset, uint64_t length) const;
  // The backing object's current size. Every offset below it can be read
  // without SIGBUS, and every offset a process of this heap ever wrote lies
  // below it: objects only grow (Back extends them, Release punches holes
  // and keeps the size). What bounds a record read from an unverified
  // file. Errors: kInternal when fstat fails.
  absl::StatusOr<uint64_t> BackedBytes() const;

  // Whether [offset, offset + length) lies inside the mapping.
  bool Contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  Segment(int fd, std::byte* base, uint64_t size, BackingKind backing,
          std::string name, uint64_t min_available_bytes)
      : fd_(fd),
        base_(base),
        size_(size),
        backing_(backing),
        name_(std::move(name)),
        min_available_bytes_(min_available_bytes) {}
  // Checks every option's range; the geometry they give.
  static absl::StatusOr<Geometry> CheckOptions(const SegmentOptions& options);
  // Writes a new segment into the empty object `fd` (closed on failure).
  static absl::StatusOr<std::unique_ptr<Segment>> Initialize(
      int fd, BackingKind backing, std::string name,
      const SegmentOptions& options, const Geometry& geometry);
  static absl::StatusOr<std::unique_ptr<Segment>> Attach(int fd,
                                                         BackingKind backing,
                                                         std::string name);

  int fd_;
  std::byte* base_;
  uint64_t size_;
  BackingKind backing_;
  std::string name_;
  uint64_t min_available_bytes_;  // the memory floor Back() keeps
};

// The geometry of a segment with these fields (max_table_slots_log2 0: the
// default above; dep_slots_log2 0: no dependency table); kInvalidArgument
// naming the field, its value and its range when one is out of range.
absl::StatusOr<Geometry> ComputeSegmentGeometry(uint32_t max_sessions,
                                                uint32_t table_slots_log2,
                                                uint32_t max_table_slots_log2,
                                                uint64_t heap_bytes,
                                                uint32_t dep_slots_log2);

// Checks the geometry fields of a header read from an object of unknown
// origin: the registry, table areas and heap offsets agree with
// max_sessions, max_table_slots_log2, dep_slots_log2 (the dependency
// table's offset too) and the heap size, the live table
// (Header::table) names area 0 or 1 and a size that fits it, and the chunk
// size is sane.
// kDataLoss saying what disagrees (the caller names the object).
absl::Status CheckHeaderGeometry(const Header& h);

// ---------------------------------------------------------------------------
// Files. Every path the library and its tools open goes through
// OpenRegularFile, and every file they create through PendingFile.

// kShmDir + name, for a name NormalizeName returned ("/x").
std::string ShmPath(std::string_view normalized_name);

// An errno as a Status "<what>: <strerror>": the code absl gives it, except
// that running out of memory, space, file size or descriptors is
// kResourceExhausted.
absl::Status ErrnoError(int err, std::string_view what);

// "a FIFO", "a directory", "a symbolic link", "a character device", "a block
// device", "a socket", "a regular file", or "a file of unknown type", for
// the file type bits of `mode`.
std::string_view FileTypeName(mode_t mode);

// kFailedPrecondition "<what>: is a FIFO, not a regular file" (and so on for
// each type): the one refusal of a path that is not a regular file.
absl::Status NotRegularFileError(std::string_view what, mode_t mode);

// kAlreadyExists "<what> already exists", followed by what it is when it is
// not a regular file ("(a FIFO)"), for `path`, which exists.
absl::Status AlreadyExistsError(const std::string& path, std::string_view what);

enum class Links {
  kFollow,  // a symbolic link at the path is followed (heap and image files)
  kRefuse,  // refused (names in /dev/shm: one object directly there)
};

// Opens the regular file at `path` without ever blocking: open(2) with
// `flags` (O_RDONLY or O_RDWR; no O_CREAT) plus O_NONBLOCK (opening a FIFO
// does not wait for a writer), O_NOCTTY and O_CLOEXEC, and O_NOFOLLOW for
// Links::kRefuse. The path is stat'ed first, so that a device is refused
// without being opened (an open can act: a tape rewinds, a watchdog starts),
// and the descriptor is fstat'ed after, which is what counts (the path may
// change in between). O_NONBLOCK stays set; it changes nothing for a
// regular file. Returns the descriptor, which the caller closes.
// Errors: kNotFound "no <what>"; kFailedPrecondition from
// NotRegularFileError (a symbolic link too, with kRefuse);
// kPermissionDenied; the rest from ErrnoError.
absl::StatusOr<int> OpenRegularFile(const std::string& path, int flags,
                                    Links links, std::string_view what);

// A new file that no other process can see until it is complete, and that
// then appears at its path in one step without replacing anything there.
//
// It is made with O_TMPFILE in the path's directory (no name at all) and
// published with linkat(2), which fails with EEXIST if the path exists, as
// O_EXCL does, and never follows a symbolic link there. A process killed
// before Publish leaves nothing: the kernel frees an unnamed file with its
// last descriptor. Where the filesystem has no O_TMPFILE, or /proc is not
// mounted (linkat reaches an unnamed file through /proc/self/fd), it is a
// temporary beside the path instead, ".<name>.tmp-<pid>-<random>" (created
// O_EXCL | O_NOFOLLOW, so no two collide and a planted link is not
// followed), published with renameat2(RENAME_NOREPLACE) or, where that is
// not supported, link(2) + unlink(2). A process killed then leaves that
// temporary, which nothing else reads or trips over; destroying an
// unpublished PendingFile removes it.
//
// Mode 0600 whatever the umask. Not thread-safe; one owner.
class PendingFile {
 public:
  enum class Strategy { kAuto, kUnnamed, kNamedTemporary };

  // Starts a file to be published at `path`; `what` names it in messages
  // ("heap /x", "file /tmp/y"). The path is checked now (kAlreadyExists from
  // AlreadyExistsError if anything is there) and again by Publish.
  // Errors: kAlreadyExists, kNotFound (no such directory),
  // kPermissionDenied, kFailedPrecondition (kUnnamed where O_TMPFILE or
  // /proc is missing), and the rest from ErrnoError.
  static absl::StatusOr<PendingFile> Create(
      const std::string& path, std::string_view what,
      Strategy strategy = Strategy::kAuto);

  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&& other) noexcept;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  // Closes the descriptor; an unpublished temporary is unlinked.
  ~PendingFile();

  // Read-write, O_CLOEXEC; owned by this object (dup it to keep it).
  int fd() const { return fd_; }
  // A path that opens the file before it is published: /proc/self/fd/N for
  // an unnamed file (valid while this object lives), else the temporary's.
  const std::string& open_path() const { return open_path_; }
  bool unnamed() const { return temporary_.empty(); }

  // Gives the file its path. Errors: kAlreadyExists (something appeared
  // there since Create; the file stays unpublished), kFailedPrecondition
  // (already published), and the rest from ErrnoError.
  absl::Status Publish();
  // fsyncs the directory, so that a published name lasts as long as the
  // file's fsynced data would (best effort; the library itself never
  // fsyncs, see Guarantees).
  void SyncDirectory() const;

 private:
  PendingFile(int fd, std::string path, std::string dir, std::string what,
              std::string temporary, std::string open_path)
      : fd_(fd),
        path_(std::move(path)),
        dir_(std::move(dir)),
        what_(std::move(what)),
        temporary_(std::move(temporary)),
        open_path_(std::move(open_path)) {}
  void Discard();

  int fd_ = -1;
  std::string path_;
  std::string dir_;
  std::string what_;
  std::string temporary_;  // "" for an unnamed file
  std::string open_path_;
  bool published_ = false;
};

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_SEGMENT_H_
