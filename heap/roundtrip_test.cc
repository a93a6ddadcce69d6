// Every kind x both layouts x ndims 0, 1, 2, 3 and 16 round-trips through a
// heap: what Get returns has the same kind, layout, dims and bytes as what
// Add stored, reads in place (the elements lie inside the mapping), and its
// Sub and Slice views equal the same views taken of the original array.

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "heap/segment.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tests/kinds.h"

namespace shmheap {
namespace {

using testing::kAllKinds;
using testing::TestBytes;
using testing::VisitKind;

std::vector<std::vector<int64_t>> DimsCases() {
  std::vector<int64_t> sixteen(16, 1);
  sixteen[0] = 2;
  sixteen[7] = 3;
  sixteen[15] = 2;
  return {{}, {5}, {3, 4}, {2, 3, 4}, sixteen, {0, 3}, {4, 0}};
}

template <class T>
void ExpectSameElements(const ArrayView<T>& got, const ArrayView<T>& want,
                        const std::string& what) {
  ASSERT_EQ(got.ndims(), want.ndims()) << what;
  for (int i = 0; i < got.ndims(); ++i)
    ASSERT_EQ(got.dim(i), want.dim(i)) << what;
  ASSERT_EQ(got.size(), want.size()) << what;
  for (int64_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got.flat()[i] == want.flat()[i]) << what << " element " << i;
  }
}

TEST(RoundTrip, EveryKindLayoutAndRank) {
  Options options;
  options.heap_bytes = 64 << 20;
  options.table_slots_log2 = 10;
  absl::StatusOr<Heap> heap = Heap::Create(options);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::byte* lo = heap->segment().base();
  const std::byte* hi = lo + heap->segment().size();
  int n = 0;
  for (Kind kind : kAllKinds) {
    for (Layout layout : {Layout::kC, Layout::kFortran}) {
      for (const std::vector<int64_t>& dims : DimsCases()) {
        const std::string key = absl::StrCat("k", n++);
        int64_t count = 1;
        for (int64_t d : dims) count *= d;
        const std::vector<std::byte> bytes = TestBytes(kind, count, n);
        absl::StatusOr<bool> added =
            heap->AddRaw(key, kind, dims, layout, bytes);
        ASSERT_TRUE(added.ok()) << added.status();
        ASSERT_TRUE(*added);
        absl::StatusOr<RawView> raw = heap->GetRaw(key);
        ASSERT_TRUE(raw.ok()) << raw.status();
        const std::string what = absl::StrCat(internal::Sv(KindName(kind)), " ",
                                              internal::Sv(LayoutName(layout)),
                                              " ndims ", dims.size());
        EXPECT_EQ(raw->kind(), kind) << what;
        EXPECT_EQ(raw->layout(), layout) << what;
        ASSERT_EQ(raw->ndims(), static_cast<int>(dims.size())) << what;
        for (size_t i = 0; i < dims.size(); ++i)
          EXPECT_EQ(raw->dim(i), dims[i]);
        ASSERT_EQ(raw->bytes().size(), bytes.size()) << what;
        if (!bytes.empty()) {
          EXPECT_EQ(
              0, std::memcmp(raw->bytes().data(), bytes.data(), bytes.size()))
              << what;
        }
        EXPECT_TRUE(raw->pinned());
        if (count > 0) {
          // Zero copy: the view points into the shared mapping.
          EXPECT_GE(raw->bytes().data(), lo);
          EXPECT_LT(raw->bytes().data(), hi);
        }
        VisitKind(kind, [&](auto zero) {
          using T = decltype(zero);
          absl::StatusOr<ArrayView<T>> got = raw->As<T>();
          ASSERT_TRUE(got.ok()) << got.status();
          EXPECT_EQ(reinterpret_cast<uintptr_t>(got->data()) % alignof(T), 0u)
              << what;
          const ArrayView<T> want(reinterpret_cast<const T*>(bytes.data()),
                                  kind, dims, layout);
          ExpectSameElements(*got, want, what);
          // The typed Get agrees with GetRaw.
          absl::StatusOr<ArrayView<T>> typed = heap->Get<T>(key);
          ASSERT_TRUE(typed.ok()) << typed.status();
          EXPECT_EQ(typed->data(), got->data());
          if (dims.empty()) return;
          // Sub over the first (C) or last (Fortran) dimension.
          const int64_t d = layout == Layout::kC ? dims.front() : dims.back();
          const int64_t base = layout == Layout::kC ? 0 : 1;
          if (d >= 2) {
            auto s1 = got->Sub(base + 1, d - 1);
            auto s2 = want.Sub(base + 1, d - 1);
            ASSERT_TRUE(s1.ok() && s2.ok()) << what;
            EXPECT_TRUE(s1->pinned());
            ExpectSameElements(*s1, *s2, what + " sub");
          }
          // Slice fixing one index.
          if (d >= 1) {
            const int64_t idx[] = {base + d - 1};
            auto s1 = got->Slice(idx);
            auto s2 = want.Slice(idx);
            ASSERT_TRUE(s1.ok() && s2.ok()) << what;
            ExpectSameElements(*s1, *s2, what + " slice");
          }
        });
      }
    }
  }
}

TEST(RoundTrip, KindMismatchAndInvalidInput) {
  Options options;
  options.heap_bytes = 16 << 20;
  options.table_slots_log2 = 6;
  absl::StatusOr<Heap> heap = Heap::Create(options);
  ASSERT_TRUE(heap.ok()) << heap.status();
  const std::vector<int64_t> v = {1, 2, 3};
  const int64_t dims[] = {3};
  ASSERT_TRUE(*heap->Add<int64_t>("ints", v, dims));
  EXPECT_EQ(heap->Get<double>("ints").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap->Get<int32_t>("ints").status().code(),
            absl::StatusCode::kInvalidArgument);
  // int64_t reads kInt and kNativeint too.
  const std::vector<std::byte> b = testing::TestBytes(Kind::kInt, 3, 1);
  ASSERT_TRUE(*heap->AddRaw("native", Kind::kNativeint, dims, Layout::kC, b));
  EXPECT_TRUE(heap->Get<int64_t>("native").ok());
  // Data size that does not match dims.
  const int64_t wrong[] = {4};
  EXPECT_EQ(heap->Add<int64_t>("bad", v, wrong).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Input is validated before the write-once check: an existing key does
  // not turn bad input into a quiet "false".
  EXPECT_EQ(heap->Add<int64_t>("ints", v, wrong).status().code(),
            absl::StatusCode::kInvalidArgument);
  const int64_t negative[] = {-1};
  EXPECT_EQ(heap->Add<int64_t>("bad", v, negative).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<int64_t> seventeen(17, 1);
  EXPECT_EQ(
      heap->Add<int64_t>("bad", std::span<const int64_t>(v).first(1), seventeen)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap->AddRaw("bad", static_cast<Kind>(13), dims, Layout::kC, b)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(heap->AddRaw("bad", Kind::kInt, dims, static_cast<Layout>(2), b)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const int64_t huge[] = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_EQ(
      heap->ReserveRaw("bad", Kind::kFloat64, huge, Layout::kC).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(heap->Contains("bad"));
}

}  // namespace
}  // namespace shmheap
