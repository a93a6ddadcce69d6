#include "hashtable/deps.h"

#include <xxhash.h>

#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "heap/testing_hooks.h"

namespace shmheap::internal {

absl::Status CheckDepId(const char* what, uint32_t id) {
  if (id < kDepIdLimit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "dependency ", what, " ", id, " out of range: keys and values are below ",
      kDepIdLimit, " (2^31)"));
}

absl::StatusOr<DepTable> DepTable::Of(const Segment& segment) {
  const Header& h = segment.header();
  // Plain fields: written by the creator before the segment was visible,
  // checked by attach (CheckHeaderGeometry) to lie inside it.
  if (h.dep_slots_log2 == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(segment.Describe(),
                     ": heap has no dependency table (dep_table_slots_log2 = "
                     "0)"));
  }
  return DepTable(
      segment,
      reinterpret_cast<std::atomic<uint64_t>*>(segment.base() + h.dep_offset),
      h.dep_slots_log2);
}

uint64_t DepTable::Home(uint32_t key) const {
  return XXH3_64bits_withSeed(&key, sizeof key, seed_) & mask_;
}

absl::StatusOr<bool> DepTable::Add(uint32_t key, uint32_t value) const {
  const uint64_t edge = DepWord(key, value);
  uint64_t i = Home(key);
  for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    // Acquire: an edge read here may be the one this call is about to add,
    // published by another process (see the header, "Memory ordering").
    uint64_t word = slots_[i].load(std::memory_order_acquire);
    if (word == 0) {
      RunTestingHook(TestingPoint::kDepEmptySeen);
      // acq_rel: release publishes what this process wrote before the edge;
      // acquire on failure reads the winner's edge, compared below.
      if (slots_[i].compare_exchange_strong(word, edge,
                                            std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
        RunTestingHook(TestingPoint::kDepClaimed);
        return true;
      }
      // Lost: `word` is the winner's edge, never 0 again until a reset.
    }
    if (word == edge) return false;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      segment_->Describe(), ": dependency table full: ", capacity(),
      " slots (dep_table_slots_log2 = ", segment_->header().dep_slots_log2,
      "; removed edges keep their slots until the table is reset)"));
}

void DepTable::Get(uint32_t key, std::vector<uint32_t>* out) const {
  uint64_t i = Home(key);
  for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    // Acquire: pairs with the claim CAS of the adder (header, "Memory
    // ordering").
    const uint64_t word = slots_[i].load(std::memory_order_acquire);
    if (word == 0) return;
    if ((word & kDepRemoved) == 0 && DepKey(word) == key) {
      out->push_back(DepValue(word));
    }
  }
}

size_t DepTable::Remove(uint32_t key) const {
  size_t removed = 0;
  uint64_t i = Home(key);
  for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    // Acquire: as Get.
    uint64_t word = slots_[i].load(std::memory_order_acquire);
    if (word == 0) break;
    // A lost CAS reloads `word`: only this bit ever changes in a non-empty
    // slot, so the retry ends when either call has set it.
    while ((word & kDepRemoved) == 0 && DepKey(word) == key) {
      // acq_rel: as the claim (the removal is ordered after what this
      // process did before it, for a reader that sees it).
      if (slots_[i].compare_exchange_weak(word, word | kDepRemoved,
                                          std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
        ++removed;
        break;
      }
    }
  }
  return removed;
}

DepTable::Counts DepTable::Count() const {
  Counts c;
  for (uint64_t i = 0; i <= mask_; ++i) {
    // Relaxed: statistics; no data is read through the word.
    const uint64_t word = slots_[i].load(std::memory_order_relaxed);
    c.used += word != 0;
    c.removed += (word & kDepRemoved) != 0;
  }
  return c;
}

absl::Status DepTable::Check() const {
  const uint64_t table_offset = segment_->header().dep_offset;
  auto bad = [&](uint64_t i, absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat(segment_->Describe(), ": offset ", table_offset + i * 8,
                     ": dependency slot ", i, " ", what));
  };
  // Relaxed loads throughout: Verify runs while no process writes, and the
  // words are only compared.
  auto load = [&](uint64_t i) {
    return slots_[i].load(std::memory_order_relaxed);
  };
  // Start the scan just after an empty slot, so that the start of each run
  // is known when its entries are reached. A table with no empty slot is
  // one run around the whole table: every edge is reachable.
  uint64_t first_empty = capacity();
  for (uint64_t i = 0; i <= mask_ && first_empty == capacity(); ++i) {
    if (load(i) == 0) first_empty = i;
  }
  const bool full = first_empty == capacity();
  uint64_t run_start = full ? 0 : (first_empty + 1) & mask_;
  // Live edge -> the slot that holds it.
  std::unordered_map<uint64_t, uint64_t> live;
  for (uint64_t n = 1; n <= capacity(); ++n) {
    const uint64_t i = full ? n - 1 : (first_empty + n) & mask_;
    const uint64_t word = load(i);
    if (word == 0) {
      run_start = (i + 1) & mask_;
      continue;
    }
    if ((word & kDepOccupied) == 0) {
      return bad(
          i, absl::StrFormat("holds %#x without the occupied bit 63", word));
    }
    const uint32_t key = DepKey(word);
    const uint64_t home = Home(key);
    if (!full && ((i - home) & mask_) > ((i - run_start) & mask_)) {
      return bad(i, absl::StrCat("(key ", key, ", home slot ", home,
                                 ") unreachable: empty slot ",
                                 (run_start - 1) & mask_, " before it"));
    }
    if (word & kDepRemoved) continue;
    const auto [it, inserted] = live.try_emplace(word, i);
    if (!inserted) {
      return bad(i, absl::StrCat("duplicates the live edge (", key, ", ",
                                 DepValue(word), ") of slot ", it->second));
    }
  }
  return absl::OkStatus();
}

void ResetDepTable(const Segment& segment) {
  absl::StatusOr<DepTable> table = DepTable::Of(segment);
  if (!table.ok()) return;
  auto* slots = reinterpret_cast<std::atomic<uint64_t>*>(
      segment.base() + segment.header().dep_offset);
  for (uint64_t i = 0; i < table->capacity(); ++i) {
    // Relaxed: the world is stopped; the scope handshake that reopens it
    // orders these stores before every later Add and Get.
    slots[i].store(0, std::memory_order_relaxed);
  }
}

}  // namespace shmheap::internal
