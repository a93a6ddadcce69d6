// sample_writer NAME [--remove-scratch]: attaches to the named heap NAME,
// publishes the arrays of tools/sample_arrays.h and, with --remove-scratch,
// removes the two scratch arrays again, leaving their bytes dead for the
// collector. The README's CLI examples use it as "some program that writes
// the heap".

#include <cstdio>
#include <cstring>

#include "heap/segment.h"
#include "shmheap.h"
#include "tools/sample_arrays.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 ||
      (argc == 3 && std::strcmp(argv[2], "--remove-scratch") != 0)) {
    std::fprintf(stderr, "usage: sample_writer NAME [--remove-scratch]\n");
    return 2;
  }
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::OpenNamed(argv[1]);
  absl::Status s = heap.ok() ? shmheap::tools::testing::WriteSampleArrays(*heap)
                             : heap.status();
  if (s.ok() && argc == 3) {
    s = heap->Remove("scratch:0");
    if (s.ok()) s = heap->Remove("scratch:1");
  }
  if (!s.ok()) {
    std::fprintf(stderr, "sample_writer: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  std::printf("sample_writer: published %d arrays in %s%s\n",
              shmheap::tools::testing::kSampleArrays,
              heap->segment().Describe().c_str(),
              argc == 3 ? ", removed scratch:0 and scratch:1" : "");
  return 0;
}
