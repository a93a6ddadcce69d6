// Segment: one contiguous shared mapping, addressed only by offsets.
//
// A segment is created anonymous (memfd, inherited across fork), named
// (shm_open in /dev/shm, O_EXCL, mode 0600) or over a regular file, and
// attached from any process at any address. Its layout is in heap/layout.h.
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
//   kAlreadyExists       CreateNamed on a name that exists
//   kInvalidArgument     bad name or options
//   kPermissionDenied    the segment belongs to another uid
//   kFailedPrecondition  not a shmheap segment, another format version, or a
//                        collection died while compacting it (see gc/)
//   kDataLoss            truncated or inconsistent geometry
//   kResourceExhausted   no memory, no space, RLIMIT_FSIZE, mmap failure
//   kInternal            an unexpected system call failure (errno named)

#ifndef SHMHEAP_HEAP_SEGMENT_H_
#define SHMHEAP_HEAP_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "heap/layout.h"

namespace shmheap::internal {

struct SegmentOptions {
  uint64_t heap_bytes = uint64_t{1} << 30;  // capacity for blobs
  uint32_t table_slots_log2 = 20;
  uint32_t max_sessions = 256;
  bool keep_keys = true;
  bool checksums = false;
  uint64_t chunk_bytes = uint64_t{1} << 20;
  uint64_t min_available_bytes = uint64_t{64} << 20;
  uint64_t seed = 0;  // 0: a random seed
};

enum class BackingKind { kAnonymous, kNamed, kFile };

class Segment {
 public:
  static absl::StatusOr<std::unique_ptr<Segment>> CreateAnonymous(
      const SegmentOptions& options);
  static absl::StatusOr<std::unique_ptr<Segment>> CreateNamed(
      std::string_view name, const SegmentOptions& options);
  static absl::StatusOr<std::unique_ptr<Segment>> OpenNamed(
      std::string_view name);
  static absl::StatusOr<std::unique_ptr<Segment>> CreateFile(
      const std::string& path, const SegmentOptions& options);
  static absl::StatusOr<std::unique_ptr<Segment>> OpenFile(
      const std::string& path);
  // Removes a name from /dev/shm; mappings that exist stay valid.
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
  Slot* slots() const {
    return reinterpret_cast<Slot*>(base_ + header().table_offset);
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
  static absl::StatusOr<std::unique_ptr<Segment>> Initialize(
      int fd, BackingKind backing, std::string name,
      const SegmentOptions& options);
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

// Geometry of a segment for the given options, computed the same way by
// creation and validation.
struct Geometry {
  uint64_t registry_offset;
  uint64_t table_offset;
  uint64_t heap_start;
  uint64_t total_bytes;
};
absl::StatusOr<Geometry> ComputeSegmentGeometry(uint32_t max_sessions,
                                                uint32_t table_slots_log2,
                                                uint64_t heap_bytes);

// Checks the geometry fields of a header read from an object of unknown
// origin: the registry, table and heap offsets agree with max_sessions,
// table_slots_log2 and the heap size, and the chunk size is sane.
// kDataLoss saying what disagrees (the caller names the object).
absl::Status CheckHeaderGeometry(const Header& h);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_SEGMENT_H_
