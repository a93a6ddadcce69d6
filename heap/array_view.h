// ArrayView and RawView: read-only, zero-copy views of dense arrays, typed and
// untyped, modelled on OCaml's Bigarray.Genarray.
//
// A view is a pointer to the first element, a kind, a layout and up to
// kMaxDims dimensions. It never owns the elements. It holds a Pin
// (heap/pin.h) so that, for arrays in a shmheap segment, the collector does
// not move the elements while the view is alive; views over plain memory
// carry an empty Pin. Every view derived from another one (a copy, Sub,
// Slice, RawView::As) copies its parent's Pin.
//
// Indexing follows Bigarray exactly:
//   Layout::kC        row-major (last index varies fastest), indices
//                     0 .. dim(i) - 1
//   Layout::kFortran  column-major (first index varies fastest), indices
//                     1 .. dim(i)
// dim(i) itself is 0-based in both layouts. Sub and Slice are
// Genarray.sub_left / slice_left for kC and Genarray.sub_right / slice_right
// for kFortran: they restrict or fix the dimensions that vary slowest in
// memory, so the result is again dense and contiguous and nothing is copied.
//
// Thread safety: a view is an immutable value with no atomics of its own.
// Any number of threads may call const members of one view, and copy it,
// concurrently; copying only takes a Pin reference, which is thread-safe.
// Assigning to a view while another thread reads it is a data race, as for
// any value type. Elements are only ever read through a view; whoever
// provides the memory keeps it unchanged and mapped while a view exists (for
// the heap, the Pin keeps it in place).
//
// Invariants (debug asserts in the constructors):
//   * 0 <= ndims() <= kMaxDims and CheckedElementCount(dims()) succeeds, so
//     every product of dimensions, every element offset and size_bytes() fit
//     in int64_t: index arithmetic cannot overflow.
//   * data() points at size() elements stored densely in layout() order and
//     aligned for the element type; it may be null only when size() == 0.
//   * dims_[i] == 0 for ndims() <= i < kMaxDims.
//   * An ArrayView<T>'s kind() satisfies KindTraits<T>::Accepts.
//
// Errors: members whose arguments may come from a user (Get, Sub, Slice,
// RawView::As, CheckedElementCount) return kInvalidArgument. operator() and
// at() are the unchecked fast path: a bad index there is a caller bug and
// only a debug assert catches it.

#ifndef SHMHEAP_HEAP_ARRAY_VIEW_H_
#define SHMHEAP_HEAP_ARRAY_VIEW_H_

#include <algorithm>
#include <array>
#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "heap/kind.h"
#include "heap/pin.h"

