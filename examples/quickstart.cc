#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "shmheap.h"

int main() {
  shmheap::Options options;
  options.heap_bytes = 256 << 20;  // reserved, not committed
  absl::StatusOr<shmheap::Heap> heap = shmheap::Heap::Create(options);
  if (!heap.ok()) return 1;
  for (int w = 0; w < 4; ++w) {
    if (fork() == 0) {  // each worker publishes its results
      std::vector<float> v(1000, float(w));
      const int64_t dims[] = {10, 100};
      (void)heap->Add<float>("result:" + std::to_string(w), v, dims);
      _exit(0);
    }
  }
  while (wait(nullptr) > 0) {
  }
  for (int w = 0; w < 4; ++w) {  // read in place: no copy, no parsing
    auto r = heap->Get<float>("result:" + std::to_string(w));
    if (!r.ok()) return 1;
    std::printf("worker %d: %ldx%ld, r(9, 99) = %g\n", w, r->dim(0), r->dim(1),
                (*r)(9, 99));
  }
}
