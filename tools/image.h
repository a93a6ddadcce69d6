// Heap images: a named heap saved to a regular file, and loaded back.
//
// A saved image is itself a heap file. Nothing in a segment depends on the
// address it is mapped at (heap/offset.h), so Heap::OpenFile maps an image
// straight back, and LoadImage copies one into /dev/shm byte for byte, with
// no pointer to fix up. The image holds the segment's prefix [0, top):
// header, registry, table and the used heap. The reserved capacity above
// top is not written; the file simply ends at top, as the file of a heap
// whose top has never moved further does, and the library backs more when a
// process allocates (Segment::Back). Pages of zeros below top are skipped
// too, so a mostly empty table costs no writes. The whole extent is
// allocated (fallocate) before the first byte is written: a full disk or
// /dev/shm is one clean error, and metadata written later through a mapping
// can never fault, the same guarantee Segment::Initialize gives a new heap.
//
// An image has no processes. The registry entries of the processes that
// were attached are folded into the header (their counters into
// Header::retired_counters, an open chunk's tail closed with a filler) and
// freed, and the collector lock and epoch are reset; the loading user
// becomes the owner (Header::owner_uid). A process that attaches to the
// image therefore starts from a quiet heap, as after a clean shutdown.
//
// Consistency contract (SaveImage): no process may write the heap (Add,
// Replace, Remove, Move, Reserve) while it is saved; readers may run. The
// save collects first, so the image holds live blobs only, then copies while
// holding a Pin, so no collection can move data under the copy. A writer
// that races with the copy is not excluded, but it is detected: every
// image is checked with Heap::Verify before the save reports success, and a
// failed check deletes the file and returns kAborted.
//
// Errors (absl::Status codes):
//   kNotFound            no such file (LoadImage)
//   kAlreadyExists       the output file (SaveImage) or heap (LoadImage)
//                        exists
//   kInvalidArgument     bad heap name; the input is not a regular file
//   kFailedPrecondition  not a shmheap image, or another format version
//   kDataLoss            truncated or inconsistent image; a collector died
//                        while compacting it; Verify found corruption
//   kAborted             the heap changed while it was being saved
//   kResourceExhausted   no space on the disk or in /dev/shm, RLIMIT_FSIZE
//   and whatever Heap::Collect, OpenNamed and OpenFile return.
// On any error nothing is left behind: no output file, no new segment.

#ifndef SHMHEAP_TOOLS_IMAGE_H_
#define SHMHEAP_TOOLS_IMAGE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "shmheap.h"

namespace shmheap::tools {

// The header fields of a segment or image, as read from its first page.
struct ImageInfo {
  uint64_t file_bytes = 0;  // size of the file or segment
  uint64_t total_bytes = 0;
  uint64_t registry_offset = 0;
  uint64_t table_offset = 0;
  uint64_t heap_start = 0;
  uint64_t heap_limit = 0;
  uint64_t top = 0;
  uint64_t chunk_bytes = 0;
  uint32_t max_sessions = 0;
  uint32_t table_slots_log2 = 0;
  uint32_t owner_uid = 0;
  uint32_t phase = 0;    // Header::phase (kPhase*)
  uint32_t gc_lock = 0;  // pid of a collector that held the lock
};

// Reads the header of the open file `fd` and checks it the way attach does
// (magic, format word, geometry against the file's size, top in range),
// without mapping anything or trusting an offset before it is checked.
// `what` names the object in messages ("file /tmp/x", "heap /h").
absl::StatusOr<ImageInfo> ReadImageInfo(int fd, std::string_view what);

struct SaveReport {
  GcReport gc;               // the collection that ran first
  uint64_t image_bytes = 0;  // size of the file written (the heap's top)
  Stats stats;               // of the saved image
};

// Collects `heap`, then writes its image to a new file `path` (O_EXCL, mode
// 0600) and checks it (Heap::OpenFile, Verify). REQUIRES: this process
// holds no view or Pin of `heap` (Collect needs that). See the consistency
// contract above.
absl::StatusOr<SaveReport> SaveImage(Heap& heap, const std::string& path,
                                     const CollectOptions& options = {});

// Creates the named heap `name` (O_EXCL, mode 0600) from the image in file
// `path`, opens it and runs Verify on it. On failure the segment is removed
// again. The file is only read.
absl::StatusOr<Heap> LoadImage(const std::string& path, std::string_view name);

}  // namespace shmheap::tools

#endif  // SHMHEAP_TOOLS_IMAGE_H_
