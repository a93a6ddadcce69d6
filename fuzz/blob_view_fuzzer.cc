// Fuzz target: bytes parsed as blobs, walked as a heap, and viewed as
// arrays.
//
// The first byte (mod 3) picks a part:
//   0 geometry  ComputeGeometry on arbitrary arguments returns
//               kInvalidArgument or a geometry that satisfies the blob
//               format's invariants (heap/blob.h); a header word decodes and
//               re-encodes to itself; a blob written by WriteBlobPrefix
//               reads back through BlobRef field for field, its key and
//               payload inside its bytes.
//   1 walk      arbitrary bytes as the heap of a small segment, with a fuzzed
//               top and fuzzed session records (chunks, claims): WalkHeap
//               returns OK or kDataLoss and visits only records inside
//               [heap_start, top), in address order, without overlap. Every
//               record that is a consistent blob by Verify's checks reads
//               through BlobRef inside its own bytes.
//   2 views     a RawView over a buffer with fuzzed kind, layout and dims.
// The views of parts 0, 1 and 2 then run a fuzzed sequence of Get, Sub,
// Slice and full reads. Each call succeeds exactly when an independent
// predicate says its arguments are valid (else kInvalidArgument), and each
// success points exactly where independent stride arithmetic says, inside
// the original array. The buffers of parts 0 and 2 are heap allocations of
// exactly the blob's or array's size, so ASan also catches any stray read.
//
// Input fields use fuzz/byte_reader.h's encodings:
//   part 0: u8 kind, SmallInt ndims, SmallInt elements, u8 has_key,
//           SmallInt key length (raw ComputeGeometry arguments); u64 header
//           word; u8 kind, u8 layout, u8 ndims, ndims x SmallInt dims,
//           u8 has_key, u8 key length, the key, u64 hash; ops; payload.
//   part 1: u16 top / 8, u8 top skew; for each of the 2 session entries,
//           8 Offsets (its first cache line: owner, pinned, claim) and 3
//           Offsets (chunk_start, chunk_end, committed); ops; heap bytes.
//   part 2: u8 kind, u8 layout, u8 ndims, ndims x SmallInt dims; ops; data.
//   ops:    u8 count (mod 9), then per op u8 code (mod 4): 0 Get (u8 count
//           mod 18, SmallInt indices), 1 Sub (SmallInt ofs, SmallInt len),
//           2 Slice (u8 count mod 18, SmallInt indices), 3 read everything.

#include <algorithm>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fuzz/byte_reader.h"
#include "fuzz/fuzz_check.h"
#include "heap/array_view.h"
#include "heap/blob.h"
#include "heap/kind.h"
#include "heap/segment.h"
#include "heap/walk.h"
#include "tests/kinds.h"

