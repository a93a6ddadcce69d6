#include "hashtable/table.h"

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace shmheap::internal {
namespace {
constexpr char kTableFullPayload[] = "shmheap/table-full";
}  // namespace

absl::Status TableFullError(std::string_view message) {
  absl::Status full = absl::ResourceExhaustedError(
      absl::string_view(message.data(), message.size()));
  full.SetPayload(kTableFullPayload, absl::Cord("1"));
  return full;
}

bool IsTableFull(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         status.GetPayload(kTableFullPayload).has_value();
}

absl::StatusOr<uint64_t> Table::FindOrClaim(uint64_t hash,
                                            bool* claimed) const {
  *claimed = false;
  uint64_t i = hash & mask_;
  for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    uint64_t h = slots_[i].hash.load(std::memory_order_acquire);
    if (h == 0) {
      // seq_cst (acq_rel and more): claiming the slot; on failure, acquire
      // the claimer's hash. seq_cst because a waiter whose probe stops at
      // this slot reads its hash, not its addr: the claim is then the
      // publisher's write that WaitFor's pairing needs in the single total
      // order (hashtable/store.h, "Waiting"). A locked cmpxchg on x86
      // either way.
      if (slots_[i].hash.compare_exchange_strong(
              h, hash, std::memory_order_seq_cst, std::memory_order_acquire)) {
        *claimed = true;
        return i;
      }
      // Someone claimed it first; h now holds their hash.
    }
    if (h == hash) return i;
  }
  return TableFullError(
      absl::StrCat("hash table full: all ", capacity(),
                   " slots hold other keys (a collection clears tombstones "
                   "and grows the table up to max_table_slots_log2)"));
}

}  // namespace shmheap::internal
