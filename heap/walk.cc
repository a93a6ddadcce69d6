#include "heap/walk.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace shmheap::internal {

namespace {

uint64_t WordAt(const Segment& segment, uint64_t offset) {
  uint64_t word;
  std::memcpy(&word, segment.base() + offset, 8);
  return word;
}

// Whether some session entry records a claim starting at `pos`.
bool IsClaimStart(const Segment& segment, uint64_t pos) {
  const Header& h = segment.header();
  const SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    // Relaxed: no process allocates while we walk (see the REQUIRES).
    if (reg[i].claim_end.load(std::memory_order_relaxed) != 0 &&
        reg[i].claim_start.load(std::memory_order_relaxed) == pos) {
      return true;
    }
  }
  return false;
}

}  // namespace

uint64_t ClaimedGapEnd(const Segment& segment, uint64_t pos, uint64_t limit) {
  const Header& h = segment.header();
  const SessionEntry* reg = segment.registry();
  uint64_t best = 0;
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    // Relaxed: see IsClaimStart. The values may come from a file of unknown
    // origin, so each is bounds-checked before it is trusted.
    const uint64_t end = reg[i].claim_end.load(std::memory_order_relaxed);
    if (end == 0 || reg[i].claim_start.load(std::memory_order_relaxed) != pos ||
        end <= pos || end > limit || end % 8 != 0 || (best && end >= best)) {
      continue;
    }
    if (end == limit) {
      best = end;
      continue;
    }
    const uint64_t next = WordAt(segment, end);
    if ((next & kTagBit) || (next == 0 && IsClaimStart(segment, end))) {
      best = end;
    }
  }
  return best;
}

void CloseClaimedGaps(const Segment& segment, uint64_t top) {
  const Header& h = segment.header();
  SessionEntry* reg = segment.registry();
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    // Relaxed: the world is stopped.
    if (reg[i].claim_end.load(std::memory_order_relaxed) == 0) continue;
    const uint64_t start = reg[i].claim_start.load(std::memory_order_relaxed);
    if (start >= h.heap_start && start < top && start % 8 == 0 &&
        WordAt(segment, start) == 0) {
      if (const uint64_t end = ClaimedGapEnd(segment, start, top)) {
        const uint64_t filler = FillerWord(end - start);
        std::memcpy(segment.base() + start, &filler, 8);
      }
    }
  }
  for (uint32_t i = 0; i < h.max_sessions; ++i) {
    reg[i].claim_end.store(0, std::memory_order_relaxed);
  }
}

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
    // Aligned too: the walk resumes at `end`, and a header word read from an
    // unaligned position below top would straddle it (past the file's end,
    // a SIGBUS, when top is the end of a file).
    if (committed > end || end > top || committed < h.heap_start ||
        committed % 8 != 0 || end % 8 != 0) {
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
    uint64_t word = WordAt(segment, pos);
    if (word == 0) {
      if (const uint64_t end = ClaimedGapEnd(segment, pos, limit)) {
        if (!visit(pos, BlobHeader::Decode(FillerWord(end - pos)))) {
          return absl::OkStatus();
        }
        pos = end;
        continue;
      }
    }
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