namespace shmheap::fuzz {
namespace {

using absl::StatusCode;
using internal::BlobGeometry;
using internal::BlobHeader;
using internal::BlobRef;

// Larger arrays are skipped: the buffer is allocated for every input.
constexpr uint64_t kMaxBufferBytes = 1 << 20;
// The heap of part 1's segment.
constexpr uint64_t kWalkHeapBytes = 64 << 10;

struct Op {
  uint8_t code = 0;
  std::vector<int64_t> args;
};

std::vector<Op> ReadOps(ByteReader& in) {
  std::vector<Op> ops(in.U8() % 9);
  for (Op& op : ops) {
    op.code = in.U8() % 4;
    size_t n = 0;
    if (op.code == 0 || op.code == 2) n = in.U8() % 18;
    if (op.code == 1) n = 2;
    for (size_t i = 0; i < n; ++i) op.args.push_back(in.SmallInt());
  }
  return ops;
}

std::vector<int64_t> ReadDims(ByteReader& in, size_t ndims) {
  std::vector<int64_t> dims(ndims);
  for (int64_t& d : dims) d = in.SmallInt();
  return dims;
}

// Elements between consecutive indices of dimension `axis`: the product of
// the dims that vary faster in memory. Computed here from the definition of
// the layouts, independently of heap/array_view.h's arithmetic.
__int128 Stride(std::span<const int64_t> dims, Layout layout, size_t axis) {
  __int128 stride = 1;
  if (layout == Layout::kC) {
    for (size_t i = axis + 1; i < dims.size(); ++i) stride *= dims[i];
  } else {
    for (size_t i = 0; i < axis; ++i) stride *= dims[i];
  }
  return stride;
}

bool InRange(int64_t index, int64_t base, int64_t dim) {
  return index >= base && static_cast<__int128>(index) - base < dim;
}

// p + offset, for an offset already known to lie within the array.
template <class T>
const T* Advanced(const T* p, __int128 offset) {
  return p + static_cast<ptrdiff_t>(offset);
}

template <class T>
void CheckInside(const ArrayView<T>& v, const std::byte* lo,
                 const std::byte* hi) {
  const auto* p = reinterpret_cast<const std::byte*>(v.data());
  FUZZ_CHECK(p >= lo && p <= hi && v.size_bytes() <= size_t(hi - p),
             absl::StrCat("a view of ", v.size_bytes(), " bytes at offset ",
                          p - lo, " of a ", hi - lo, "-byte array"));
  FUZZ_CHECK(CheckedElementCount(v.dims()).ok());
}

template <class T>
void RunOps(ArrayView<T> view, const std::vector<Op>& ops, const std::byte* lo,
            const std::byte* hi) {
  CheckInside(view, lo, hi);
  for (const Op& op : ops) {
    const std::span<const int64_t> dims = view.dims();
    const size_t n = dims.size();
    const Layout layout = view.layout();
    const int64_t base = layout == Layout::kC ? 0 : 1;
    switch (op.code) {
      case 0: {  // Get
        bool valid = op.args.size() == n;
        __int128 offset = 0;
        for (size_t i = 0; valid && i < n; ++i) {
          valid = InRange(op.args[i], base, dims[i]);
          if (valid) offset += (op.args[i] - base) * Stride(dims, layout, i);
        }
        absl::StatusOr<T> got = view.Get(op.args);
        FUZZ_CHECK(got.ok() == valid, got.status().ToString());
        if (!valid) {
          FUZZ_CHECK_CODE(got.status(), StatusCode::kInvalidArgument);
          break;
        }
        const T* want = Advanced(view.data(), offset);
        FUZZ_CHECK(&view.at(op.args) == want);
        FUZZ_CHECK(std::memcmp(&*got, want, sizeof(T)) == 0);
        break;
      }
      case 1: {  // Sub
        const int64_t ofs = op.args[0], len = op.args[1];
        const size_t axis = layout == Layout::kC ? 0 : n - 1;
        const bool valid =
            n > 0 && len >= 0 && ofs >= base &&
            static_cast<__int128>(ofs) - base + len <= dims[axis];
        absl::StatusOr<ArrayView<T>> got = view.Sub(ofs, len);
        FUZZ_CHECK(got.ok() == valid, got.status().ToString());
        if (!valid) {
          FUZZ_CHECK_CODE(got.status(), StatusCode::kInvalidArgument);
          break;
        }
        std::vector<int64_t> want(dims.begin(), dims.end());
        want[axis] = len;
        FUZZ_CHECK(std::equal(want.begin(), want.end(), got->dims().begin(),
                              got->dims().end()));
        FUZZ_CHECK(
            got->data() ==
            Advanced(view.data(), (ofs - base) * Stride(dims, layout, axis)));
        FUZZ_CHECK(got->layout() == layout && got->kind() == view.kind());
        view = *std::move(got);
        CheckInside(view, lo, hi);
        break;
      }
      case 2: {  // Slice
        const size_t k = op.args.size();
        const size_t first = layout == Layout::kC ? 0 : n - k;
        bool valid = k <= n;
        __int128 offset = 0;
        for (size_t j = 0; valid && j < k; ++j) {
          valid = InRange(op.args[j], base, dims[first + j]);
          if (valid) {
            offset += (op.args[j] - base) * Stride(dims, layout, first + j);
          }
        }
        absl::StatusOr<ArrayView<T>> got = view.Slice(op.args);
        FUZZ_CHECK(got.ok() == valid, got.status().ToString());
        if (!valid) {
          FUZZ_CHECK_CODE(got.status(), StatusCode::kInvalidArgument);
          break;
        }
        const std::span<const int64_t> kept =
            layout == Layout::kC ? dims.subspan(k) : dims.subspan(0, n - k);
        FUZZ_CHECK(std::equal(kept.begin(), kept.end(), got->dims().begin(),
                              got->dims().end()));
        FUZZ_CHECK(got->data() == Advanced(view.data(), offset));
        view = *std::move(got);
        CheckInside(view, lo, hi);
        break;
      }
      default: {  // every element, in storage order
        unsigned char sum = 0;
        for (const T& x : view.flat()) {
          unsigned char b[sizeof(T)];
          std::memcpy(b, &x, sizeof(T));
          for (unsigned char c : b) sum = static_cast<unsigned char>(sum + c);
        }
        // Keeps the reads from being optimised away.
        volatile unsigned char sink = sum;
        (void)sink;
        break;
      }
    }
  }
}

// As<U> succeeds exactly for the types whose traits accept the kind.
template <class U>
void CheckAs(const RawView& raw) {
  FUZZ_CHECK(raw.As<U>().ok() == KindTraits<U>::Accepts(raw.kind()));
}

void ViewOps(const RawView& raw, const std::vector<Op>& ops,
             const std::byte* lo, const std::byte* hi) {
  FUZZ_CHECK(raw.bytes().data() >= lo && raw.bytes().data() <= hi &&
             raw.size_bytes() <= size_t(hi - raw.bytes().data()));
  CheckAs<float>(raw);
  CheckAs<double>(raw);
  CheckAs<int8_t>(raw);
  CheckAs<uint8_t>(raw);
  CheckAs<int16_t>(raw);
  CheckAs<uint16_t>(raw);
  CheckAs<int32_t>(raw);
  CheckAs<int64_t>(raw);
  CheckAs<std::complex<float>>(raw);
  CheckAs<std::complex<double>>(raw);
  CheckAs<char>(raw);
  testing::VisitKind(raw.kind(), [&](auto zero) {
    using T = decltype(zero);
    absl::StatusOr<ArrayView<T>> typed = raw.As<T>();
    FUZZ_CHECK(typed.ok(), typed.status().ToString());
    RunOps(*std::move(typed), ops, lo, hi);
  });
}

// Fills [to, to + n) with the start of `from`, then zeros.
void CopyPrefix(std::byte* to, size_t n, std::span<const uint8_t> from) {
  const size_t copied = std::min(n, from.size());
  // An empty span may have a null data(), which memcpy must not get.
  if (copied > 0) std::memcpy(to, from.data(), copied);
  if (n > copied) std::memset(to + copied, 0, n - copied);
}

// An exactly sized, 64-byte aligned heap buffer, so ASan flags any access
// past its end.
struct Buffer {
  explicit Buffer(size_t n)
      : size(n),
        data(static_cast<std::byte*>(
            ::operator new (n == 0 ? 1 : n, std::align_val_t{64}))) {}
  ~Buffer() { ::operator delete (data, std::align_val_t{64}); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  size_t size;
  std::byte* data;
};

void GeometryPart(ByteReader& in) {
  // Arbitrary arguments: an error, or a geometry with every invariant.
  const uint8_t raw_kind = in.U8();
  const int64_t raw_ndims = in.SmallInt();
  const int64_t raw_elements = in.SmallInt();
  const bool raw_has_key = in.U8() & 1;
  const uint64_t raw_key_len = static_cast<uint64_t>(in.SmallInt());
  const int ndims_arg =
      raw_ndims < -1000 || raw_ndims > 1000 ? -1 : static_cast<int>(raw_ndims);
  absl::StatusOr<BlobGeometry> g =
      internal::ComputeGeometry(static_cast<Kind>(raw_kind), ndims_arg,
                                raw_elements, raw_has_key, raw_key_len);
  if (!g.ok()) {
    FUZZ_CHECK_CODE(g.status(), StatusCode::kInvalidArgument);
  } else {
    const Kind kind = static_cast<Kind>(raw_kind);
    FUZZ_CHECK(IsValidKind(raw_kind) && ndims_arg >= 0 &&
               ndims_arg <= kMaxDims && raw_elements >= 0);
    FUZZ_CHECK(
        g->alignment == uint64_t{8} << g->align_code && g->align_code != 2 &&
            g->alignment >= ElementAlign(kind),
        absl::StrCat("alignment ", g->alignment, ", code ", g->align_code));
    FUZZ_CHECK(g->payload_bytes < internal::kLargePayloadBytes ||
               g->alignment == 64);
    FUZZ_CHECK(g->payload_bytes ==
               static_cast<uint64_t>(raw_elements) * ElementSize(kind));
    uint64_t prefix = 16 + 8 * static_cast<uint64_t>(ndims_arg);
    if (raw_has_key) {
      FUZZ_CHECK(g->key_offset == prefix);
      prefix += 8 + internal::AlignUp(raw_key_len, 8);
    }
    FUZZ_CHECK(g->payload_offset % g->alignment == 0 &&
               g->payload_offset >= prefix &&
               g->payload_offset - prefix < g->alignment);
    FUZZ_CHECK(g->total_bytes % 8 == 0 &&
               g->total_bytes >= g->payload_offset + g->payload_bytes &&
               g->total_bytes - g->payload_offset - g->payload_bytes < 8);
    FUZZ_CHECK(g->total_bytes / 8 <= internal::kMaxBlobWords,
               absl::StrCat("a blob of ", g->total_bytes,
                            " bytes does not fit the 48-bit size field"));
  }

  // Any tagged word decodes to fields that encode back to it (every bit is
  // a field: bits 14 and 15 are has_checksum and key_hashed).
  const uint64_t word = in.U64() | internal::kTagBit;
  FUZZ_CHECK(BlobHeader::Decode(word).Encode() == word);

  // A written blob reads back through BlobRef.
  const Kind kind = static_cast<Kind>(in.U8() % kNumKinds);
  const Layout layout = static_cast<Layout>(in.U8() & 1);
  const std::vector<int64_t> dims = ReadDims(in, in.U8() % (kMaxDims + 1));
  const bool has_key = in.U8() & 1;
  const std::span<const uint8_t> key_bytes = in.Bytes(in.U8());
  const std::string_view key(reinterpret_cast<const char*>(key_bytes.data()),
                             key_bytes.size());
  const uint64_t hash = in.U64();
  const std::vector<Op> ops = ReadOps(in);
  absl::StatusOr<int64_t> count = CheckedElementCount(dims);
  if (!count.ok()) {
    FUZZ_CHECK_CODE(count.status(), StatusCode::kInvalidArgument);
    return;
  }
  g = internal::ComputeGeometry(kind, static_cast<int>(dims.size()), *count,
                                has_key, key.size());
  if (!g.ok()) {
    FUZZ_CHECK_CODE(g.status(), StatusCode::kInvalidArgument);
    return;
  }
  if (g->total_bytes > kMaxBufferBytes) return;
  Buffer buf(g->total_bytes);
  std::memset(buf.data, 0xa5, buf.size);
  const internal::BlobHeader header = internal::MakeBlobHeader(
      *g, kind, layout, static_cast<int>(dims.size()), has_key,
      /*has_checksum=*/false, /*key_hashed=*/false);
  std::byte* payload =
      internal::WriteBlobPrefix(buf.data, *g, header, hash, dims, key);
  FUZZ_CHECK(payload == buf.data + g->payload_offset);
  const std::span<const uint8_t> data = in.Rest();
  CopyPrefix(payload, g->payload_bytes, data);

  const BlobRef blob(buf.data);
  const BlobHeader h = blob.header();
  FUZZ_CHECK(h.size_bytes() == g->total_bytes &&
             h.kind == static_cast<uint8_t>(kind) && h.ndims == dims.size() &&
             h.layout == layout && h.has_key == has_key &&
             h.align_code == g->align_code && !h.is_filler());
  FUZZ_CHECK(blob.key_hash() == hash);
  FUZZ_CHECK(std::equal(dims.begin(), dims.end(), blob.dims().begin(),
                        blob.dims().end()));
  FUZZ_CHECK(blob.key() == (has_key ? key : std::string_view()));
  FUZZ_CHECK(blob.payload_offset() == g->payload_offset);
  const RawView raw(blob.payload(), kind, blob.dims(), layout);
  ViewOps(raw, ops, payload, payload + g->payload_bytes);
}

// Part 1's segment: created once, its registry and heap rewritten for each
// input. Two sessions, a 16-slot table, a 64 KiB heap.
const internal::Segment& WalkSegment() {
  static const internal::Segment* const segment = [] {
    internal::SegmentOptions o;
    o.heap_bytes = kWalkHeapBytes;
    o.max_sessions = 2;
    o.table_slots_log2 = 4;
    o.chunk_bytes = 4096;
    o.min_available_bytes = 0;
    o.seed = 1;
    absl::StatusOr<std::unique_ptr<internal::Segment>> s =
        internal::Segment::CreateAnonymous(o);
    FUZZ_CHECK(s.ok(), s.status().ToString());
    const absl::Status backed =
        (*s)->Back((*s)->header().heap_start, kWalkHeapBytes);
    FUZZ_CHECK(backed.ok(), backed.ToString());
    return s->release();
  }();
  return *segment;
}

// Verify's checks of a blob record, made here independently: a prefix that
// fits, valid dims, a key that fits, and a size and alignment that match
// ComputeGeometry. Then BlobRef must read it inside its bytes.
void CheckBlobRecord(const internal::Segment& seg, uint64_t pos,
                     const BlobHeader b, const std::vector<Op>& ops) {
  const std::byte* start = seg.base() + pos;
  const uint64_t size = b.size_bytes();
  if (size < 16 + 8 * uint64_t{b.ndims} + (b.has_key ? 8 : 0)) return;
  std::vector<int64_t> dims(b.ndims);
  if (!dims.empty()) std::memcpy(dims.data(), start + 16, 8 * dims.size());
  absl::StatusOr<int64_t> count = CheckedElementCount(dims);
  if (!count.ok()) return;
  uint64_t key_len = 0;
  if (b.has_key) std::memcpy(&key_len, start + 16 + 8 * dims.size(), 8);
  if (key_len > size) return;
  absl::StatusOr<BlobGeometry> g =
      internal::ComputeGeometry(static_cast<Kind>(b.kind), b.ndims, *count,
                                b.has_key, key_len, b.has_checksum);
  if (!g.ok() || g->total_bytes != size || g->align_code != b.align_code ||
      pos % g->alignment != 0) {
    return;
  }
  const BlobRef blob(start);
  FUZZ_CHECK(blob.header_word() == b.Encode());
  FUZZ_CHECK(std::equal(dims.begin(), dims.end(), blob.dims().begin(),
                        blob.dims().end()));
  const std::string_view key = blob.key();
  FUZZ_CHECK(key.size() == key_len);
  if (b.has_key) {
    FUZZ_CHECK(reinterpret_cast<const std::byte*>(key.data()) ==
               start + g->key_offset + 8);
  }
  FUZZ_CHECK(blob.payload_offset() == g->payload_offset &&
             g->payload_offset + g->payload_bytes <= size);
  const RawView raw(blob.payload(), static_cast<Kind>(b.kind), blob.dims(),
                    b.layout);
  ViewOps(raw, ops, blob.payload(), blob.payload() + g->payload_bytes);
}

void WalkPart(ByteReader& in) {
  const internal::Segment& seg = WalkSegment();
  internal::Header& h = seg.header();
  const uint64_t heap_start = h.heap_start;
  uint64_t top =
      heap_start + std::min<uint64_t>(8 * uint64_t{in.U16()}, kWalkHeapBytes);
  top += in.U8() % 8;
  top = std::min(top, heap_start + kWalkHeapBytes);
  internal::SessionEntry* reg = seg.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    internal::SessionEntry& e = reg[i];
    std::memset(static_cast<void*>(&e), 0, sizeof e);
    uint64_t line[8];
    for (uint64_t& w : line) w = in.Offset(heap_start);
    std::memcpy(static_cast<void*>(&e), line, sizeof line);
    // Relaxed: this process alone uses the segment.
    e.chunk_start.store(in.Offset(heap_start), std::memory_order_relaxed);
    e.chunk_end.store(in.Offset(heap_start), std::memory_order_relaxed);
    e.committed.store(in.Offset(heap_start), std::memory_order_relaxed);
  }
  const std::vector<Op> ops = ReadOps(in);
  const std::span<const uint8_t> heap = in.Rest();
  std::byte* base = seg.base();
  CopyPrefix(base + heap_start, kWalkHeapBytes, heap);
  h.top.store(top, std::memory_order_relaxed);

