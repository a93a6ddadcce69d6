#include "heap/blob.h"

#include <xxhash.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "heap/strings.h"

namespace shmheap::internal {

absl::StatusOr<BlobGeometry> ComputeGeometry(Kind kind, int ndims,
                                             int64_t elements, bool has_key,
                                             uint64_t key_len,
                                             bool has_checksum) {
  if (ndims < 0 || ndims > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat("an array has 0 to ", kMaxDims, " dims, not ", ndims));
  }
  if (!IsValidKind(static_cast<uint8_t>(kind))) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid kind ", static_cast<int>(kind)));
  }
  const uint64_t limit = kMaxBlobWords * 8 / 2;
  const uint64_t elem = ElementSize(kind);
  // elements * elem > limit, by multiplication (no division per add).
  uint64_t bytes;
  if (elements < 0 ||
      __builtin_mul_overflow(static_cast<uint64_t>(elements), elem, &bytes) ||
      bytes > limit || key_len > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "array of ", elements, " ", Sv(KindName(kind)), " elements (key of ",
        key_len, " bytes) is too large for a blob"));
  }
  BlobGeometry g;
  g.payload_bytes = static_cast<uint64_t>(elements) * elem;
  uint64_t prefix = 16 + 8 * static_cast<uint64_t>(ndims);
  if (has_key) {
    g.key_offset = prefix;
    prefix += 8 + AlignUp(key_len, 8);
  }
  uint64_t align = ElementAlign(kind) > 8 ? ElementAlign(kind) : 8;
  if (g.payload_bytes >= kLargePayloadBytes) align = 64;
  g.alignment = align;
  g.align_code = align == 8 ? 0 : align == 16 ? 1 : align == 32 ? 2 : 3;
  g.payload_offset = AlignUp(prefix, align);
  g.total_bytes = g.payload_offset + AlignUp(g.payload_bytes, 8);
  if (has_checksum) {
    g.checksum_offset = g.total_bytes;
    g.total_bytes += 8;
  }
  // The key and the payload are each bounded above, but together they can
  // still pass the header's 48-bit word count.
  if (g.total_bytes / 8 > kMaxBlobWords) {
    return absl::InvalidArgumentError(absl::StrCat(
        "array of ", elements, " ", Sv(KindName(kind)),
        " elements and a key of ", key_len, " bytes is too large for a blob"));
  }
  return g;
}

uint64_t BlobRef::payload_bytes() const {
  uint64_t n = ElementSize(static_cast<Kind>(header().kind));
  for (const int64_t d : dims()) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t BlobRef::ComputeChecksum() const {
  const uint64_t prefix_end =
      key_offset() + (header().has_key ? 8 + key().size() : 0);
  return XXH3_64bits_withSeed(payload(), payload_bytes(),
                              XXH3_64bits(start_, prefix_end));
}

BlobHeader MakeBlobHeader(const BlobGeometry& g, Kind kind, Layout layout,
                          int ndims, bool has_key, bool has_checksum,
                          bool key_hashed) {
  BlobHeader h;
  h.size_words = g.total_bytes / 8;
  h.kind = static_cast<uint8_t>(kind);
  h.ndims = static_cast<uint8_t>(ndims);
  h.layout = layout;
  h.has_key = has_key;
  h.align_code = g.align_code;
  h.has_checksum = has_checksum;
  h.key_hashed = key_hashed;
  return h;
}

std::byte* WriteBlobPrefix(std::byte* start, const BlobGeometry& g,
                           const BlobHeader& header, uint64_t hash,
                           std::span<const int64_t> dims,
                           std::string_view key) {
  const uint64_t word = header.Encode();
  std::memcpy(start, &word, 8);
  std::memcpy(start + 8, &hash, 8);
  if (!dims.empty()) std::memcpy(start + 16, dims.data(), 8 * dims.size());
  if (header.has_key) {
    const uint64_t len = key.size();
    std::memcpy(start + g.key_offset, &len, 8);
    if (len) std::memcpy(start + g.key_offset + 8, key.data(), len);
    // Zero the key's padding so saved heaps are deterministic.
    const uint64_t pad = AlignUp(len, 8) - len;
    if (pad) std::memset(start + g.key_offset + 8 + len, 0, pad);
  }
  return start + g.payload_offset;
}

}  // namespace shmheap::internal
