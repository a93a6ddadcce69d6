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
// Sealed: save writes an XXH3-64 of the whole image (Header::image_checksum
// read as 0) into the header last, and load refuses an image whose bytes no
// longer hash to it (kDataLoss): a flipped byte anywhere, header, registry,
// table or heap, Verify's blind spots included. Attaching to an image file
// (Heap::OpenFile) makes it a live heap and clears the checksum; load then
// relies on Verify alone.
//
// An image has no processes. The registry entries of the processes that
// were attached are folded into the header (their counters into
// Header::retired_counters, an open chunk's tail closed with a filler) and
// freed, and the collector lock and epoch are reset; the loading user
// becomes the owner (Header::owner_uid). A process that attaches to the
// image therefore starts from a quiet heap, as after a clean shutdown.
//
// Atomic: an image file, and a loaded heap, are built unnamed (O_TMPFILE;
// internal::PendingFile) and appear under their name in one step (linkat,
// which never replaces anything), and only after Verify accepted them. So a
// save or load that fails, is cancelled, or is killed at any instruction
// (SIGKILL included) leaves no FILE and no heap NAME, and no temporary in
// the way of a later one; FILE or NAME, if it exists, is complete. (On a
// filesystem without O_TMPFILE the file is a uniquely named temporary beside
// FILE instead, renamed into place; only a kill can leave it behind.)
//
// Cancellable: SaveImage and LoadImage poll `cancelled` between steps (after
// the collection, every MiB of the copy, before publishing) and, when it
// returns true, stop with kCancelled and leave nothing. A collection is never
// cancelled: SaveImage collects to completion first.
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
//   kNotFound            no such file (LoadImage); no such directory for
//                        the output file (SaveImage)
//   kAlreadyExists       the output file (SaveImage) or heap (LoadImage)
//                        exists, whatever it is (a FIFO, a link...)
//   kInvalidArgument     bad heap name or file name
//   kFailedPrecondition  the input is not a regular file (a FIFO, a
//                        directory, a device...); not a shmheap image, or
//                        another format version
//   kDataLoss            truncated or inconsistent image; its checksum does
//                        not match; a collection was in progress in it;
//                        Verify found corruption
//   kAborted             the heap changed while it was being saved
//   kCancelled           `cancelled` returned true
//   kResourceExhausted   no space on the disk or in /dev/shm, RLIMIT_FSIZE
//   and whatever Heap::Collect, OpenNamed and OpenFile return.
// On any error nothing is left behind: no output file, no new segment.

#ifndef SHMHEAP_TOOLS_IMAGE_H_
#define SHMHEAP_TOOLS_IMAGE_H_

#include <cstdint>
#include <functional>
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
  uint64_t table_offset = 0;  // table area 0: the end of the registry
  uint64_t heap_start = 0;
  uint64_t heap_limit = 0;
  uint64_t top = 0;
  uint64_t chunk_bytes = 0;
  uint32_t max_sessions = 0;
  uint32_t table_slots_log2 = 0;  // the live table (Header::table)
  uint32_t table_area = 0;        // 0 or 1: where the live table is
  uint32_t max_table_slots_log2 = 0;
  uint64_t dep_offset = 0;      // the dependency table (0: none)
  uint32_t dep_slots_log2 = 0;  // its size (0: none)
  uint32_t owner_uid = 0;
  uint32_t phase = 0;    // Header::phase (kPhase*)
  uint32_t gc_lock = 0;  // pid of a collector that held the lock
};

// Polled by SaveImage and LoadImage at safe points; true stops them with
// kCancelled. Null: never cancelled.
using CancelCheck = std::function<bool()>;

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

// Collects `heap`, then writes its image to a new file `path` (mode 0600,
// never replacing anything at `path`), checks it (Heap::OpenFile, Verify),
// fsyncs it and only then gives it its name. REQUIRES: this process holds no
// view or Pin of `heap` (Collect needs that). See the consistency contract
// above.
absl::StatusOr<SaveReport> SaveImage(Heap& heap, const std::string& path,
                                     const CollectOptions& options = {},
                                     const CancelCheck& cancelled = nullptr);

// Creates the named heap `name` (mode 0600, never replacing anything) as a
// copy of the image in file `path` and runs Verify on it before it gets its
// name; returns it opened. A symbolic link at `path` is followed. The file
// is only read.
absl::StatusOr<Heap> LoadImage(const std::string& path, std::string_view name,
                               const CancelCheck& cancelled = nullptr);

}  // namespace shmheap::tools

#endif  // SHMHEAP_TOOLS_IMAGE_H_