namespace shmheap {
namespace array_view_internal {

// The largest ElementSize of any kind. CheckedElementCount bounds byte sizes
// with it because it does not know the kind the dims will be used with.
inline constexpr int64_t kMaxElementSize = 16;
static_assert(
    [] {
      for (int k = 0; k < kNumKinds; ++k) {
        if (ElementSize(static_cast<Kind>(k)) > kMaxElementSize) return false;
      }
      return true;
    }(),
    "kMaxElementSize must bound every kind's element size");

// Product of dims[begin, end). REQUIRES: the dims passed CheckedElementCount.
inline int64_t Product(std::span<const int64_t> dims, size_t begin,
                       size_t end) noexcept {
  int64_t product = 1;
  for (size_t i = begin; i < end; ++i) product *= dims[i];
  return product;
}

// dims_[0, n) := dims, dims_[n, kMaxDims) := 0, in straight-line stores.
// Views are built on every Heap::Get: zero-filling the array and then
// std::copy_n-ing the dims made GCC emit `rep stosq` and `rep movsq`, whose
// start-up cost was about a fifth of a get (bench/anatomy_bench.cc). So the
// views' dims_ has no default member initializer and every constructor
// fills all of it here (the default constructors zero it).
inline void CopyDims(std::span<const int64_t> dims, int n,
                     std::array<int64_t, kMaxDims>& out) noexcept {
  for (int i = 0; i < kMaxDims; ++i) out[i] = i < n ? dims[i] : 0;
}

// absl::StrCat takes absl::string_view, which this build of Abseil does not
// alias to std::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0).
inline absl::string_view AsAbsl(std::string_view s) noexcept {
  return absl::string_view(s.data(), s.size());
}

// The kInvalidArgument of reading an array stored as `stored` as `wanted`.
inline absl::Status KindMismatch(Kind stored, Kind wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("array has kind ", AsAbsl(KindName(stored)),
                   ", not readable as ", AsAbsl(KindName(wanted))));
}

// Lowest valid index of `layout`: 0 for kC, 1 for kFortran.
constexpr int64_t IndexBase(Layout layout) noexcept {
  return layout == Layout::kFortran ? 1 : 0;
}

constexpr bool IsValidLayout(Layout layout) noexcept {
  return layout == Layout::kC || layout == Layout::kFortran;
}

// Checks a full index tuple against `dims`; the message names the position,
// the index and the valid range.
inline absl::Status CheckIndex(std::span<const int64_t> dims, Layout layout,
                               std::span<const int64_t> idx) {
  if (idx.size() != dims.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", idx.size(), " indices for a ", dims.size(),
                     "-dimensional array"));
  }
  const int64_t base = IndexBase(layout);
  for (size_t i = 0; i < idx.size(); ++i) {
    // idx[i] - base cannot overflow: base is 0 or 1 and idx[i] >= base.
    if (idx[i] < base || idx[i] - base >= dims[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "index ", idx[i], " at position ", i, " is out of bounds: dimension ",
          i, " has length ", dims[i], ", valid indices are ", base, " to ",
          dims[i] - 1 + base));
    }
  }
  return absl::OkStatus();
}

// Offset in elements of `idx` from the first element. REQUIRES:
// CheckIndex(dims, layout, idx).ok(). Horner's scheme from the slowest
// dimension down keeps every partial result below the product of the dims
// seen so far, so nothing overflows.
inline int64_t Offset(std::span<const int64_t> dims, Layout layout,
                      std::span<const int64_t> idx) noexcept {
  int64_t offset = 0;
  if (layout == Layout::kC) {
    for (size_t i = 0; i < dims.size(); ++i) {
      offset = offset * dims[i] + idx[i];
    }
  } else {
    for (size_t i = dims.size(); i-- > 0;) {
      offset = offset * dims[i] + (idx[i] - 1);
    }
  }
  return offset;
}

}  // namespace array_view_internal

// Validates dimensions that come from a user and returns the element count
// (1 for zero dims). Errors, all kInvalidArgument: more than kMaxDims dims; a
// negative dim (the message names its position and value); the product of
// the non-zero dims times the largest element size (16 bytes) exceeds
// INT64_MAX. Zero dims are left out of the product so that every partial
// product of an empty array's dims is in range too, which index arithmetic in
// Sub and Slice relies on.
inline absl::StatusOr<int64_t> CheckedElementCount(
    std::span<const int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    return absl::InvalidArgumentError(absl::StrCat(
        dims.size(), " dimensions, more than the maximum of ", kMaxDims));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dimension ", i, " is negative: ", dims[i]));
    }
  }
  constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() /
                                array_view_internal::kMaxElementSize;
  int64_t nonzero_product = 1;
  bool empty = false;
  for (const int64_t dim : dims) {
    if (dim == 0) {
      empty = true;
      continue;
    }
    // product * dim > kMaxCount, tested by multiplication rather than by
    // dividing kMaxCount: a 64-bit division costs tens of cycles on every
    // add.
    int64_t next;
    if (__builtin_mul_overflow(nonzero_product, dim, &next) ||
        next > kMaxCount) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dimensions [", absl::StrJoin(dims, ", "),
          "] are too large: element count or byte size overflows int64"));
    }
    nonzero_product = next;
  }
  return empty ? 0 : nonzero_product;
}

