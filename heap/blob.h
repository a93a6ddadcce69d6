// The blob format: how an array is laid out in the heap.
//
//   word 0    header: tag bit 0 = 1 | ndims (5 bits) | kind (4) | layout (1)
//             | has_key (1) | align code (2) | has_checksum (1)
//             | key_hashed (1) | size in 8-byte words (48)
//   word 1    key hash (the table hash the blob was published under)
//   dims      ndims int64 words (0 <= ndims <= 16)
//   key       when has_key: length word, then the bytes, padded to 8
//   padding   up to the payload's alignment (8, 16 or 64 bytes)
//   payload   the elements in storage order, padded to 8
//   checksum  when has_checksum: XXH3-64 of everything above but padding
//             (BlobRef::ComputeChecksum), written when the blob is
//             published (Options::checksums); the collector restores every
//             word it changes, so the checksum survives compaction
//
// key_hashed says that word 1 is the heap's hash of the stored key (it was
// not given by the caller as a HashedKey), so Verify can recompute it.
//
// A blob starts at a multiple of its own alignment, so the padding before
// the payload is a function of the header alone, and the collector keeps the
// payload aligned by moving a blob only to a multiple of that alignment.
//
// A filler is a header word with kind kFillerKind and no other fields; it
// covers `size` words of garbage (a retired chunk's tail, alignment gaps).
// Both blobs and fillers carry tag bit 1, so the heap parses from heap_start
// to any session's committed top as a sequence of header-led records. During
// compaction a live blob's word 0 holds its slot's offset instead (tag 0).
//
// Invariants: a blob is written completely by one process before the table
// publishes it, and is never modified afterwards (the collector moves it
// while no process is in scope).

#ifndef SHMHEAP_HEAP_BLOB_H_
#define SHMHEAP_HEAP_BLOB_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "heap/kind.h"

namespace shmheap::internal {

inline constexpr uint64_t kTagBit = 1;
inline constexpr uint8_t kFillerKind = 15;
inline constexpr uint64_t kMaxBlobWords = (uint64_t{1} << 48) - 1;
// Payloads at least this large start on a cache line (SIMD, and no false
// sharing with the next blob).
inline constexpr uint64_t kLargePayloadBytes = 4096;

struct BlobHeader {
  uint64_t size_words = 0;  // whole record, header included
  uint8_t kind = 0;         // Kind, or kFillerKind
  uint8_t ndims = 0;
  Layout layout = Layout::kC;
  bool has_key = false;
  uint8_t align_code = 0;  // alignment = 8 << align_code
  bool has_checksum = false;
  bool key_hashed = false;

  uint64_t size_bytes() const { return size_words * 8; }
  uint64_t alignment() const { return uint64_t{8} << align_code; }
  bool is_filler() const { return kind == kFillerKind; }

