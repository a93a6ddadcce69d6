#include "hashtable/table.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shmheap::internal {

absl::StatusOr<uint64_t> Table::FindOrClaim(uint64_t hash,
                                            bool* claimed) const {
  *claimed = false;
  uint64_t i = hash & mask_;
  for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    uint64_t h = slots_[i].hash.load(std::memory_order_acquire);
    if (h == 0) {
      // acq_rel: claiming the slot; on failure, acquire the claimer's hash.
      if (slots_[i].hash.compare_exchange_strong(
              h, hash, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *claimed = true;
        return i;
      }
      // Someone claimed it first; h now holds their hash.
    }
    if (h == hash) return i;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "hash table full: all ", capacity(),
      " slots hold other keys (collect to clear tombstones, or create the "
      "heap with a larger table_slots_log2)"));
}

}  // namespace shmheap::internal
