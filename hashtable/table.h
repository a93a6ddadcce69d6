// Table: the lock-free open-addressing hash table inside a segment.
//
// 2^k slots of 16 bytes {hash, addr}, linear probing from hash & (2^k - 1).
// A slot's hash goes 0 -> h exactly once (by CAS) and is never cleared while
// processes are in scope (only the collector clears tombstones, with the
// world stopped). So every hash has at most one slot, and a probe for h meets
// h's slot before any empty slot: the probe may stop at the first empty
// slot. addr is 0 (absent: a tombstone, or an add between claim and publish)
// or the offset of a published blob.
//
// Memory ordering:
//  - hash: claimed with CAS (seq_cst, for WaitFor), read with acquire, so a
//  prober that
//    sees h also sees... nothing else: hash carries no payload; the blob is
//    published through addr.
//  - addr: published with CAS (seq_cst: release publishes the completely
//    written blob; acquire on failure reads the winner's blob; seq_cst for
//    WaitFor's pairing, hashtable/store.h), read with acquire, so a reader
//    that sees an offset sees the whole blob behind it.
//
// Concurrency contract (operations on the same key, from any processes; the
// protocol itself is hashtable/store.h):
//
//   | racing ops        | outcome                                          |
//   |-------------------|--------------------------------------------------|
//   | add / add         | one wins (returns true); the loser returns false |
//   |                   | and its blob becomes garbage                     |
//   | add_many / add,   | per item, as add / add; within one batch, of two |
//   |  add_many         | items with one key the earlier wins (the later   |
//   |                   | returns false, its blob is garbage)              |
//   | add / get         | get sees absent or the complete winner           |
//   | add / contains    | contains sees absent or present, never a torn or |
//   |                   | other key's slot (the tag rides in the same word)|
//   | get in a scope /  | the collection waits for the scope to end; a     |
//   |  collect          | borrowed ref stays valid until then              |
//   | contains outside  | a probe that overlaps a collection sees the      |
//   |  a scope / collect| epoch change and retries inside the scope        |
//   | any op / clear    | as with collect (clear stops the world the same  |
//   |                   | way, gc/clear.h): an op in a scope ends before   |
//   |                   | the clear or begins after it, and then sees every|
//   |                   | key absent; a write after it claims a new chunk  |
//   | remove / get      | get sees the complete old value or absent        |
//   | replace / get     | get sees the complete old or complete new value  |
//   | replace / replace | both succeed in some order; the last CAS wins;   |
//   |                   | each unlinked value is counted dead exactly once |
//   | remove / remove   | one removes (OK); the other returns kNotFound    |
//   | remove / replace  | serialised by the addr CAS: either order         |
//   | move / any writer | NOT SUPPORTED on the source key: a Move that     |
//   |                   | loses returns kAborted and may leave the value   |
//   |                   | under both keys (as hh_shared's move)            |
//   | fetch_add /       | each RMW is atomic (acq_rel on the payload): the |
//   |  fetch_add        | results are distinct and sum up; racing creators |
//   |                   | of an absent counter agree on one blob (add/add) |
//   | fetch_add /       | the add lands in the blob it found in its scope: |
//   |  replace, remove  | an unlinked counter's last adds are lost with it |
//   | fetch_add / get   | a view of the counter may see it change          |
//   | remove_many / any | as one remove per key, in one scope              |
//   | any / collect     | never: collection waits for every scope to end   |
//   | wait_for / any    | a waiter holds no scope while it sleeps: it      |
//   |  publish, collect | wakes on the publish (any path) that makes its   |
//   |                   | key present; collections run while it sleeps     |
//
// The dependency table (AddDep, GetDeps, RemoveDeps) has a contract of its
// own, in hashtable/deps.h.
//
// Operations on different keys never interfere, except through a full
// table (kResourceExhausted marked by IsTableFull, never an endless probe;
// the Heap layer then grows the table by a collection where one can run,
// gc/grow.h).
//
// A Table is one geometry (slots, mask). A collection may replace the
// segment's table by a larger one (gc/grow.h); a Table taken inside a scope
// stays valid for that scope, since no collection runs while any process
// is in scope (Segment::table).
//
// Thread safety: a Table is a view over shared slots; all methods may run
// concurrently from any thread of any process that has the segment mapped
// and is inside a session's scope.

