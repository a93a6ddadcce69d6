// Lookup: the read path of the store, inline.
//
// A lookup is hash -> probe -> tag check -> (Find only) key compare ->
// borrowed ref. Every step is in this header so that a ReadScope's lookup
// compiles into its caller: the probe of one key is a few dozen
// instructions with no call, so the out-of-order core keeps several keys'
// cache misses in flight, as it does for a bare table. (Out of line, the
// same steps took 4x the bare table's time per lookup on a 2^20-slot table:
// README, "Issue 11 results".)
//
// A Lookup is a copy of the five facts a read needs (slots, mask, segment
// base, seed, keep_keys): a ReadScope takes one when it begins, so its
// lookups read no Store or Segment field. The Store uses the same Lookup for
// its own reads and for its writes' key resolution: one definition of how a
// key hashes, tags and matches.
//
// Key resolution. A key resolves to
//   hash  the 64-bit table hash: the low half of XXH3-128 of the bytes with
//         the heap's seed, or the caller's HashedKey::hash; never 0;
//   tag   16 bits of the high half of XXH3-128 of the bytes (never 0), or 0
//         when the key is not stored (keep_keys off, or a HashedKey without
//         bytes): it travels in the slot's addr word (heap/layout.h).
// hashtable/store.h gives the collision argument.
//
// Memory ordering: slot words are read with acquire (Table::Find,
// Table::LoadAddr): a reader that sees a blob's offset sees the blob. Blob
// words are plain reads: a published blob never changes while any process
// is in scope (heap/blob.h).
//
// Thread safety: a Lookup is immutable; any thread may use it.
// REQUIRES for every read here: the calling process is in scope (a Pin of
// the same heap is held) while the lookup runs and its refs are used.

#ifndef SHMHEAP_HASHTABLE_LOOKUP_H_
#define SHMHEAP_HASHTABLE_LOOKUP_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

// Inline XXH3 (the header-only form): hashing is on every lookup's path.
// xxhash.h allows this form next to the linked one in the same program.
#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include "hashtable/key.h"
#include "hashtable/table.h"
#include "heap/array_ref.h"
#include "heap/blob.h"
#include "heap/layout.h"

namespace shmheap::internal {

// A key after hashing.
struct ResolvedKey {
  uint64_t hash = 0;  // never 0 (Table::Remap)
  uint16_t tag = 0;   // 0: none (the key is not stored)
  std::string_view bytes;
  bool has_key = false;  // store and compare `bytes`
  // `hash` is this heap's hash of `bytes` (not a caller's HashedKey::hash),
  // so Verify can recompute it from the stored key.
  bool key_hashed = false;
};

class Lookup {
 public:
  Lookup(Slot* slots, uint32_t slots_log2, const std::byte* base, uint64_t seed,
         bool keep_keys) noexcept
      : table_(slots, slots_log2),
        base_(base),
        seed_(seed),
        keep_keys_(keep_keys) {}

  const Table& table() const noexcept { return table_; }
  const std::byte* base() const noexcept { return base_; }
  bool keep_keys() const noexcept { return keep_keys_; }

  ResolvedKey Resolve(const Key& key) const noexcept {
    ResolvedKey r;
    r.bytes = key.bytes();
    r.has_key = keep_keys_ && (!key.hashed() || !r.bytes.empty());
    if (!key.hashed() || r.has_key) {
      const XXH128_hash_t h = Hash128(r.bytes);
      r.hash = key.hashed() ? key.hash() : h.low64;
      if (r.has_key) r.tag = TagOf(h.high64);
      r.key_hashed = r.has_key && !key.hashed();
    } else {
      r.hash = key.hash();
    }
    r.hash = Table::Remap(r.hash);
    return r;
  }
  // Resolve for Find (and every get): a HashedKey whose bytes are kept is
  // not hashed again for its tag (tag 0: every slot's tag admits it), since
  // Find compares the stored key in full anyway. Contains and the writers
  // need the tag and use Resolve.
  ResolvedKey ResolveForFind(const Key& key) const noexcept {
    if (!key.hashed() || !keep_keys_ || key.bytes().empty()) {
      return Resolve(key);
    }
    ResolvedKey r;
    r.bytes = key.bytes();
    r.has_key = true;
    r.hash = Table::Remap(key.hash());
    return r;
  }
  // The tag of stored key bytes (never 0).
  uint16_t KeyTag(std::string_view bytes) const noexcept {
    return TagOf(Hash128(bytes).high64);
  }
  // The table hash Resolve gives `bytes` as a key (remapped, never 0).
  uint64_t KeyHash(std::string_view bytes) const noexcept {
    return Table::Remap(Hash128(bytes).low64);
  }

