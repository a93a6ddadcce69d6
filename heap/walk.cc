#include "heap/walk.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace shmheap::internal {

absl::Status WalkHeap(const Segment& segment,
                      absl::FunctionRef<bool(uint64_t, BlobHeader)> visit) {
  const Header& h = segment.header();
  // Acquire on top and on each committed: pairs with the release stores of
  // the allocator, so every record header below them is visible.
  const uint64_t top = h.top.load(std::memory_order_acquire);
  if (top < h.heap_start || top > h.heap_limit || top % 8) {
    return absl::DataLossError(absl::StrCat(segment.Describe(), ": heap top ",
                                            top, " outside the heap"));
  }
  // Open chunk tails, sorted by start.
  std::vector<std::pair<uint64_t, uint64_t>> tails;
  const SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    const uint64_t end = reg[i].chunk_end.load(std::memory_order_acquire);
    const uint64_t committed = reg[i].committed.load(std::memory_order_acquire);
    if (end == 0) continue;
    if (committed > end || end > top || committed < h.heap_start) {
      return absl::DataLossError(absl::StrCat(segment.Describe(), ": session ",
                                              i, " has chunk tail [", committed,
                                              ", ", end, ") outside the heap"));
    }
    if (committed < end) tails.emplace_back(committed, end);
  }
  std::sort(tails.begin(), tails.end());
  size_t next_tail = 0;
  uint64_t pos = h.heap_start;
  while (pos < top) {
    if (next_tail < tails.size() && tails[next_tail].first == pos) {
      pos = tails[next_tail++].second;
      continue;
    }
    const uint64_t limit =
        next_tail < tails.size() ? tails[next_tail].first : top;
    if (limit < pos) {
      return absl::DataLossError(
          absl::StrCat(segment.Describe(), ": record at ", pos,
                       " overlaps an open chunk tail starting at ", limit));
    }
    uint64_t word;
    std::memcpy(&word, segment.base() + pos, 8);
    if ((word & kTagBit) == 0) {
      return absl::DataLossError(absl::StrCat(
          segment.Describe(), ": no record header at offset ", pos));
    }
    const BlobHeader b = BlobHeader::Decode(word);
    if (b.size_words == 0 || b.size_words > (limit - pos) / 8) {
      return absl::DataLossError(
          absl::StrCat(segment.Describe(), ": record at ", pos, " of ",
                       b.size_bytes(), " bytes runs past ", limit));
    }
    if (!b.is_filler() &&
        (!IsValidKind(b.kind) || b.ndims > kMaxDims || b.align_code == 2)) {
      return absl::DataLossError(absl::StrCat(
          segment.Describe(), ": record at ", pos, " has kind ", b.kind,
          ", ndims ", b.ndims, ", alignment code ", b.align_code));
    }
    if (!visit(pos, b)) return absl::OkStatus();
    pos += b.size_bytes();
  }
  return absl::OkStatus();
}

}  // namespace shmheap::internal