#ifndef SHMHEAP_HASHTABLE_TABLE_H_
#define SHMHEAP_HASHTABLE_TABLE_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "heap/layout.h"

namespace shmheap::internal {

class Table {
 public:
  Table(Slot* slots, uint32_t slots_log2)
      : slots_(slots), mask_((uint64_t{1} << slots_log2) - 1) {}

  uint64_t capacity() const { return mask_ + 1; }

  // Hash 0 marks an empty slot; a key that hashes to 0 uses this instead.
  static constexpr uint64_t kZeroHashReplacement = 0x9e3779b97f4a7c15ULL;
  static constexpr uint64_t Remap(uint64_t hash) {
    return hash == 0 ? kZeroHashReplacement : hash;
  }

  // The slot holding `hash`, if any. REQUIRES: hash != 0. Inline: it is
  // every lookup's probe (hashtable/lookup.h).
  std::optional<uint64_t> Find(uint64_t hash) const noexcept {
    uint64_t i = hash & mask_;
    for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
      // Acquire: pairs with the claim CAS (no payload rides on it, but it
      // keeps the probe's view of the slot monotonic with the claimer's).
      const uint64_t h = slots_[i].hash.load(std::memory_order_acquire);
      if (h == hash) return i;
      if (h == 0) return std::nullopt;
    }
    return std::nullopt;
  }

  // The slot holding `hash`, claiming an empty one if there is none
  // (`*claimed` tells). kResourceExhausted (IsTableFull) when every slot
  // holds another hash. REQUIRES: hash != 0.
  absl::StatusOr<uint64_t> FindOrClaim(uint64_t hash, bool* claimed) const;

  // How far slot `index` lies from `hash`'s home slot (0: at home).
  uint64_t ProbeDistance(uint64_t hash, uint64_t index) const noexcept {
    return (index - (hash & mask_)) & mask_;
  }

  Slot& slot(uint64_t index) const { return slots_[index]; }
  uint64_t mask() const { return mask_; }

  // Starts loading the slot a probe for `hash` reads first.
  void Prefetch(uint64_t hash) const noexcept {
    __builtin_prefetch(&slots_[hash & mask_], /*rw=*/0, /*locality=*/3);
  }
  // The same, for a writer about to claim or publish into it (FindOrClaim,
  // CasAddr): the line is fetched for ownership, so the CAS does not pay a
  // second trip to upgrade a shared copy.
  void PrefetchForWrite(uint64_t hash) const noexcept {
    __builtin_prefetch(&slots_[hash & mask_], /*rw=*/1, /*locality=*/3);
  }

  // Acquire: a reader that sees a blob offset sees the blob's contents.
  uint64_t LoadAddr(uint64_t index) const {
    return slots_[index].addr.load(std::memory_order_acquire);
  }
  // seq_cst (acq_rel and more): release publishes the blob written before;
  // acquire (also on failure, which refreshes `expected`) lets the caller
  // read the blob that won; and a publishing CAS is the publisher's half of
  // WaitFor's Dekker pairing (hashtable/store.h, "Waiting"), which needs it
  // in the single total order. A locked cmpxchg on x86 either way.
  bool CasAddr(uint64_t index, uint64_t& expected, uint64_t desired) const {
    return slots_[index].addr.compare_exchange_strong(
        expected, desired, std::memory_order_seq_cst,
        std::memory_order_acquire);
  }

 private:
  Slot* slots_;
  uint64_t mask_;
};

// Whether `status` is FindOrClaim's full table (a payload marks it, so that
// the layers above can tell it from a full heap, which is also
// kResourceExhausted).
bool IsTableFull(const absl::Status& status);
// kResourceExhausted with `message`, marked for IsTableFull.
absl::Status TableFullError(std::string_view message);

}  // namespace shmheap::internal

#endif  // SHMHEAP_HASHTABLE_TABLE_H_