namespace array_view_internal {

// What ArrayView and RawView share: the dims, layout, stored kind and pin
// of a view, with their accessors. The data pointer (typed or not) stays in
// each view.
class ViewShape {
 public:
  // The stored kind (for ArrayView<int64_t> one of kInt64, kInt,
  // kNativeint).
  Kind kind() const noexcept { return kind_; }
  Layout layout() const noexcept { return layout_; }
  int ndims() const noexcept { return ndims_; }
  // Length of dimension i. i is 0-based in both layouts. REQUIRES:
  // 0 <= i < ndims().
  int64_t dim(int i) const noexcept {
    assert(i >= 0 && i < ndims_);
    return dims_[i];
  }
  std::span<const int64_t> dims() const noexcept {
    return {dims_.data(), static_cast<size_t>(ndims_)};
  }
  // Number of elements: the product of the dims, 1 when ndims() == 0.
  int64_t size() const noexcept { return Product(dims(), 0, ndims_); }
  // Whether the view holds a Pin.
  bool pinned() const noexcept { return !pin_.empty(); }

 protected:
  // One dimension of length 0, layout kC, no pin.
  explicit ViewShape(Kind kind) noexcept : dims_{}, kind_(kind) {}
  // REQUIRES: `kind` and `layout` are enumerators;
  // CheckedElementCount(dims).ok().
  ViewShape(Kind kind, std::span<const int64_t> dims, Layout layout,
            Pin pin) noexcept
      : ndims_(static_cast<int>(
            std::min(dims.size(), static_cast<size_t>(kMaxDims)))),
        layout_(layout),
        kind_(kind),
        pin_(std::move(pin)) {
    assert(IsValidKind(static_cast<uint8_t>(kind)));
    assert(dims.size() <= static_cast<size_t>(kMaxDims));
    assert(IsValidLayout(layout));
    assert(CheckedElementCount(dims).ok());
    CopyDims(dims, ndims_, dims_);
  }

  int ndims_ = 1;
  std::array<int64_t, kMaxDims> dims_;  // see CopyDims
  Layout layout_ = Layout::kC;
  Kind kind_;
  Pin pin_;
};

// What ArrayView and ArrayRef (heap/array_ref.h) share: element access over
// data(), dims(), layout() and size() of the derived view (CRTP).
template <class View, class T>
class ElementAccess {
 public:
  size_t size_bytes() const noexcept {
    return static_cast<size_t>(self().size()) * sizeof(T);
  }
  // All elements in storage order (row-major for kC, column-major for
  // kFortran).
  std::span<const T> flat() const noexcept {
    return {self().data(), static_cast<size_t>(self().size())};
  }
  // The element at (idx...), Bigarray index semantics. REQUIRES: exactly
  // ndims() indices, each in range (debug assert).
  template <std::integral... Idx>
  const T& operator()(Idx... idx) const noexcept {
    static_assert(sizeof...(Idx) <= kMaxDims, "too many indices");
    const std::array<int64_t, sizeof...(Idx)> index = {
        static_cast<int64_t>(idx)...};
    return at(index);
  }
  // The element at `idx`. REQUIRES: idx.size() == ndims(), each index in
  // range (debug assert).
  const T& at(std::span<const int64_t> idx) const noexcept {
    assert(CheckIndex(self().dims(), self().layout(), idx).ok());
    return self().data()[Offset(self().dims(), self().layout(), idx)];
  }
  // A copy of the element at `idx`. Errors: kInvalidArgument for a wrong
  // index count or an index out of range (the message names it and the
  // bounds).
  [[nodiscard]] absl::StatusOr<T> Get(std::span<const int64_t> idx) const {
    if (absl::Status s = CheckIndex(self().dims(), self().layout(), idx);
        !s.ok()) {
      return s;
    }
    return self().data()[Offset(self().dims(), self().layout(), idx)];
  }

 private:
  const View& self() const noexcept { return static_cast<const View&>(*this); }
};

}  // namespace array_view_internal

