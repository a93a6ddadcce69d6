// Deterministic test arrays of every element kind.

#ifndef SHMHEAP_TESTS_KINDS_H_
#define SHMHEAP_TESTS_KINDS_H_

#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "heap/kind.h"

namespace shmheap::testing {

inline constexpr Kind kAllKinds[] = {
    Kind::kFloat32,      Kind::kFloat64,     Kind::kInt8Signed,
    Kind::kInt8Unsigned, Kind::kInt16Signed, Kind::kInt16Unsigned,
    Kind::kInt32,        Kind::kInt64,       Kind::kInt,
    Kind::kNativeint,    Kind::kComplex32,   Kind::kComplex64,
    Kind::kChar};

// Element i of the test array `seed` as the C++ type T.
template <class T>
T TestValue(int64_t i, uint64_t seed) {
  const int64_t v = i * 7 + static_cast<int64_t>(seed % 1000) * 13 + 1;
  if constexpr (std::is_same_v<T, std::complex<float>> ||
                std::is_same_v<T, std::complex<double>>) {
    using R = typename T::value_type;
    return T(static_cast<R>(v) + R(0.5), -static_cast<R>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v) + T(0.25);
  } else {
    return static_cast<T>(v);  // wraps for narrow types, deterministically
  }
}

// Calls f(T{}) with the C++ type that stores `kind`.
template <class F>
auto VisitKind(Kind kind, F&& f) {
  switch (kind) {
    case Kind::kFloat32:
      return f(float{});
    case Kind::kFloat64:
      return f(double{});
    case Kind::kInt8Signed:
      return f(int8_t{});
    case Kind::kInt8Unsigned:
      return f(uint8_t{});
    case Kind::kInt16Signed:
      return f(int16_t{});
    case Kind::kInt16Unsigned:
      return f(uint16_t{});
    case Kind::kInt32:
      return f(int32_t{});
    case Kind::kInt64:
    case Kind::kInt:
    case Kind::kNativeint:
      return f(int64_t{});
    case Kind::kComplex32:
      return f(std::complex<float>{});
    case Kind::kComplex64:
      return f(std::complex<double>{});
    case Kind::kChar:
      return f(char{});
  }
  return f(char{});
}

// The bytes of a test array of `n` elements of `kind`.
inline std::vector<std::byte> TestBytes(Kind kind, int64_t n, uint64_t seed) {
  return VisitKind(kind, [&](auto zero) {
    using T = decltype(zero);
    std::vector<std::byte> out(sizeof(T) * n);
    for (int64_t i = 0; i < n; ++i) {
      const T v = TestValue<T>(i, seed);
      std::memcpy(out.data() + sizeof(T) * i, &v, sizeof(T));
    }
    return out;
  });
}

}  // namespace shmheap::testing

#endif  // SHMHEAP_TESTS_KINDS_H_
