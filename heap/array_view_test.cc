// Tests of ArrayView, RawView and CheckedElementCount.
//
// What they prove: for every element type, both layouts and 0, 1, 2, 3 and 16
// dimensions, every element read through operator(), at() and Get() is the
// element that an independent stride formula (row-major and 0-based for kC,
// column-major and 1-based for kFortran) places there; every Sub and Slice
// result, for all valid arguments, reads the same elements as its parent at
// the corresponding indices and is contiguous; every invalid argument gives
// kInvalidArgument; RawView::As accepts exactly the kinds KindTraits allows;
// and every derived view holds a Pin reference that it releases when it dies.
//
// The backing vector holds MakeValue<T>(p) at storage position p, and the
// values are distinct, so a wrong offset reads a wrong value.

#include "heap/array_view.h"

#include <gtest/gtest.h>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "heap/kind.h"
#include "heap/pin.h"

namespace shmheap {
namespace {

using Dims = std::vector<int64_t>;

constexpr Layout kLayouts[] = {Layout::kC, Layout::kFortran};

// Distinct values for positions 0 .. 126 (char and int8_t bound the range).
template <class T>
T MakeValue(int64_t p) {
  if constexpr (std::is_same_v<T, std::complex<float>> ||
                std::is_same_v<T, std::complex<double>>) {
    using V = typename T::value_type;
    return T(static_cast<V>(p) + V(0.5), static_cast<V>(-3 * p - 1));
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(p) + T(0.25);
  } else {
    return static_cast<T>(p + 1);
  }
}

int64_t Base(Layout layout) { return layout == Layout::kC ? 0 : 1; }

int64_t Count(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// The reference formula, written from the definition of the layouts: the
// stride of dimension i is the product of the dims after i (kC) or before i
// (kFortran); the position is the sum of (index - base) * stride.
int64_t RefPosition(const Dims& dims, Layout layout, const Dims& idx) {
  int64_t position = 0;
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t stride = 1;
    if (layout == Layout::kC) {
      for (size_t j = i + 1; j < dims.size(); ++j) stride *= dims[j];
    } else {
      for (size_t j = 0; j < i; ++j) stride *= dims[j];
    }
    position += (idx[i] - Base(layout)) * stride;
  }
  return position;
}

// Calls fn on every valid index tuple of `dims` (once, with {}, for 0 dims;
// never when a dim is 0).
void ForEachIndex(const Dims& dims, Layout layout,
                  const std::function<void(const Dims&)>& fn) {
  for (int64_t d : dims) {
    if (d == 0) return;
  }
  const int64_t base = Base(layout);
  Dims idx(dims.size(), base);
  while (true) {
    fn(idx);
    size_t i = 0;
    while (i < idx.size() && ++idx[i] == dims[i] + base) idx[i++] = base;
    if (i == idx.size()) return;
  }
}

// The shapes every typed test runs on: 0, 1, 2, 3 and 16 dims, and one with a
// zero-length dimension.
std::vector<Dims> Shapes() {
  Dims sixteen(16, 1);
  sixteen[0] = 2;
  sixteen[5] = 2;
  sixteen[11] = 2;
  sixteen[15] = 2;
  return {{}, {5}, {3, 4}, {2, 3, 4}, sixteen, {3, 0, 2}};
}

std::string Describe(const Dims& dims, Layout layout) {
  return absl::StrCat(std::string(LayoutName(layout)), " [",
                      absl::StrJoin(dims, ", "), "]");
}

template <class T, size_t... I>
const T& CallWith(const ArrayView<T>& view, const Dims& idx,
                  std::index_sequence<I...>) {
  return view(idx[I]...);
}

// view(idx[0], ..., idx[n-1]) for the arities the shapes use.
template <class T>
const T& CallOperator(const ArrayView<T>& view, const Dims& idx) {
  switch (idx.size()) {
    case 0:
      return CallWith(view, idx, std::make_index_sequence<0>());
    case 1:
      return CallWith(view, idx, std::make_index_sequence<1>());
    case 2:
      return CallWith(view, idx, std::make_index_sequence<2>());
    case 3:
      return CallWith(view, idx, std::make_index_sequence<3>());
    case 16:
      return CallWith(view, idx, std::make_index_sequence<16>());
  }
  ADD_FAILURE() << "no operator() call for " << idx.size() << " indices";
  return view.at(idx);
}

bool Contains(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

// Expects kInvalidArgument whose message contains every string of `texts`.
#define EXPECT_INVALID(expr, ...)                                          \
  do {                                                                     \
    const absl::Status status_ = (expr).status();                          \
    EXPECT_EQ(status_.code(), absl::StatusCode::kInvalidArgument)          \
        << #expr << ": " << status_;                                       \
    for (const std::string& text_ : std::vector<std::string>{__VA_ARGS__}) \
      EXPECT_TRUE(Contains(status_, text_))                                \
          << #expr << ": \"" << status_.message() << "\" lacks " << text_; \
  } while (0)

// Checks every element of `sub` against the backing store: the element at
// sub index `idx` must be the parent's element at parent_index(idx), whose
// value the reference formula gives, and must sit where the reference formula
// for `sub`'s own dims puts it within sub.flat() (so `sub` is contiguous).
template <class T>
void ExpectSameElements(const ArrayView<T>& sub, const Dims& parent_dims,
                        Layout layout,
                        const std::function<Dims(const Dims&)>& parent_index) {
  const Dims sub_dims(sub.dims().begin(), sub.dims().end());
  int64_t visited = 0;
  ForEachIndex(sub_dims, layout, [&](const Dims& idx) {
    const Dims parent_idx = parent_index(idx);
    const T expected =
        MakeValue<T>(RefPosition(parent_dims, layout, parent_idx));
    ASSERT_EQ(sub.at(idx), expected)
        << "at [" << absl::StrJoin(idx, ",") << "]";
    ASSERT_EQ(sub.flat()[RefPosition(sub_dims, layout, idx)], expected);
    ++visited;
  });
  EXPECT_EQ(visited, sub.size());
  EXPECT_EQ(static_cast<int64_t>(sub.flat().size()), sub.size());
}

template <class T>
class ArrayViewTypedTest : public ::testing::Test {
 protected:
  // A vector holding MakeValue<T>(p) at position p.
  static std::vector<T> Fill(int64_t n) {
    EXPECT_LT(n, 127);
    std::vector<T> data;
    for (int64_t p = 0; p < n; ++p) data.push_back(MakeValue<T>(p));
    return data;
  }
};

using ElementTypes =
    ::testing::Types<float, double, int8_t, uint8_t, int16_t, uint16_t, int32_t,
                     int64_t, std::complex<float>, std::complex<double>, char>;
TYPED_TEST_SUITE(ArrayViewTypedTest, ElementTypes);

TYPED_TEST(ArrayViewTypedTest, EveryElementMatchesTheReferenceFormula) {
  using T = TypeParam;
  for (const Dims& dims : Shapes()) {
    for (Layout layout : kLayouts) {
      SCOPED_TRACE(Describe(dims, layout));
      const std::vector<T> data = this->Fill(Count(dims));
      const ArrayView<T> view(data.data(), KindTraits<T>::kKind, dims, layout);
      EXPECT_EQ(view.kind(), KindTraits<T>::kKind);
      EXPECT_EQ(view.layout(), layout);
      ASSERT_EQ(view.ndims(), static_cast<int>(dims.size()));
      for (size_t i = 0; i < dims.size(); ++i) {
        EXPECT_EQ(view.dim(static_cast<int>(i)), dims[i]);
      }
      EXPECT_EQ(Dims(view.dims().begin(), view.dims().end()), dims);
      EXPECT_EQ(view.size(), Count(dims));
      EXPECT_EQ(view.size_bytes(), data.size() * sizeof(T));
      EXPECT_EQ(view.data(), data.data());
      EXPECT_EQ(view.flat().data(), data.data());
      EXPECT_EQ(view.flat().size(), data.size());
      EXPECT_FALSE(view.pinned());

      int64_t visited = 0;
      ForEachIndex(dims, layout, [&](const Dims& idx) {
        const T expected = MakeValue<T>(RefPosition(dims, layout, idx));
        ASSERT_EQ(view.at(idx), expected);
        ASSERT_EQ(CallOperator(view, idx), expected);
        absl::StatusOr<T> got = view.Get(idx);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_EQ(*got, expected);
        ++visited;
      });
      EXPECT_EQ(visited, Count(dims));
    }
  }
}

TYPED_TEST(ArrayViewTypedTest, GetRejectsBadIndices) {
  using T = TypeParam;
  for (const Dims& dims : Shapes()) {
    for (Layout layout : kLayouts) {
      SCOPED_TRACE(Describe(dims, layout));
      const std::vector<T> data = this->Fill(Count(dims));
      const ArrayView<T> view(data.data(), KindTraits<T>::kKind, dims, layout);
      const int64_t base = Base(layout);
      Dims too_many(dims.size() + 1, base);
      EXPECT_INVALID(view.Get(too_many),
                     absl::StrCat(dims.size() + 1, " indices"));
      if (!dims.empty()) {
        EXPECT_INVALID(view.Get(Dims(dims.size() - 1, base)));
      }
      // With a zero-length dimension no index tuple is valid, so the
      // message may name another position; only the code is checked then.
      const bool empty = Count(dims) == 0;
      for (size_t i = 0; i < dims.size(); ++i) {
        Dims idx(dims.size(), base);
        for (int64_t bad :
             {base - 1, dims[i] + base, std::numeric_limits<int64_t>::min(),
              std::numeric_limits<int64_t>::max()}) {
          idx[i] = bad;
          if (empty) {
            EXPECT_INVALID(view.Get(idx));
          } else {
            EXPECT_INVALID(view.Get(idx), absl::StrCat("index ", bad),
                           absl::StrCat("position ", i),
                           absl::StrCat("length ", dims[i]));
          }
        }
      }
    }
  }
}

TYPED_TEST(ArrayViewTypedTest, SubMatchesParentForEveryRange) {
  using T = TypeParam;
  for (const Dims& dims : Shapes()) {
    if (dims.empty()) continue;
    for (Layout layout : kLayouts) {
      SCOPED_TRACE(Describe(dims, layout));
      const std::vector<T> data = this->Fill(Count(dims));
      const ArrayView<T> view(data.data(), KindTraits<T>::kKind, dims, layout);
      const size_t axis = layout == Layout::kC ? 0 : dims.size() - 1;
      const int64_t base = Base(layout);
      const int64_t d = dims[axis];
      int64_t checked = 0;
      for (int64_t ofs = base; ofs <= d + base; ++ofs) {
        for (int64_t len = 0; ofs - base + len <= d; ++len) {
          SCOPED_TRACE(absl::StrCat("Sub(", ofs, ", ", len, ")"));
          absl::StatusOr<ArrayView<T>> sub = view.Sub(ofs, len);
          ASSERT_TRUE(sub.ok()) << sub.status();
          Dims expected_dims = dims;
          expected_dims[axis] = len;
          EXPECT_EQ(Dims(sub->dims().begin(), sub->dims().end()),
                    expected_dims);
          EXPECT_EQ(sub->size(), Count(expected_dims));
          EXPECT_EQ(sub->kind(), view.kind());
          EXPECT_EQ(sub->layout(), layout);
          ExpectSameElements<T>(*sub, dims, layout, [&](const Dims& idx) {
            Dims parent_idx = idx;
            parent_idx[axis] += ofs - base;
            return parent_idx;
          });
          ++checked;
        }
      }
      EXPECT_EQ(checked, (d + 1) * (d + 2) / 2);

      // The full range is the parent itself.
      absl::StatusOr<ArrayView<T>> full = view.Sub(base, d);
      ASSERT_TRUE(full.ok());
      EXPECT_EQ(full->data(), view.data());
      EXPECT_EQ(full->size(), view.size());

      EXPECT_INVALID(view.Sub(base - 1, 1), absl::StrCat("ofs=", base - 1));
      EXPECT_INVALID(view.Sub(base, -1), "len=-1");
      EXPECT_INVALID(view.Sub(base, d + 1), absl::StrCat("len=", d + 1),
                     absl::StrCat("length ", d));
      EXPECT_INVALID(view.Sub(d + base + 1, 0));
      EXPECT_INVALID(view.Sub(d + base, 1));
      EXPECT_INVALID(view.Sub(base + 1, std::numeric_limits<int64_t>::max()));
      EXPECT_INVALID(view.Sub(std::numeric_limits<int64_t>::max(), 1));
      EXPECT_INVALID(view.Sub(std::numeric_limits<int64_t>::min(), 0));
      EXPECT_INVALID(view.Sub(base, std::numeric_limits<int64_t>::min()));
    }
  }
}

TYPED_TEST(ArrayViewTypedTest, SubOfZeroDimensionalArrayFails) {
  using T = TypeParam;
  const T value = MakeValue<T>(0);
  for (Layout layout : kLayouts) {
    const ArrayView<T> view(&value, KindTraits<T>::kKind, Dims{}, layout);
    EXPECT_INVALID(view.Sub(Base(layout), 0), "0-dimensional");
    EXPECT_INVALID(view.Sub(Base(layout), 1), "0-dimensional");
  }
}

TYPED_TEST(ArrayViewTypedTest, SliceMatchesParentForEveryIndex) {
  using T = TypeParam;
  for (const Dims& dims : Shapes()) {
    for (Layout layout : kLayouts) {
      SCOPED_TRACE(Describe(dims, layout));
      const std::vector<T> data = this->Fill(Count(dims));
      const ArrayView<T> view(data.data(), KindTraits<T>::kKind, dims, layout);
      const size_t n = dims.size();
      const bool c = layout == Layout::kC;
      for (size_t k = 0; k <= n; ++k) {
        const Dims fixed_dims = c ? Dims(dims.begin(), dims.begin() + k)
                                  : Dims(dims.end() - k, dims.end());
        const Dims kept_dims = c ? Dims(dims.begin() + k, dims.end())
                                 : Dims(dims.begin(), dims.end() - k);
        int64_t slices = 0;
        ForEachIndex(fixed_dims, layout, [&](const Dims& index) {
          SCOPED_TRACE(
              absl::StrCat("Slice([", absl::StrJoin(index, ","), "])"));
          absl::StatusOr<ArrayView<T>> slice = view.Slice(index);
          ASSERT_TRUE(slice.ok()) << slice.status();
          EXPECT_EQ(Dims(slice->dims().begin(), slice->dims().end()),
                    kept_dims);
          EXPECT_EQ(slice->kind(), view.kind());
          EXPECT_EQ(slice->layout(), layout);
          ExpectSameElements<T>(*slice, dims, layout, [&](const Dims& idx) {
            Dims parent_idx = c ? index : idx;
            const Dims& tail = c ? idx : index;
            parent_idx.insert(parent_idx.end(), tail.begin(), tail.end());
            return parent_idx;
          });
          if (k == n) {
            EXPECT_EQ(slice->ndims(), 0);
            EXPECT_EQ(slice->size(), 1);
            EXPECT_EQ((*slice)(), view.at(index));
          }
          ++slices;
        });
        EXPECT_EQ(slices, Count(fixed_dims));
      }

      EXPECT_INVALID(view.Slice(Dims(n + 1, Base(layout))),
                     absl::StrCat(n + 1, " indices"));
      // With k == n, position j fixes dimension j in both layouts.
      for (size_t j = 0; j < n; ++j) {
        for (int64_t bad : {Base(layout) - 1, dims[j] + Base(layout),
                            std::numeric_limits<int64_t>::max()}) {
          Dims index(n, Base(layout));
          index[j] = bad;
          if (Count(dims) == 0) {
            EXPECT_INVALID(view.Slice(index));
          } else {
            EXPECT_INVALID(view.Slice(index), absl::StrCat("index ", bad),
                           absl::StrCat("dimension ", j),
                           absl::StrCat("length ", dims[j]));
          }
        }
      }
    }
  }
}

TEST(ArrayViewTest, PartialSliceOutOfRangeNamesTheDimension) {
  const std::vector<int32_t> data(2 * 3 * 4);
  const Dims dims = {2, 3, 4};
  const ArrayView<int32_t> c(data.data(), Kind::kInt32, dims, Layout::kC);
  // kC fixes leading dims: index 1 of a 2-index slice is dimension 1.
  EXPECT_INVALID(c.Slice(Dims{0, 3}), "index 3", "dimension 1", "length 3");
  EXPECT_TRUE(c.Slice(Dims{1, 2}).ok());
  const ArrayView<int32_t> f(data.data(), Kind::kInt32, dims, Layout::kFortran);
  // kFortran fixes trailing dims: index 0 of a 2-index slice is dimension 1.
  EXPECT_INVALID(f.Slice(Dims{4, 1}), "index 4", "dimension 1", "length 3");
  EXPECT_INVALID(f.Slice(Dims{3, 0}), "index 0", "dimension 2", "length 4");
  EXPECT_TRUE(f.Slice(Dims{3, 4}).ok());
}

TEST(ArrayViewTest, SubOfSliceComposes) {
  // Bigarray: slice_left then sub_left of a C array, checked by hand.
  std::vector<int32_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<int32_t>(i);
  const Dims dims = {2, 3, 4};
  const ArrayView<int32_t> c(data.data(), Kind::kInt32, dims, Layout::kC);
  absl::StatusOr<ArrayView<int32_t>> row = c.Slice(Dims{1});  // [1][*][*]
  ASSERT_TRUE(row.ok());
  absl::StatusOr<ArrayView<int32_t>> part = row->Sub(1, 2);  // [1][1..2][*]
  ASSERT_TRUE(part.ok());
  EXPECT_EQ((*part)(0, 0), 16);  // 1*12 + 1*4 + 0
  EXPECT_EQ((*part)(1, 3), 23);  // 1*12 + 2*4 + 3
  // Fortran: element (i,j,k) sits at (i-1) + 2*(j-1) + 6*(k-1).
  const ArrayView<int32_t> f(data.data(), Kind::kInt32, dims, Layout::kFortran);
  absl::StatusOr<ArrayView<int32_t>> plane = f.Slice(Dims{3});  // (*,*,3)
  ASSERT_TRUE(plane.ok());
  absl::StatusOr<ArrayView<int32_t>> cols = plane->Sub(2, 2);  // (*,2..3,3)
  ASSERT_TRUE(cols.ok());
  EXPECT_EQ((*cols)(1, 1), 14);  // 0 + 2*1 + 6*2
  EXPECT_EQ((*cols)(2, 2), 17);  // 1 + 2*2 + 6*2
}

TEST(ArrayViewTest, OperatorAcceptsAnyIntegralType) {
  std::vector<double> data(12);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<double>(i);
  const Dims dims = {3, 4};
  const ArrayView<double> c(data.data(), Kind::kFloat64, dims, Layout::kC);
  EXPECT_EQ(c(size_t{2}, int16_t{3}), 11.0);
  EXPECT_EQ(c(1u, 2L), 6.0);
  const ArrayView<double> f(data.data(), Kind::kFloat64, dims,
                            Layout::kFortran);
  EXPECT_EQ(f(uint8_t{3}, 4LL), 11.0);
  EXPECT_EQ(f(1, 2), 3.0);
}

TEST(ArrayViewTest, DefaultViewIsEmpty) {
  const ArrayView<float> view;
  EXPECT_EQ(view.ndims(), 1);
  EXPECT_EQ(view.dim(0), 0);
  EXPECT_EQ(view.size(), 0);
  EXPECT_EQ(view.size_bytes(), 0u);
  EXPECT_TRUE(view.flat().empty());
  EXPECT_EQ(view.kind(), Kind::kFloat32);
  EXPECT_EQ(view.layout(), Layout::kC);
  EXPECT_FALSE(view.pinned());
  absl::StatusOr<ArrayView<float>> sub = view.Sub(0, 0);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->size(), 0);
  EXPECT_INVALID(view.Sub(0, 1));
  EXPECT_INVALID(view.Slice(Dims{0}));
  absl::StatusOr<ArrayView<float>> same = view.Slice(Dims{});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size(), 0);