  uint64_t end_of_last = heap_start;
  const absl::Status walk = internal::WalkHeap(seg, [&](uint64_t pos,
                                                        BlobHeader b) {
    FUZZ_CHECK(
        pos >= end_of_last && b.size_words > 0 && b.size_bytes() <= top - pos,
        absl::StrCat("record at ", pos, " of ", b.size_bytes(),
                     " bytes, previous ended at ", end_of_last, ", top ", top));
    end_of_last = pos + b.size_bytes();
    if (!b.is_filler()) CheckBlobRecord(seg, pos, b, ops);
    return true;
  });
  if (!walk.ok()) FUZZ_CHECK_CODE(walk, StatusCode::kDataLoss);
}

void ViewPart(ByteReader& in) {
  const Kind kind = static_cast<Kind>(in.U8() % kNumKinds);
  const Layout layout = static_cast<Layout>(in.U8() & 1);
  const std::vector<int64_t> dims = ReadDims(in, in.U8() % (kMaxDims + 1));
  absl::StatusOr<int64_t> count = CheckedElementCount(dims);
  if (!count.ok()) {
    FUZZ_CHECK_CODE(count.status(), StatusCode::kInvalidArgument);
    return;
  }
  const uint64_t bytes = static_cast<uint64_t>(*count) * ElementSize(kind);
  if (bytes > kMaxBufferBytes) return;
  const std::vector<Op> ops = ReadOps(in);
  Buffer buf(bytes);
  const std::span<const uint8_t> data = in.Rest();
  CopyPrefix(buf.data, bytes, data);
  const RawView raw(buf.data, kind, dims, layout);
  ViewOps(raw, ops, buf.data, buf.data + bytes);
}

}  // namespace

int BlobViewOne(std::span<const uint8_t> data) {
  ByteReader in(data);
  switch (in.U8() % 3) {
    case 0:
      GeometryPart(in);
      break;
    case 1:
      WalkPart(in);
      break;
    default:
      ViewPart(in);
      break;
  }
  return 0;
}

}  // namespace shmheap::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return shmheap::fuzz::BlobViewOne({data, size});
}
