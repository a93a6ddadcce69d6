// Debian builds Abseil with ABSL_OPTION_USE_STD_STRING_VIEW 0, so
// absl::string_view is a class of its own that std::string_view does not
// convert to. StrCat and Status messages go through this adapter.

#ifndef SHMHEAP_HEAP_STRINGS_H_
#define SHMHEAP_HEAP_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace shmheap::internal {

inline absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace shmheap::internal

#endif  // SHMHEAP_HEAP_STRINGS_H_