// A read-only typed view of a dense array of T. Cheap to copy: a Pin
// reference and a fixed-size array of dims, no allocation.
template <class T>
class ArrayView : public array_view_internal::ViewShape,
                  public array_view_internal::ElementAccess<ArrayView<T>, T> {
  static_assert(Element<T> && !std::is_const_v<T>,
                "T must be a non-const type with a KindTraits specialisation");
  static_assert(sizeof(T) == ElementSize(KindTraits<T>::kKind),
                "T's size must match the element size of its kind");

 public:
  using value_type = T;

  // An empty view: one dimension of length 0, kind KindTraits<T>::kKind,
  // layout kC, no pin.
  ArrayView() noexcept : ViewShape(KindTraits<T>::kKind) {}

  // Views `data` as an array of `dims` in `layout`, stored as `kind`.
  // REQUIRES: KindTraits<T>::Accepts(kind); CheckedElementCount(dims).ok();
  // `data` points at that many elements of T, aligned, and outlives the view.
  ArrayView(const T* data, Kind kind, std::span<const int64_t> dims,
            Layout layout, Pin pin = {}) noexcept
      : ViewShape(kind, dims, layout, std::move(pin)), data_(data) {
    assert(KindTraits<T>::Accepts(kind));
    assert(data != nullptr || size() == 0);
    assert(reinterpret_cast<uintptr_t>(data) % alignof(T) == 0);
  }

  ArrayView(const ArrayView&) = default;
  ArrayView(ArrayView&&) noexcept = default;
  ArrayView& operator=(const ArrayView&) = default;
  ArrayView& operator=(ArrayView&&) noexcept = default;
  ~ArrayView() = default;

  // kind(), layout(), ndims(), dim(i), dims(), size() and pinned() come
  // from ViewShape; flat(), operator(), at(), Get() and size_bytes() from
  // ElementAccess.
  const T* data() const noexcept { return data_; }

  // Genarray.sub_left (kC: the first dimension restricted to [ofs, ofs+len),
  // ofs 0-based) or Genarray.sub_right (kFortran: the last dimension
  // restricted to [ofs, ofs+len), ofs 1-based). Contiguous, shares the pin.
  // len 0 is allowed, with ofs up to one past the last index. Errors:
  // kInvalidArgument when ndims() == 0, len < 0 or [ofs, ofs+len) is not
  // within the dimension.
  [[nodiscard]] absl::StatusOr<ArrayView> Sub(int64_t ofs, int64_t len) const {
    if (ndims_ == 0) {
      return absl::InvalidArgumentError(
          "Sub of a 0-dimensional array: it has no dimension to restrict");
    }
    const bool c = layout_ == Layout::kC;
    const int axis = c ? 0 : ndims_ - 1;
    const int64_t base = array_view_internal::IndexBase(layout_);
    const int64_t dim = dims_[axis];
    // ofs - base and dim - len cannot overflow once the first two tests pass.
    if (len < 0 || ofs < base || ofs - base > dim - len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Sub(ofs=", ofs, ", len=", len, ") out of range for dimension ", axis,
          " of length ", dim, ": need len >= 0, ofs >= ", base,
          " and ofs + len <= ", dim + base));
    }
    // A product of at most all the non-zero dims: in range.
    const int64_t stride =
        c ? array_view_internal::Product(dims(), 1, ndims_)
          : array_view_internal::Product(dims(), 0, ndims_ - 1);
    std::array<int64_t, kMaxDims> new_dims = dims_;
    new_dims[axis] = len;
    return ArrayView(Advance((ofs - base) * stride), kind_,
                     std::span<const int64_t>(new_dims.data(), ndims_), layout_,
                     pin_);
  }

  // Genarray.slice_left (kC: fixes the first k = index.size() indices,
  // 0-based; the result has the trailing ndims() - k dims) or
  // Genarray.slice_right (kFortran: fixes the last k indices, 1-based; the
  // result has the leading ndims() - k dims). k == ndims() gives a
  // 0-dimensional view of one element. Contiguous, shares the pin. Errors:
  // kInvalidArgument when k > ndims() or an index is out of range.
  [[nodiscard]] absl::StatusOr<ArrayView> Slice(
      std::span<const int64_t> index) const {
    const size_t n = static_cast<size_t>(ndims_);
    const size_t k = index.size();
    if (k > n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Slice with ", k, " indices of a ", n, "-dimensional array"));
    }
    const bool c = layout_ == Layout::kC;
    // The fixed dimensions are [first, first + k); the kept ones the rest.
    const size_t first = c ? 0 : n - k;
    const int64_t base = array_view_internal::IndexBase(layout_);
    for (size_t j = 0; j < k; ++j) {
      const int64_t dim = dims_[first + j];
      if (index[j] < base || index[j] - base >= dim) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Slice: index ", index[j], " at position ", j,
            " is out of bounds for dimension ", first + j, " of length ", dim,
            ", valid indices are ", base, " to ", dim - 1 + base));
      }
    }
    const std::span<const int64_t> fixed = dims().subspan(first, k);
    // Offset of the fixed indices within the fixed dims, times the size of
    // the block the kept dims span.
    const int64_t block = c ? array_view_internal::Product(dims(), k, n)
                            : array_view_internal::Product(dims(), 0, first);
    const int64_t offset =
        array_view_internal::Offset(fixed, layout_, index) * block;
    const std::span<const int64_t> kept =
        c ? dims().subspan(k) : dims().subspan(0, n - k);
    return ArrayView(Advance(offset), kind_, kept, layout_, pin_);
  }

 private:
  // data_ + offset, without forming nullptr + 0.
  const T* Advance(int64_t offset) const noexcept {
    return offset == 0 ? data_ : data_ + offset;
  }

  const T* data_ = nullptr;
};

