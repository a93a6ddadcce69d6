// Offset<T>: the only way the segment refers to itself.
//
// Every process maps a segment at its own address, so nothing stored in it is
// a pointer: a reference is a byte offset from the segment base. Offset 0 is
// the header, which no blob can occupy, so 0 means null.

#ifndef SHMHEAP_HEAP_OFFSET_H_
#define SHMHEAP_HEAP_OFFSET_H_

#include <cstddef>
#include <cstdint>

namespace shmheap {

template <class T>
class Offset {
 public:
  constexpr Offset() = default;
  constexpr explicit Offset(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }
  constexpr bool is_null() const { return value_ == 0; }
  constexpr explicit operator bool() const { return value_ != 0; }

  // The address of the object in the mapping that starts at `base`.
  // REQUIRES: the caller checked that the object lies inside the mapping.
  T* In(std::byte* base) const { return reinterpret_cast<T*>(base + value_); }
  const T* In(const std::byte* base) const {
    return reinterpret_cast<const T*>(base + value_);
  }

  friend constexpr bool operator==(Offset a, Offset b) = default;

 private:
  uint64_t value_ = 0;
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_OFFSET_H_
