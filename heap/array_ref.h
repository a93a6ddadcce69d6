// ArrayRef and RawRef: borrowed, zero-copy views that a ReadScope hands out.
//
// A borrowed view is what LMDB's read transaction returns: a pointer into the
// shared segment that is valid until the scope that produced it ends. It
// holds no Pin (so copying or dropping it touches no counter), and it does
// not copy the dims: they are read in place from the blob, which the scope
// keeps from moving. That makes a lookup inside a scope free of locked
// instructions and of writes to any shared cache line.
//
// Compared with ArrayView (heap/array_view.h), which owns a Pin and a copy of
// its dims and may outlive everything but its Heap:
//   * an ArrayRef must not be used after its ReadScope ends (a debug build
//     cannot catch that: it is the caller's contract, as for LMDB's MDB_val);
//   * ArrayRef::View(pin) turns it into an ArrayView that lives on with the
//     pin it is given (ReadScope::Keep does that with the scope's pin);
//   * Sub and Slice exist on ArrayView only: they need dims of their own.
//
// Indexing follows Bigarray exactly, as ArrayView does: kC is row-major and
// 0-based, kFortran column-major and 1-based.
//
// Thread safety: immutable values; any number of threads may read one.
//
// Errors: Get (a checked index) and RawRef::As (a kind check) return
// kInvalidArgument; operator() and at() are the unchecked fast path.

#ifndef SHMHEAP_HEAP_ARRAY_REF_H_
#define SHMHEAP_HEAP_ARRAY_REF_H_

#include <array>
#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "heap/array_view.h"
#include "heap/kind.h"
#include "heap/pin.h"

namespace shmheap {
namespace array_view_internal {

// The shape of a borrowed view: dims in place, with kind and layout.
class RefShape {
 public:
  Kind kind() const noexcept { return kind_; }
  Layout layout() const noexcept { return layout_; }
  int ndims() const noexcept { return ndims_; }
  // REQUIRES: 0 <= i < ndims().
  int64_t dim(int i) const noexcept {
    assert(i >= 0 && i < ndims_);
    return dims_[i];
  }
  std::span<const int64_t> dims() const noexcept {
    return {dims_, static_cast<size_t>(ndims_)};
  }
  // The product of the dims (1 when ndims() == 0).
  int64_t size() const noexcept { return Product(dims(), 0, ndims_); }

 protected:
  RefShape() noexcept = default;
  // REQUIRES: `dims` points at `ndims` dims that passed CheckedElementCount
  // and stay in place while the view is used.
  RefShape(const int64_t* dims, int ndims, Kind kind, Layout layout) noexcept
      : dims_(dims),
        ndims_(static_cast<uint8_t>(ndims)),
        kind_(kind),
        layout_(layout) {
    assert(ndims >= 0 && ndims <= kMaxDims);
  }

  const int64_t* dims_ = nullptr;
  uint8_t ndims_ = 0;
  Kind kind_ = Kind::kInt8Unsigned;
  Layout layout_ = Layout::kC;
};

}  // namespace array_view_internal

// A borrowed typed view. 24 bytes; copying it copies three words.
template <class T>
class ArrayRef : public array_view_internal::RefShape,
                 public array_view_internal::ElementAccess<ArrayRef<T>, T> {
  static_assert(Element<T> && !std::is_const_v<T>,
                "T must be a non-const type with a KindTraits specialisation");

 public:
  using value_type = T;

  // An empty, 0-dimensional view of nothing; size() is 1 but data() is
  // null, so only a default-constructed ref is like this: never read it.
  ArrayRef() noexcept = default;
  // REQUIRES: KindTraits<T>::Accepts(kind); `data` holds the elements of
  // `dims` (ndims of them) densely, and both stay in place while used.
  ArrayRef(const T* data, const int64_t* dims, int ndims, Kind kind,
           Layout layout) noexcept
      : RefShape(dims, ndims, kind, layout), data_(data) {
    assert(KindTraits<T>::Accepts(kind));
  }

  // flat(), operator(), at(), Get() and size_bytes() come from
  // ElementAccess.
  const T* data() const noexcept { return data_; }
  // An owning view of the same elements that lives as long as `pin` (the
  // Pin of the scope this ref came from, or any Pin of the same Heap).
  ArrayView<T> View(Pin pin) const noexcept {
    return ArrayView<T>(data_, kind_, dims(), layout_, std::move(pin));
  }

 private:
  const T* data_ = nullptr;
};

// A borrowed untyped view.
class RawRef : public array_view_internal::RefShape {
 public:
  RawRef() noexcept = default;
  // REQUIRES: as for ArrayRef, with `data` aligned for `kind`.
  RawRef(const std::byte* data, const int64_t* dims, int ndims, Kind kind,
         Layout layout) noexcept
      : RefShape(dims, ndims, kind, layout), data_(data) {}

  const std::byte* data() const noexcept { return data_; }
  size_t size_bytes() const noexcept {
    return static_cast<size_t>(size()) * ElementSize(kind_);
  }
  std::span<const std::byte> bytes() const noexcept {
    return {data_, size_bytes()};
  }
  // Whether As<T>() succeeds.
  template <Element T>
  bool Is() const noexcept {
    return KindTraits<T>::Accepts(kind_);
  }
  // The same array typed. Errors: kInvalidArgument when the stored kind is
  // not readable as T (the message names both kinds).
  template <Element T>
  [[nodiscard]] absl::StatusOr<ArrayRef<T>> As() const {
    if (!Is<T>()) {
      return array_view_internal::KindMismatch(kind_, KindTraits<T>::kKind);
    }
    return ArrayRef<T>(reinterpret_cast<const T*>(data_), dims_, ndims_, kind_,
                       layout_);
  }
  // An owning untyped view that lives as long as `pin`.
  RawView View(Pin pin) const noexcept {
    return RawView(data_, kind_, dims(), layout_, std::move(pin));
  }

 private:
  const std::byte* data_ = nullptr;
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_ARRAY_REF_H_
