// A separate program (started by fork + exec, so it shares nothing with its
// parent but the heap's name) that attaches to a named heap and checks the
// arrays of every kind that the parent wrote: key "kind:<name>:<layout>",
// dims {3, 5}, contents TestBytes(kind, 15, seed = kind * 2 + layout).
// Exit status: 0 when every array matches, else the number of mismatches.
// It then publishes "helper:ack" so the parent sees that it wrote too.

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "heap/strings.h"
#include "shmheap.h"
#include "tests/kinds.h"

int main(int argc, char** argv) {
  using namespace shmheap;
  if (argc != 2) {
    std::fprintf(stderr, "usage: attach_helper HEAP_NAME\n");
    return 100;
  }
  absl::StatusOr<Heap> heap = Heap::OpenNamed(argv[1]);
  if (!heap.ok()) {
    std::fprintf(stderr, "attach_helper: %s\n",
                 heap.status().ToString().c_str());
    return 101;
  }
  int bad = 0;
  for (Kind kind : testing::kAllKinds) {
    for (Layout layout : {Layout::kC, Layout::kFortran}) {
      const std::string key =
          absl::StrCat("kind:", internal::Sv(KindName(kind)), ":",
                       internal::Sv(LayoutName(layout)));
      const std::vector<std::byte> want = testing::TestBytes(
          kind, 15, static_cast<uint64_t>(kind) * 2 + static_cast<int>(layout));
      absl::StatusOr<RawView> got = heap->GetRaw(key);
      if (!got.ok() || got->kind() != kind || got->layout() != layout ||
          got->ndims() != 2 || got->dim(0) != 3 || got->dim(1) != 5 ||
          got->bytes().size() != want.size() ||
          std::memcmp(got->bytes().data(), want.data(), want.size()) != 0) {
        std::fprintf(stderr, "attach_helper: mismatch at %s\n", key.c_str());
        ++bad;
      }
    }
  }
  const int64_t ack[] = {bad};
  const int64_t dims[] = {1};
  if (!heap->Add<int64_t>("helper:ack", ack, dims).ok()) ++bad;
  return bad;
}