  const RawView raw;
  EXPECT_EQ(raw.size(), 0);
  EXPECT_TRUE(raw.bytes().empty());
  EXPECT_TRUE(raw.As<uint8_t>().ok());
}

TEST(ArrayViewTest, ViewsCanBeHeldInStatusOr) {
  const std::vector<int16_t> data = {1, 2, 3};
  const Dims dims = {3};
  absl::StatusOr<ArrayView<int16_t>> held;
  EXPECT_FALSE(held.ok());
  held = ArrayView<int16_t>(data.data(), Kind::kInt16Signed, dims, Layout::kC);
  ASSERT_TRUE(held.ok());
  ArrayView<int16_t> copy = *held;
  ArrayView<int16_t> moved = std::move(copy);
  EXPECT_EQ(moved(2), 3);
}

TEST(RawViewTest, AsAcceptsEveryWordKindForInt64) {
  const std::vector<int64_t> data = {10, -20, 30, -40, 50, -60};
  const Dims dims = {2, 3};
  for (Kind kind : {Kind::kInt64, Kind::kInt, Kind::kNativeint}) {
    SCOPED_TRACE(KindName(kind));
    const RawView raw(reinterpret_cast<const std::byte*>(data.data()), kind,
                      dims, Layout::kFortran);
    EXPECT_EQ(raw.kind(), kind);
    EXPECT_EQ(raw.layout(), Layout::kFortran);
    EXPECT_EQ(raw.ndims(), 2);
    EXPECT_EQ(raw.dim(0), 2);
    EXPECT_EQ(raw.dim(1), 3);
    EXPECT_EQ(Dims(raw.dims().begin(), raw.dims().end()), dims);
    EXPECT_EQ(raw.size(), 6);
    EXPECT_EQ(raw.size_bytes(), 48u);
    EXPECT_EQ(raw.bytes().data(),
              reinterpret_cast<const std::byte*>(data.data()));
    EXPECT_EQ(raw.bytes().size(), 48u);
    EXPECT_FALSE(raw.pinned());

    absl::StatusOr<ArrayView<int64_t>> typed = raw.As<int64_t>();
    ASSERT_TRUE(typed.ok()) << typed.status();
    EXPECT_EQ(typed->kind(), kind);
    EXPECT_EQ(typed->layout(), Layout::kFortran);
    EXPECT_EQ(typed->data(), data.data());
    EXPECT_EQ((*typed)(1, 1), 10);
    EXPECT_EQ((*typed)(2, 1), -20);
    EXPECT_EQ((*typed)(1, 2), 30);
    EXPECT_EQ((*typed)(2, 3), -60);

    EXPECT_INVALID(raw.As<double>(),
                   absl::StrCat("array has kind ", std::string(KindName(kind)),
                                ", not readable as float64"));
    EXPECT_INVALID(raw.As<int32_t>(), "not readable as int32");
  }
}

TEST(RawViewTest, AsRejectsEveryOtherKind) {
  // A buffer large and aligned enough for any kind.
  alignas(16) std::byte buffer[4 * 16] = {};
  const Dims dims = {4};
  for (int k = 0; k < kNumKinds; ++k) {
    const Kind kind = static_cast<Kind>(k);
    SCOPED_TRACE(KindName(kind));
    const RawView raw(buffer, kind, dims, Layout::kC);
    EXPECT_EQ(raw.size_bytes(), 4 * ElementSize(kind));
    EXPECT_EQ(raw.As<float>().ok(), kind == Kind::kFloat32);
    EXPECT_EQ(raw.As<double>().ok(), kind == Kind::kFloat64);
    EXPECT_EQ(raw.As<int8_t>().ok(), kind == Kind::kInt8Signed);
    EXPECT_EQ(raw.As<uint8_t>().ok(), kind == Kind::kInt8Unsigned);
    EXPECT_EQ(raw.As<int16_t>().ok(), kind == Kind::kInt16Signed);
    EXPECT_EQ(raw.As<uint16_t>().ok(), kind == Kind::kInt16Unsigned);
    EXPECT_EQ(raw.As<int32_t>().ok(), kind == Kind::kInt32);
    EXPECT_EQ(raw.As<int64_t>().ok(), kind == Kind::kInt64 ||
                                          kind == Kind::kInt ||
                                          kind == Kind::kNativeint);
    EXPECT_EQ(raw.As<std::complex<float>>().ok(), kind == Kind::kComplex32);
    EXPECT_EQ(raw.As<std::complex<double>>().ok(), kind == Kind::kComplex64);
    EXPECT_EQ(raw.As<char>().ok(), kind == Kind::kChar);
    if (kind != Kind::kFloat32) {
      EXPECT_INVALID(
          raw.As<float>(),
          absl::StrCat("array has kind ", std::string(KindName(kind)),
                       ", not readable as float32"));
    }
  }
}

TEST(CheckedElementCountTest, CountsElements) {
  EXPECT_EQ(CheckedElementCount(Dims{}).value(), 1);
  EXPECT_EQ(CheckedElementCount(Dims{7}).value(), 7);
  EXPECT_EQ(CheckedElementCount(Dims{2, 3, 4}).value(), 24);
  EXPECT_EQ(CheckedElementCount(Dims{5, 0, 3}).value(), 0);
  EXPECT_EQ(CheckedElementCount(Dims(16, 2)).value(), 65536);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // The largest count whose 16-byte elements still fit in int64.
  EXPECT_EQ(CheckedElementCount(Dims{kMax / 16}).value(), kMax / 16);
  EXPECT_EQ(CheckedElementCount(Dims{0, kMax / 16}).value(), 0);
}

TEST(CheckedElementCountTest, RejectsBadDims) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_INVALID(CheckedElementCount(Dims(17, 1)), "17 dimensions");
  EXPECT_INVALID(CheckedElementCount(Dims{2, 3, -1}), "dimension 2",
                 "negative: -1");
  EXPECT_INVALID(CheckedElementCount(Dims{std::numeric_limits<int64_t>::min()}),
                 "dimension 0");
  // A negative dim is reported even when the product would be 0 anyway.
  EXPECT_INVALID(CheckedElementCount(Dims{0, -5}), "dimension 1",
                 "negative: -5");
  // Byte size overflows although the count fits.
  EXPECT_INVALID(CheckedElementCount(Dims{kMax / 16 + 1}), "too large");
  // The count itself overflows.
  EXPECT_INVALID(CheckedElementCount(Dims{int64_t{1} << 32, int64_t{1} << 32}),
                 "too large");
  EXPECT_INVALID(CheckedElementCount(Dims{kMax, 2}), "too large");
  EXPECT_INVALID(CheckedElementCount(Dims(16, int64_t{1} << 4)), "too large");
  // Empty, but the non-zero dims would overflow index arithmetic.
  EXPECT_INVALID(
      CheckedElementCount(Dims{0, int64_t{1} << 40, int64_t{1} << 40}),
      "too large");
}

