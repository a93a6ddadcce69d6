// Element kinds and layouts of shmheap arrays: the element kinds of OCaml's
// Bigarray, and its two memory layouts.
//
// Invariants: the numeric values of Kind and Layout are stored in shared
// memory (the blob header), so they are part of the segment's format and must
// never be renumbered; kFormatVersion in heap/layout.h changes if they do.

#ifndef SHMHEAP_HEAP_KIND_H_
#define SHMHEAP_HEAP_KIND_H_

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace shmheap {

// Maximum number of dimensions of an array (Bigarray's limit).
inline constexpr int kMaxDims = 16;

enum class Kind : uint8_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kInt8Signed = 2,
  kInt8Unsigned = 3,
  kInt16Signed = 4,
  kInt16Unsigned = 5,
  kInt32 = 6,
  kInt64 = 7,
  kInt = 8,        // OCaml's native int, stored as 64 bits.
  kNativeint = 9,  // A machine word, stored as 64 bits.
  kComplex32 = 10,
  kComplex64 = 11,
  kChar = 12,
};
inline constexpr int kNumKinds = 13;

// kC: row-major, indices start at 0. kFortran: column-major, indices start
// at 1. Sub-arrays and slices follow Bigarray: kC restricts and fixes leading
// dimensions, kFortran trailing ones.
enum class Layout : uint8_t { kC = 0, kFortran = 1 };

// Bytes per element of `kind`. REQUIRES: `kind` is one of the enumerators.
constexpr size_t ElementSize(Kind kind) {
  switch (kind) {
    case Kind::kFloat32:
      return 4;
    case Kind::kFloat64:
      return 8;
    case Kind::kInt8Signed:
      return 1;
    case Kind::kInt8Unsigned:
      return 1;
    case Kind::kInt16Signed:
      return 2;
    case Kind::kInt16Unsigned:
      return 2;
    case Kind::kInt32:
      return 4;
    case Kind::kInt64:
      return 8;
    case Kind::kInt:
      return 8;
    case Kind::kNativeint:
      return 8;
    case Kind::kComplex32:
      return 8;
    case Kind::kComplex64:
      return 16;
    case Kind::kChar:
      return 1;
  }
  return 0;
}

// Alignment of a payload of `kind` in a blob: the element size (16 for
// complex64, whose C++ alignof is only 8), so SIMD loads of whole elements
// are aligned. Part of the stored format: blobs are placed by it.
constexpr size_t ElementAlign(Kind kind) {
  return kind == Kind::kComplex64 ? 16 : ElementSize(kind);
}

constexpr bool IsValidKind(uint8_t raw) { return raw < kNumKinds; }

// "float32", "complex64", ...; "invalid" for values outside the enum.
std::string_view KindName(Kind kind);
std::string_view LayoutName(Layout layout);

// KindTraits<T>::Accepts(kind) says whether a typed view of T may read an
// array of `kind`; KindTraits<T>::kKind is the kind a typed Add<T> stores.
// int64_t reads kInt64, kInt and kNativeint (all 64-bit signed words).
template <class T>
struct KindTraits;

#define SHMHEAP_KIND_TRAITS(T, K)                            \
  template <>                                                \
  struct KindTraits<T> {                                     \
    static constexpr Kind kKind = K;                         \
    static constexpr bool Accepts(Kind k) { return k == K; } \
  }
SHMHEAP_KIND_TRAITS(float, Kind::kFloat32);
SHMHEAP_KIND_TRAITS(double, Kind::kFloat64);
SHMHEAP_KIND_TRAITS(int8_t, Kind::kInt8Signed);
SHMHEAP_KIND_TRAITS(uint8_t, Kind::kInt8Unsigned);
SHMHEAP_KIND_TRAITS(int16_t, Kind::kInt16Signed);
SHMHEAP_KIND_TRAITS(uint16_t, Kind::kInt16Unsigned);
SHMHEAP_KIND_TRAITS(int32_t, Kind::kInt32);
SHMHEAP_KIND_TRAITS(std::complex<float>, Kind::kComplex32);
SHMHEAP_KIND_TRAITS(std::complex<double>, Kind::kComplex64);
SHMHEAP_KIND_TRAITS(char, Kind::kChar);
#undef SHMHEAP_KIND_TRAITS

template <>
struct KindTraits<int64_t> {
  static constexpr Kind kKind = Kind::kInt64;
  static constexpr bool Accepts(Kind k) {
    return k == Kind::kInt64 || k == Kind::kInt || k == Kind::kNativeint;
  }
};

template <class T>
concept Element = requires {
  KindTraits<std::remove_const_t<T>>::kKind;
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_KIND_H_
