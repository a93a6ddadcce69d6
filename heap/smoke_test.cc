#include <xxhash.h>
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
TEST(Smoke, Links) {
  absl::StatusOr<int> s = absl::NotFoundError(absl::StrCat("x", 1));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(XXH3_64bits_withSeed("a", 1, 3), 0u);
}
