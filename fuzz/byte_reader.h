// ByteReader and ByteWriter: the field encoding of //fuzz:blob_view_fuzzer's
// input, read by the target and written by make_corpus for its seeds.
//
// Fields are little-endian. Reading past the end yields zeros, so every
// input, however short, decodes to something. Two encodings steer the fuzzer
// towards values that matter while keeping every value reachable:
//   SmallInt  one byte b < 0xf8 is b - 8 (-8 .. 239: indices, dims and
//             offsets near every boundary); 0xf8 and above is followed by a
//             raw int64 (negative, huge, overflowing values).
//   Offset    one tag byte picks 0, base + u16, base + 8 * u16 (aligned), or
//             a raw u64: heap offsets near a segment's heap_start.

#ifndef SHMHEAP_FUZZ_BYTE_READER_H_
#define SHMHEAP_FUZZ_BYTE_READER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace shmheap::fuzz {

inline constexpr uint8_t kSmallIntRaw = 0xf8;

enum OffsetTag : uint8_t {
  kOffsetZero = 0,
  kOffsetNear = 1,     // base + u16
  kOffsetRaw = 2,      // u64
  kOffsetAligned = 3,  // base + 8 * u16
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}

  bool empty() const { return data_.empty(); }
  size_t size() const { return data_.size(); }

  uint64_t Uint(size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      if (data_.empty()) break;
      v |= uint64_t{data_[0]} << (8 * i);
      data_ = data_.subspan(1);
    }
    return v;
  }
  uint8_t U8() { return static_cast<uint8_t>(Uint(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Uint(2)); }
  uint64_t U64() { return Uint(8); }

  int64_t SmallInt() {
    const uint8_t b = U8();
    if (b < kSmallIntRaw) return int64_t{b} - 8;
    return static_cast<int64_t>(U64());
  }

  uint64_t Offset(uint64_t base) {
    switch (U8() % 4) {
      case kOffsetZero:
        return 0;
      case kOffsetNear:
        return base + U16();
      case kOffsetRaw:
        return U64();
      default:
        return base + 8 * uint64_t{U16()};
    }
  }

  // The next `n` bytes (fewer at the end).
  std::span<const uint8_t> Bytes(size_t n) {
    const std::span<const uint8_t> out = data_.first(n < size() ? n : size());
    data_ = data_.subspan(out.size());
    return out;
  }
  std::span<const uint8_t> Rest() { return Bytes(size()); }

 private:
  std::span<const uint8_t> data_;
};

// Writes what ByteReader reads; used to build seeds.
class ByteWriter {
 public:
  ByteWriter& Uint(uint64_t v, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i)
      out_.push_back(static_cast<char>(v >> 8 * i));
    return *this;
  }
  ByteWriter& U8(uint8_t v) { return Uint(v, 1); }
  ByteWriter& U16(uint16_t v) { return Uint(v, 2); }
  ByteWriter& U64(uint64_t v) { return Uint(v, 8); }
  ByteWriter& SmallInt(int64_t v) {
    if (v >= -8 && v < int64_t{kSmallIntRaw} - 8)
      return U8(static_cast<uint8_t>(v + 8));
    return U8(kSmallIntRaw).U64(static_cast<uint64_t>(v));
  }
  // An offset relative to `base`, in the most compact form that is exact.
  ByteWriter& Offset(uint64_t v, uint64_t base) {
    if (v == 0) return U8(kOffsetZero);
    if (v >= base && v - base < 0x10000)
      return U8(kOffsetNear).U16(static_cast<uint16_t>(v - base));
    if (v >= base && (v - base) % 8 == 0 && (v - base) / 8 < 0x10000) {
      return U8(kOffsetAligned).U16(static_cast<uint16_t>((v - base) / 8));
    }
    return U8(kOffsetRaw).U64(v);
  }
  ByteWriter& Bytes(std::span<const uint8_t> b) {
    out_.append(reinterpret_cast<const char*>(b.data()), b.size());
    return *this;
  }
  ByteWriter& Bytes(const std::string& b) {
    out_ += b;
    return *this;
  }

  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

}  // namespace shmheap::fuzz

#endif  // SHMHEAP_FUZZ_BYTE_READER_H_