  // Whether a slot's addr word may hold `key`'s value, by its tag alone.
  static bool TagMatches(uint64_t word, const ResolvedKey& key) noexcept {
    const uint16_t tag = AddrTag(word);
    return key.tag == 0 || tag == 0 || tag == key.tag;
  }
  // The addr word of `key`'s slot when it holds a value whose tag admits
  // the key; 0 otherwise (absent, a tombstone, or another key's tag).
  uint64_t FindWord(const ResolvedKey& key) const noexcept {
    const std::optional<uint64_t> i = table_.Find(key.hash);
    if (!i) return 0;
    const uint64_t word = table_.LoadAddr(*i);
    return word != 0 && TagMatches(word, key) ? word : 0;
  }
  // Whether the blob at `offset` may be `key`'s: the stored key equals it,
  // or one of the two has no key to compare.
  bool Matches(uint64_t offset, const ResolvedKey& key) const noexcept {
    if (!key.has_key) return true;
    const BlobRef b(base_ + offset);
    return !b.header().has_key || SameBytes(b.key(), key.bytes);
  }
  // The borrowed ref of the blob at `offset`.
  RawRef Ref(uint64_t offset) const noexcept {
    const BlobRef b(base_ + offset);
    const BlobHeader h = b.header();
    return RawRef(b.payload(), b.dims().data(), h.ndims,
                  static_cast<Kind>(h.kind), h.layout);
  }

  // a == b. Keys of up to 16 bytes compare inline, in two overlapping
  // 8-byte (or 4-byte) loads from each side: a memcmp call costs more
  // instructions than the whole probe, which keeps lookups from
  // overlapping (see the top).
  [[gnu::always_inline]] static bool SameBytes(std::string_view a,
                                               std::string_view b) noexcept {
    const size_t n = a.size();
    if (n != b.size()) return false;
    if (n > 16) return std::memcmp(a.data(), b.data(), n) == 0;
    auto load = [](const char* p, size_t width) {
      uint64_t w = 0;
      std::memcpy(&w, p, width);
      return w;
    };
    if (n >= 8) {
      return (load(a.data(), 8) ^ load(b.data(), 8)) == 0 &&
             (load(a.data() + n - 8, 8) ^ load(b.data() + n - 8, 8)) == 0;
    }
    if (n >= 4) {
      return load(a.data(), 4) == load(b.data(), 4) &&
             load(a.data() + n - 4, 4) == load(b.data() + n - 4, 4);
    }
    for (size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

  // The value of `key`, or nullopt (absent, or a different key with the
  // same 64-bit hash). Allocates nothing. `key` comes from Resolve or
  // ResolveForFind.
  std::optional<RawRef> Find(const ResolvedKey& key) const noexcept {
    const uint64_t word = FindWord(key);
    if (word == 0) return std::nullopt;
    // A small blob spans two or three cache lines (header, dims and key,
    // then the payload): start the second line's miss now, so that it
    // overlaps the first one's instead of following the key check.
    __builtin_prefetch(base_ + AddrOffset(word) + 64, /*rw=*/0, /*locality=*/3);
    if (!Matches(AddrOffset(word), key)) return std::nullopt;
    return Ref(AddrOffset(word));
  }
  // Whether `key` has a value: the table only (hashtable/store.h).
  bool Contains(const ResolvedKey& key) const noexcept {
    return FindWord(key) != 0;
  }

  // What slot `index` holds: true, with its hash, its stored key (empty
  // when the blob keeps none) and its value, when it holds a published
  // value; false for an empty slot, a tombstone or a claim not yet
  // published. REQUIRES: index < table().capacity().
  bool EntryAt(uint64_t index, uint64_t* hash, std::string_view* key,
               RawRef* value) const noexcept {
    const uint64_t word = table_.LoadAddr(index);
    if (word == 0) return false;
    // Relaxed: the slot's hash was set before its first publish, and the
    // acquire load of addr above orders this load after it.
    *hash = table_.slot(index).hash.load(std::memory_order_relaxed);
    *key = BlobRef(base_ + AddrOffset(word)).key();
    *value = Ref(AddrOffset(word));
    return true;
  }

 private:
  // The tag of a key from the high half of its XXH3-128: 16 bits, never 0.
  static uint16_t TagOf(uint64_t high) noexcept {
    const uint16_t t = static_cast<uint16_t>(high >> 48);
    return t != 0 ? t : 1;
  }
  // XXH3_128bits_withSeed(bytes, seed_). Keys of up to 128 bytes (symbol
  // names, paths) go straight to xxhash's own short-input functions, which
  // skips the public function's dispatch for long inputs. GCC compiles this
  // function out of line (one call per lookup); forcing it, or only its
  // 16-byte path, inline made the lookup loop slower (README, "Issue 11
  // results"). Same function for every length (store_test checks it
  // against the public one).
  XXH128_hash_t Hash128(std::string_view bytes) const noexcept {
    const auto* p = reinterpret_cast<const xxh_u8*>(bytes.data());
    if (bytes.size() <= 16) {
      return XXH3_len_0to16_128b(p, bytes.size(), XXH3_kSecret, seed_);
    }
    if (bytes.size() <= 128) {
      return XXH3_len_17to128_128b(p, bytes.size(), XXH3_kSecret,
                                   sizeof(XXH3_kSecret), seed_);
    }
    return XXH3_128bits_withSeed(bytes.data(), bytes.size(), seed_);
  }

  Table table_;
  const std::byte* base_;
  uint64_t seed_;
  bool keep_keys_;
};

}  // namespace shmheap::internal

#endif  // SHMHEAP_HASHTABLE_LOOKUP_H_