// A read-only untyped view: the bytes of a dense array and its kind, to be
// read through As<T>() once the caller knows the element type.
class RawView : public array_view_internal::ViewShape {
 public:
  // An empty view: one dimension of length 0, kind kInt8Unsigned, layout kC,
  // no pin.
  RawView() noexcept : ViewShape(Kind::kInt8Unsigned) {}

  // Views `data` as an array of `kind` with `dims` in `layout`. REQUIRES:
  // `kind` and `layout` are enumerators; CheckedElementCount(dims).ok();
  // `data` points at that many elements, aligned for `kind`, and outlives
  // the view.
  RawView(const std::byte* data, Kind kind, std::span<const int64_t> dims,
          Layout layout, Pin pin = {}) noexcept
      : ViewShape(kind, dims, layout, std::move(pin)), data_(data) {
    assert(data != nullptr || size() == 0);
  }

  RawView(const RawView&) = default;
  RawView(RawView&&) noexcept = default;
  RawView& operator=(const RawView&) = default;
  RawView& operator=(RawView&&) noexcept = default;
  ~RawView() = default;

  // kind(), layout(), ndims(), dim(i), dims(), size() and pinned() come
  // from ViewShape.
  size_t size_bytes() const noexcept {
    return static_cast<size_t>(size()) * ElementSize(kind_);
  }
  // The elements' bytes in storage order.
  std::span<const std::byte> bytes() const noexcept {
    return {data_, size_bytes()};
  }
  // The same array as a typed view, sharing the pin. Errors:
  // kInvalidArgument when !KindTraits<T>::Accepts(kind()).
  template <Element T>
  [[nodiscard]] absl::StatusOr<ArrayView<T>> As() const& {
    if (absl::Status s = CheckAs<T>(); !s.ok()) return s;
    return ArrayView<T>(reinterpret_cast<const T*>(data_), kind_, dims(),
                        layout_, pin_);
  }
  // The same, handing this view's pin to the typed view instead of copying
  // it (a copy is a locked increment now and a locked decrement when this
  // view dies: Heap::Get<T> uses this form).
  template <Element T>
  [[nodiscard]] absl::StatusOr<ArrayView<T>> As() && {
    if (absl::Status s = CheckAs<T>(); !s.ok()) return s;
    return ArrayView<T>(reinterpret_cast<const T*>(data_), kind_, dims(),
                        layout_, std::move(pin_));
  }

 private:
  template <Element T>
  absl::Status CheckAs() const {
    if (KindTraits<T>::Accepts(kind_)) return absl::OkStatus();
    return array_view_internal::KindMismatch(kind_, KindTraits<T>::kKind);
  }

  const std::byte* data_ = nullptr;
};

}  // namespace shmheap

#endif  // SHMHEAP_HEAP_ARRAY_VIEW_H_
