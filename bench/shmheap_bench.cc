// shmheap on the table workloads of bench/harness.h, in two variants:
//
//   shmheap           string keys; each worker holds a Pin around every batch
//                     of kBatch operations (Heap::Enter), the documented fast
//                     path for steady state: further scope entries touch
//                     only a process-local counter.
//   shmheap_unpinned  string keys, no Pin: every operation enters and leaves
//                     the process's scope itself (a process mutex, a seq_cst
//                     store and two loads of the gc epoch), which is what a
//                     caller who never heard of Pin gets.
//   shmheap_addmany   the add workload only, as shmheap, but each batch of
//                     kBatch keys is one Heap::AddMany call; every item's
//                     result is checked (each must publish).
//
// Workers are forked processes that inherit the heap (an anonymous memfd
// heap, the Hack/Flow model); each joins as its own session before the
// timed part.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "bench/harness.h"
#include "shmheap.h"

namespace shmheap::bench {
namespace {

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "shmheap_bench: %s\n", status.ToString().c_str());
  std::abort();
}

// No scope object: every operation enters the scope itself.
struct NoScope {};

template <bool kPinned, bool kBatched = false>
class ShmheapStore {
 public:
  static constexpr Mode kMode = Mode::kProcesses;

  explicit ShmheapStore(const Spec& spec) : dims_{spec.floats} {
    Options options;
    // Reserved, not committed (MAP_NORESERVE): room for the largest fill
    // (58,982 values of 4 KiB) and the mix's rounds between collections.
    options.heap_bytes = uint64_t{2} << 30;
    options.table_slots_log2 = kSlotsLog2;
    absl::StatusOr<Heap> heap = Heap::Create(options);
    if (!heap.ok()) Die(heap.status());
    heap_.emplace(*std::move(heap));
  }

  void Attach(int) {
    // Join this process's session now, not inside the timed part.
    absl::StatusOr<Pin> pin = heap_->Enter();
    if (!pin.ok()) Die(pin.status());
  }
  void Detach() {}

  auto Scope() const {
    if constexpr (kPinned) {
      absl::StatusOr<Pin> pin = heap_->Enter();
      if (!pin.ok()) Die(pin.status());
      return *std::move(pin);
    } else {
      return NoScope{};
    }
  }

  bool Add(uint64_t id, std::span<const float> value) {
    absl::StatusOr<bool> added =
        heap_->Add<float>(Key(id), value, std::span<const int64_t>(dims_, 1));
    if (!added.ok()) Die(added.status());
    return *added;
  }

  // The batched add (harness.h, RunAdds): keys [first, last) in one
  // AddMany. Returns how many did not publish.
  uint64_t AddBatch(uint64_t first, uint64_t last,
                    BatchValues& values) requires kBatched {
    const int n = static_cast<int>(last - first);
    for (int i = 0; i < n; ++i) {
      items_[i] = AddItem::Of<float>(Key(first + i), values.For(i, first + i),
                                     std::span<const int64_t>(dims_, 1));
    }
    absl::StatusOr<size_t> added =
        heap_->AddMany(std::span<const AddItem>(items_, n),
                       std::span<absl::StatusOr<bool>>(results_, n));
    if (!added.ok()) Die(added.status());
    uint64_t bad = 0;
    for (int i = 0; i < n; ++i) {
      if (!results_[i].ok()) Die(results_[i].status());
      bad += !*results_[i];
    }
    return bad + (*added != uint64_t(n) - bad);
  }

  bool Get(uint64_t id, float* first) const {
    absl::StatusOr<ArrayView<float>> view = heap_->Get<float>(Key(id));
    if (!view.ok()) {
      if (absl::IsNotFound(view.status())) return false;
      Die(view.status());
    }
    *first = view->data()[0];
    return true;
  }

  bool Remove(uint64_t id) { return heap_->Remove(Key(id)).ok(); }

  void AfterMeasurement(const Spec& spec) {
    // The mix left its removed values dead in the heap: collect them so the
    // next measurement starts from the same heap (untimed).
    if (spec.op != Op::kMix) return;
    absl::StatusOr<GcReport> report = heap_->Collect();
    if (!report.ok()) Die(report.status());
  }

 private:
  static std::string_view Key(uint64_t id) { return Keys::Get().str(id); }

  std::optional<Heap> heap_;
  int64_t dims_[1];
  // AddBatch's arrays, reused across batches.
  AddItem items_[kBatch];
  absl::StatusOr<bool> results_[kBatch];
};

// Operations per measurement (all workers together).
constexpr OpCounts kCounts = {.gets = 250'000, .mix = 130'000, .add_rounds = 1};

void RegisterAll() {
  RegisterTable<ShmheapStore<true>>("shmheap", kCounts,
                                    [](const Spec&) { return true; });
  // Adds in batches of kBatch through one AddMany each.
  RegisterTable<ShmheapStore<true, true>>(
      "shmheap_addmany", kCounts,
      [](const Spec& s) { return s.op == Op::kAdd; });
  // What a caller who never takes a Pin sees, at 1 and 4 processes.
  RegisterTable<ShmheapStore<false>>(
      "shmheap_unpinned", kCounts,
      [](const Spec& s) { return s.workers == 1 || s.workers == 4; });
}

}  // namespace
}  // namespace shmheap::bench

int main(int argc, char** argv) {
  return shmheap::bench::BenchmarkMain(argc, argv, shmheap::bench::RegisterAll);
}