// A PinTarget that counts references, as the heap's session does.
class CountingPinTarget final : public internal::PinTarget {
 public:
  // Takes the first reference and returns a Pin adopting it.
  Pin NewPin() {
    ++refs_;
    return Pin::Adopt(this);
  }
  void AddPin() noexcept override {
    EXPECT_GT(refs_, 0) << "AddPin on an unpinned target";
    ++refs_;
  }
  void DropPin() noexcept override {
    EXPECT_GT(refs_, 0) << "DropPin below zero";
    --refs_;
  }
  int refs() const { return refs_; }

 private:
  int refs_ = 0;
};

TEST(PinTest, EveryDerivedViewHoldsAReference) {
  CountingPinTarget target;
  std::vector<int64_t> data(2 * 3);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<int64_t>(i);
  const Dims dims = {2, 3};
  {
    const ArrayView<int64_t> view(data.data(), Kind::kInt, dims, Layout::kC,
                                  target.NewPin());
    EXPECT_EQ(target.refs(), 1);
    EXPECT_TRUE(view.pinned());
    {
      const ArrayView<int64_t> copy = view;
      EXPECT_EQ(target.refs(), 2);
      EXPECT_TRUE(copy.pinned());
      absl::StatusOr<ArrayView<int64_t>> sub = view.Sub(1, 1);
      ASSERT_TRUE(sub.ok());
      EXPECT_EQ(target.refs(), 3);
      EXPECT_TRUE(sub->pinned());
      absl::StatusOr<ArrayView<int64_t>> slice = view.Slice(Dims{1, 2});
      ASSERT_TRUE(slice.ok());
      EXPECT_EQ(target.refs(), 4);
      EXPECT_TRUE(slice->pinned());
      EXPECT_EQ((*slice)(), 5);
      // A view of a view still pins after its parent is gone.
      absl::StatusOr<ArrayView<int64_t>> sub_of_slice =
          ArrayView<int64_t>(*sub).Slice(Dims{0});
      ASSERT_TRUE(sub_of_slice.ok());
      EXPECT_EQ(target.refs(), 5);
      // Failed derivations take no reference.
      EXPECT_FALSE(view.Sub(0, 3).ok());
      EXPECT_FALSE(view.Slice(Dims{2}).ok());
      EXPECT_EQ(target.refs(), 5);
      // Moving transfers the reference instead of taking one.
      ArrayView<int64_t> moved = std::move(*sub);
      EXPECT_EQ(target.refs(), 5);
      EXPECT_TRUE(moved.pinned());
      // Assigning an unpinned view over a pinned one drops its reference.
      moved = ArrayView<int64_t>();
      EXPECT_EQ(target.refs(), 4);
      EXPECT_FALSE(moved.pinned());
    }
    EXPECT_EQ(target.refs(), 1);
  }
  EXPECT_EQ(target.refs(), 0);

  {
    const RawView raw(reinterpret_cast<const std::byte*>(data.data()),
                      Kind::kNativeint, dims, Layout::kFortran,
                      target.NewPin());
    EXPECT_EQ(target.refs(), 1);
    EXPECT_TRUE(raw.pinned());
    {
      absl::StatusOr<ArrayView<int64_t>> typed = raw.As<int64_t>();
      ASSERT_TRUE(typed.ok());
      EXPECT_EQ(target.refs(), 2);
      EXPECT_TRUE(typed->pinned());
      EXPECT_FALSE(raw.As<double>().ok());
      EXPECT_EQ(target.refs(), 2);
      const RawView raw_copy = raw;
      EXPECT_EQ(target.refs(), 3);
    }
    EXPECT_EQ(target.refs(), 1);
  }
  EXPECT_EQ(target.refs(), 0);
}

#ifndef NDEBUG
TEST(ArrayViewDeathTest, BadIndexAsserts) {
  const std::vector<float> data(6);
  const Dims dims = {2, 3};
  const ArrayView<float> c(data.data(), Kind::kFloat32, dims, Layout::kC);
  EXPECT_DEATH(c(2, 0), "CheckIndex");
  EXPECT_DEATH(c(0, -1), "CheckIndex");
  EXPECT_DEATH(c(0), "CheckIndex");
  const ArrayView<float> f(data.data(), Kind::kFloat32, dims, Layout::kFortran);
  EXPECT_DEATH(f(0, 1), "CheckIndex");
  EXPECT_DEATH(f(2, 4), "CheckIndex");
  EXPECT_DEATH(f.at(Dims{1, 1, 1}), "CheckIndex");
}

TEST(ArrayViewDeathTest, WrongKindAsserts) {
  const std::vector<int64_t> data(2);
  const Dims dims = {2};
  EXPECT_DEATH(
      ArrayView<int64_t>(data.data(), Kind::kFloat64, dims, Layout::kC),
      "Accepts");
}
#endif  // NDEBUG

}  // namespace
}  // namespace shmheap