  constexpr uint64_t Encode() const {
    return kTagBit | (uint64_t{ndims} << 1) | (uint64_t{kind} << 6) |
           (uint64_t{static_cast<uint8_t>(layout)} << 10) |
           (uint64_t{has_key} << 11) | (uint64_t{align_code} << 12) |
           (uint64_t{has_checksum} << 14) | (uint64_t{key_hashed} << 15) |
           (size_words << 16);
  }
  // REQUIRES: word has the tag bit. Fields are returned as stored; callers
  // that do not trust the heap check them with Validate().
  static constexpr BlobHeader Decode(uint64_t word) {
    BlobHeader h;
    h.ndims = (word >> 1) & 0x1f;
    h.kind = (word >> 6) & 0xf;
    h.layout = static_cast<Layout>((word >> 10) & 1);
    h.has_key = (word >> 11) & 1;
    h.align_code = (word >> 12) & 0x3;
    h.has_checksum = (word >> 14) & 1;
    h.key_hashed = (word >> 15) & 1;
    h.size_words = word >> 16;
    return h;
  }
};

inline constexpr uint64_t FillerWord(uint64_t bytes) {
  BlobHeader h;
  h.kind = kFillerKind;
  h.size_words = bytes / 8;
  return h.Encode();
}

constexpr uint64_t AlignUp(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

// Where each part of a blob sits, relative to the blob's start.
struct BlobGeometry {
  uint64_t dims_offset = 16;
  uint64_t key_offset = 0;  // the length word; valid when has_key
  uint64_t payload_offset = 0;
  uint64_t payload_bytes = 0;
  uint64_t total_bytes = 0;  // multiple of 8
  uint64_t alignment = 8;
  uint8_t align_code = 0;
  uint64_t checksum_offset = 0;  // valid when has_checksum
};

// Computes the geometry of a blob; kInvalidArgument when it cannot exist
// (too many dims, a byte size that overflows 48-bit words).
absl::StatusOr<BlobGeometry> ComputeGeometry(Kind kind, int ndims,
                                             int64_t elements, bool has_key,
                                             uint64_t key_len,
                                             bool has_checksum = false);

// The header word of a blob of geometry `g` (the one place a blob's header
// is built).
BlobHeader MakeBlobHeader(const BlobGeometry& g, Kind kind, Layout layout,
                          int ndims, bool has_key, bool has_checksum,
                          bool key_hashed);

// Read-side accessors over a blob that the caller trusts to be well formed
// (published by this library, or checked by Verify).
class BlobRef {
 public:
  explicit BlobRef(const std::byte* start) : start_(start) {}

  uint64_t header_word() const { return Word(0); }
  BlobHeader header() const { return BlobHeader::Decode(Word(0)); }
  uint64_t key_hash() const { return Word(1); }
  std::span<const int64_t> dims() const {
    return {reinterpret_cast<const int64_t*>(start_ + 16), header().ndims};
  }
  // The stored key, or an empty view when the blob keeps none. Inline, as
  // payload_offset(): both are on every lookup's path.
  std::string_view key() const {
    const BlobHeader h = header();
    if (!h.has_key) return {};
    return {reinterpret_cast<const char*>(start_ + key_offset() + 8),
            Word(2 + h.ndims)};
  }
  uint64_t key_offset() const { return 16 + 8 * uint64_t{header().ndims}; }
  uint64_t payload_offset() const {
    const BlobHeader h = header();
    uint64_t prefix = key_offset();
    if (h.has_key) prefix += 8 + AlignUp(Word(2 + h.ndims), 8);
    return AlignUp(prefix, h.alignment());
  }
  const std::byte* payload() const { return start_ + payload_offset(); }
  // The checksum word's offset: the record's last word. REQUIRES:
  // header().has_checksum.
  uint64_t checksum_offset() const { return header().size_bytes() - 8; }
  // The payload's size: the product of the dims times the element size.
  uint64_t payload_bytes() const;
  // The checksum a blob with has_checksum carries: XXH3-64 of the payload,
  // seeded with XXH3-64 of every byte before the key's padding (header
  // word, key hash, dims, key length and bytes). Padding is left out: it
  // means nothing, and reused memory need not be zero.
  uint64_t ComputeChecksum() const;
  // The checksum stored in the blob. REQUIRES: header().has_checksum.
  uint64_t stored_checksum() const {
    uint64_t w;
    std::memcpy(&w, start_ + checksum_offset(), 8);
    return w;
  }
  const std::byte* start() const { return start_; }

 private:
  uint64_t Word(int i) const {
    uint64_t w;
    std::memcpy(&w, start_ + 8 * i, 8);
    return w;
  }
  const std::byte* start_;
};

// Writes the header, hash, dims and key of a blob at `start` (whose geometry
// `g` and header were computed for the same arguments); returns the payload
// address.
std::byte* WriteBlobPrefix(std::byte* start, const BlobGeometry& g,
                           const BlobHeader& header, uint64_t hash,
                           std::span<const int64_t> dims, std::string_view key);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_BLOB_H_
