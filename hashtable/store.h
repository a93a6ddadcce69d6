// Store: the key-value protocol over a segment's table and heap.
//
// A Store turns the table (hashtable/table.h: slots of {hash, addr}) and the
// heap (heap/: sessions, chunks, blobs) into the operations of the public
// API: add, replace, reserve + publish, get, contains, remove, move, batched
// lookups and read scopes. shmheap.h sits on top of it and only translates
// options and forwards; the Store never includes it.
//
// Keys resolve as hashtable/lookup.h says (hash, 16-bit tag, bytes).
// A blob that stores its key also records it, and writes compare the stored
// key in full: two keys with the same 64-bit hash are told apart, the second
// one's Add answers kAlreadyExists, never the other key's data.
//
// Collision safety of reads.
//   * Find (and so every Get) compares the tag, then the stored key in full:
//     it never returns another key's data. The key sits in the blob's first
//     cache lines, which the caller is about to read anyway.
//   * Contains compares the tag only and never touches the blob. It calls a
//     different key present only when both 64-bit hashes and both 16-bit
//     tags are equal: for a good hash, with n keys in the heap, the chance
//     that any one query is answered wrongly is below n * 2^-80 (the two
//     halves of XXH3-128 are independent functions of the bytes), and over
//     q queries below q * n * 2^-80: 10^9 queries against 10^8 keys give
//     less than 10^-7. With keys kept and a HashedKey whose hash the caller
//     computed (Hack's MD5 prefixes), the same holds if that hash is good.
//     A key whose slot holds no tag (published by hash alone) is trusted by
//     hash, as before.
//
// Scopes. Every read of a blob happens inside the session's scope (a Pin,
// heap/pin.h), which keeps the collector from moving blobs. A ReadScope is
// one Pin held across many lookups: entering it is one locked increment of
// this process's pin count; lookups inside it take no locked instruction and
// write no shared memory. Contains outside any scope reads the table under
// the gc epoch as a seqlock (Boehm, "Can seqlocks get along with programming
// language memory models?", MSPC 2012): it loads the epoch, probes, and
// re-loads the epoch; an odd or changed epoch falls back to entering the
// scope. The collector writes slots only with release stores, after making
// the epoch odd (gc/collector.cc), so a probe that read any of them (with
// acquire loads) re-loads an odd or newer epoch.
//
// A growing table. A collection may replace the table by a larger one in the
// other table area (gc/grow.h), so the Store keeps no table of its own: each
// operation reads the live geometry (Segment::table, Header::table) after it
// has entered the scope, where it cannot change until the scope ends (no
// collection runs while any process is in scope; the scope handshake orders
// the read after the collection that installed the table, so a relaxed load
// suffices). A ReadScope copies lookup() once, when it begins. The seqlock
// read of Contains loads the geometry with acquire after its first epoch
// load: the collector stores Header::table with release after making the
// epoch odd, so a probe that saw a new table re-loads an odd or newer epoch
// and retries in the scope; one that saw the old table probes slots that
// stay mapped and inside the object (an area a growth released reads as
// zeros), and is caught by the same re-check if anything changed.
//
// A write whose claim probes kGrowthProbeDistance slots or more asks for a
// growth (TakeGrowthRequest); the Heap layer then collects if the table's
// load calls for it (gc/grow.h). A write that finds the table full returns
// kResourceExhausted marked IsTableFull, which the Heap layer answers by
// collecting (growing the table) and retrying, where it can.
//
// Waiting (WaitFor; Plasma's wait for an object not created yet). A waiter
// sleeps on a futex, Header::publish_seq, and holds no scope while it does,
// so a sleeping waiter never keeps a collection out. Header::waiters counts
// the waiting threads of every process.
//
//   Waiter:    waiters += 1 (seq_cst RMW); s := publish_seq (acquire);
//              seq_cst fence; if the key is present: done;
//              FUTEX_WAIT(publish_seq, s, time left); waiters -= 1; repeat
//   Publisher: the publishing CAS on the slot's addr (seq_cst RMW);
//              if waiters (seq_cst load) != 0:
//                publish_seq += 1 (release); FUTEX_WAKE(publish_seq, all)
//
// Every publish (Add, AddMany, Publish of a Reserve, Replace, Move, a
// FetchAdd that creates its counter) goes through Install, which calls
// WakeWaiters after its winning CAS. With nobody waiting, that is one load
// of a header word that only waiters write: a plain mov on x86 (a seq_cst
// load is one there), no locked instruction and no store to a shared line.
//
// No lost wakeup (Dekker's pattern, as the scope handshake of
// heap/session.h): suppose the publisher's load of `waiters` misses the
// waiter's increment and the waiter's check misses the publish. The check
// misses it by reading one of the key's slot words before the publisher
// wrote it: the hash (claimed by a seq_cst CAS, Table::FindOrClaim) or the
// addr (published by a seq_cst CAS, Table::CasAddr); call that write W.
// In the single total order S of seq_cst operations ([atomics.order]): the
// load of `waiters` precedes the increment (it reads a value coherence-
// ordered before the increment's: p4.1); W precedes the load and the
// increment precedes the waiter's fence (sequenced before them). So W <S
// load <S increment <S fence. But the check's acquire load of the word,
// sequenced after the fence, reads a value coherence-ordered before W, and
// so the fence precedes W in S (p4.3): a cycle. So at least one side sees
// the other: the waiter finds the key, or the publisher sees waiters != 0
// and bumps publish_seq after its CAS. A waiter that read publish_seq
// before that bump sleeps only if the word still holds its value when
// FUTEX_WAIT compares it (atomically with queueing), so the bump's
// FUTEX_WAKE finds it queued or the wait returns at once; one that read the
// bump (acquire, pairing with the release bump) sees the CAS before it,
// and so the key. (A probe may also stop early, at a slot between the
// key's home and its slot that another process claimed before the
// publisher probed past it; the argument then needs that claim, which the
// publisher saw, to be seen by a waiter that fenced after the publisher's
// load: multi-copy atomicity, which x86-TSO and ARMv8 give, though the C++
// model alone does not promise it for acquire loads.)
//
// A waiter re-checks the key every kWaitRecheck even when nobody wakes it,
// which bounds two waits the pairing cannot help: a publisher killed
// between its CAS and its wake, and a publisher running an older build of
// the library (same format; it does not know about waiters). A waiter
// killed while asleep leaves its count in `waiters`; whoever reclaims its
// session entry takes it off (heap/session.h, "Waiting").
//
// Thread safety: every method may run concurrently from any thread of any
// process that has the segment mapped. Concurrency contract per operation:
// hashtable/table.h.

#ifndef SHMHEAP_HASHTABLE_STORE_H_
#define SHMHEAP_HASHTABLE_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hashtable/add_item.h"
#include "hashtable/key.h"
#include "hashtable/lookup.h"
#include "hashtable/table.h"
#include "heap/array_ref.h"
#include "heap/blob.h"
#include "heap/kind.h"
#include "heap/pin.h"
#include "heap/segment.h"
#include "heap/session.h"
#include "heap/stats.h"

namespace shmheap::internal {

// The largest batch a prefetching lookup works on at once: enough misses in
// flight to cover a DRAM latency, few enough to stay in registers and L1.
inline constexpr size_t kLookupGroup = 16;

// A claim this far from its home slot asks for a growth: at a load of 1/2,
// linear probing's expected probe is 2.5 slots, and a probe of 32 is rare
// below a load of about 3/4 (Knuth, TAOCP vol. 3, 6.4, Algorithm L).
inline constexpr uint64_t kGrowthProbeDistance = 32;

// How long a waiter sleeps at most before it checks its key again with no
// wake (see "Waiting" above): rare enough to cost nothing, often enough
// that a wake lost to a killed or older-build publisher delays a waiter by
// seconds, not forever.
inline constexpr absl::Duration kWaitRecheck = absl::Seconds(10);

class Store {
 public:
  explicit Store(std::unique_ptr<Segment> segment);
  // Leaves this process's session, unless it was inherited across fork.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const Segment& segment() const { return *segment_; }
  // The live table, and the inline read path over it (a ReadScope copies
  // it). REQUIRES: this process is in scope while they are used (a
  // collection may replace the table otherwise).
  Table table() const {
    const TableGeometry t = segment_->table(std::memory_order_relaxed);
    return Table(t.slots, t.slots_log2);
  }
  Lookup lookup() const {
    const TableGeometry t = segment_->table(std::memory_order_relaxed);
    return LookupOver(t);
  }

  // Key resolution needs no table, and no scope.
  ResolvedKey Resolve(const Key& key) const noexcept {
    return keys_.Resolve(key);
  }
  const Lookup& keys() const { return keys_; }

  // Whether a write since the last call probed far enough to ask for a
  // growth (clears the request). Process-local; any thread may take it.
  bool TakeGrowthRequest() const {
    // Relaxed: a hint; nothing is published through it. The plain load
    // first keeps the common case (no request) free of a locked
    // instruction on a line every writing thread of the process touches.
    return growth_requested_.load(std::memory_order_relaxed) &&
           growth_requested_.exchange(false, std::memory_order_relaxed);
  }

  // This process's session, joining on first use and again after fork.
  // Errors: those of LocalSession::Join (kResourceExhausted: max_sessions;
  // kDataLoss: a dead session's record points outside the heap).
  absl::StatusOr<LocalSession*> Session() const;
  // Enters the scope. Errors: Session()'s, and LocalSession::Enter's
  // (kDataLoss: a collector died while compacting).
  absl::StatusOr<Pin> Enter() const;

  // --- Writes. Each enters the scope for its own duration.

  // Add (replace == false: write-once) or Replace. The protocol: check
  // every argument; enter the scope; find or claim the slot (one probe;
  // its index stays valid in scope); for an add, return at once if it holds
  // a value; allocate the blob, counting the claim and the publish ahead
  // under the allocation lock (heap/session.h, "Counters"); write it;
  // publish it with the release CAS on addr; take the count back under the
  // lock only if the CAS lost or met a collision. Errors: kInvalidArgument
  // (dims, kind, layout, data size), kAlreadyExists (another key with the
  // same hash), kResourceExhausted (table, heap, backing store), Enter()'s.
  absl::StatusOr<bool> Write(const ResolvedKey& key, Kind kind,
                             std::span<const int64_t> dims, Layout layout,
                             std::span<const std::byte> data, bool replace,
                             bool sealed = true) const;

  // A named counter (hh_shared's hh_counter_next): atomically adds `delta`
  // to the 0-dimensional int64 value of `key` and returns the value before;
  // an absent key is first created at 0 (write-once: concurrent creators
  // agree on one blob), without a checksum. Errors: kInvalidArgument (the
  // key holds another kind or shape, or a checksummed int64),
  // kAlreadyExists (another key with the same hash), kAborted (the counter
  // was removed under every one of four tries), Write's kResourceExhausted,
  // Enter()'s.
  absl::StatusOr<int64_t> FetchAdd(const ResolvedKey& key, int64_t delta) const;

  // Write-once publication of many values in one scope entry, one
  // allocation-lock acquisition and one counter update for the batch:
  // results[i] := what Write(items[i], replace = false) would have returned
  // had the items been added one after another in order (true: published;
  // false: the key had a value, which may be an earlier item's; or
  // kInvalidArgument, kAlreadyExists, kResourceExhausted for that item
  // alone). Returns how many items this call published.
  // Errors (nothing was added): kInvalidArgument (results.size() !=
  // items.size()), Enter()'s.
  absl::StatusOr<size_t> AddMany(std::span<const AddItem> items,
                                 std::span<absl::StatusOr<bool>> results) const;

  // A blob allocated and written up to its payload, not yet published. It
  // holds the scope until it is published or dropped.
  struct Reservation {
    uint64_t blob = 0;
    std::byte* payload = nullptr;
    uint64_t payload_bytes = 0;
    Pin pin;
  };
  // Errors: Write's, less kAlreadyExists and the data size.
  absl::StatusOr<Reservation> Reserve(const ResolvedKey& key, Kind kind,
                                      std::span<const int64_t> dims,
                                      Layout layout) const;
  // Publishes a reserved blob like Write. REQUIRES: `blob` came from
  // Reserve(key, ...) and its Reservation's pin is still held.
  // Errors: kAlreadyExists, kResourceExhausted (table full).
  absl::StatusOr<bool> PublishReserved(const ResolvedKey& key, uint64_t blob,
                                       bool replace) const;

  // Errors: kNotFound, Enter()'s.
  absl::Status Remove(const ResolvedKey& key) const;
  // Removes every present key of `keys` in one scope entry and one counter
  // update (absent keys are skipped); returns how many were removed.
  // Errors: Enter()'s.
  absl::StatusOr<size_t> RemoveMany(std::span<const Key> keys) const;
  // Errors: kNotFound (no `from`), kAlreadyExists (`to` has a value),
  // kAborted (`from` changed during the move), Write's.
  absl::Status Move(const ResolvedKey& from, const ResolvedKey& to) const;

  // --- Reads inside a scope. REQUIRES: this process is in scope (holds a
  // Pin of this store) for as long as the returned refs are used.

  // Single lookups are Lookup::Find and Lookup::Contains (lookup()).
  // out[i] := lookup().Find(keys[i]); returns how many were found. Prefetches
  // slots and then blobs kLookupGroup keys ahead. REQUIRES: out.size() ==
  // keys.size().
  size_t FindMany(std::span<const Key> keys,
                  std::span<std::optional<RawRef>> out) const noexcept;
  // out[i] := lookup().Contains(keys[i]); returns how many are present.
  size_t ContainsMany(std::span<const Key> keys,
                      std::span<bool> out) const noexcept;
  // The kNotFound a failed Get reports (formatting happens here only).
  absl::Status NotFound(const ResolvedKey& key) const;

  // --- Reads needing no scope.

  // Contains without entering the scope (the seqlock read); false also when
  // the scope cannot be entered (a collector died mid-compaction).
  bool Contains(const ResolvedKey& key) const;
  // The same, with the error of a scope that cannot be entered (Enter()'s,
  // when a collection overlapped the seqlock read).
  absl::StatusOr<bool> ContainsOrError(const ResolvedKey& key) const;

  // Returns once `key` is present, sleeping until some process publishes it
  // (see "Waiting" above) for at most `timeout` (absl::InfiniteDuration():
  // no limit; zero: one check). Takes no scope while it sleeps (a caller's
  // own Pin is the caller's). Errors: kDeadlineExceeded (absent when the
  // timeout ran out), kInvalidArgument (a negative timeout), Session()'s
  // (this process's first call may join the heap), kDataLoss (a collector
  // died mid-compaction).
  absl::Status WaitFor(const ResolvedKey& key, absl::Duration timeout) const;

  // Sums the counters and counts live sessions (reads /proc for each
  // registry entry in use).
  Stats GetStats() const;
  // The fsck described at Heap::Verify. Errors: kDataLoss naming the first
  // bad offset, Enter()'s.
  absl::Status Verify() const;

  // "key \"...\"" (escaped, at most 200 bytes) or "hash 0x...".
  std::string Name(const ResolvedKey& key) const;

 private:
  struct Draft {
    uint64_t offset;
    std::byte* payload;
    uint64_t payload_bytes;
  };
  // A blob's checked shape: what allocating it needs.
  struct Shape {
    BlobGeometry geometry;
    BlobHeader header;
  };
  // What publishing a written blob into its slot did.
  struct Installed {
    bool won;           // the slot now points at the blob
    uint64_t old_word;  // the addr word it replaced, or that won (0: none)
  };
  struct InScope {
    LocalSession* session;
    Pin pin;
  };
  absl::StatusOr<InScope> EnterSession() const;
  absl::StatusOr<int64_t> Elements(const ResolvedKey& key,
                                   std::span<const int64_t> dims) const;
  // Checks kind, layout and geometry: every argument error of a write is
  // found before the table or the heap is touched.
  // `sealed`: the blob carries a checksum when the heap keeps them (not a
  // counter's, whose payload changes).
  absl::StatusOr<Shape> Prepare(const ResolvedKey& key, Kind kind,
                                std::span<const int64_t> dims, int64_t elements,
                                Layout layout, bool sealed = true) const;
  // Elements, the data size and Prepare, for a write of `data`.
  absl::StatusOr<Shape> PrepareWrite(const ResolvedKey& key, Kind kind,
                                     std::span<const int64_t> dims,
                                     Layout layout,
                                     std::span<const std::byte> data,
                                     bool sealed = true) const;
  // Writes the prefix of a blob of `shape` allocated at `offset`.
  Draft Place(uint64_t offset, const Shape& shape, const ResolvedKey& key,
              std::span<const int64_t> dims) const;
  // Prepare, allocate (no counter beyond the allocation's), Place.
  absl::StatusOr<Draft> Allocate(LocalSession& session, const ResolvedKey& key,
                                 Kind kind, std::span<const int64_t> dims,
                                 int64_t elements, Layout layout) const;
  // The slot of `key`, claimed if it had none (Table::FindOrClaim), with
  // the heap and key named in its error.
  absl::StatusOr<uint64_t> Claim(const ResolvedKey& key, bool* claimed) const;
  // Points slot `index` (key's) at the written blob: CAS 0 -> blob, or for
  // a replace old -> blob. Seals the checksum first. Counts nothing.
  // kAlreadyExists when the slot holds another key's value.
  absl::StatusOr<Installed> Install(const ResolvedKey& key, uint64_t index,
                                    uint64_t blob, bool replace) const;
  // After a publish: wakes the processes waiting for a key, if any (see
  // "Waiting" above). Inline, with the wake out of line, so that a publish
  // with nobody waiting pays one load and a branch, not a call.
  void WakeWaiters() const {
    // seq_cst: the publisher's half of the pairing ("Waiting" above): this
    // load follows the seq_cst CAS that published in the single total
    // order. A plain mov on x86 (objdump of Store::Install); the line it
    // reads is written only by waiters.
    if (segment_->header().waiters.load(std::memory_order_seq_cst) != 0) {
      WakeAll();
    }
  }
  // Bumps Header::publish_seq and wakes every waiter.
  [[gnu::cold, gnu::noinline]] void WakeAll() const;
  // Claim, Install and one counter update: the reserved path.
  absl::StatusOr<bool> Publish(LocalSession& session, const ResolvedKey& key,
                               uint64_t blob, bool replace) const;
  // Adds what unlinking the value `old_word` pointed at counts.
  void CountUnlinked(uint64_t old_word, CounterDeltas& deltas) const;
  // Resolves keys[base, base + n) into resolved[0, n) (for Find, or for
  // Contains) and prefetches their home slots; n is at most kLookupGroup.
  // Returns n.
  size_t ResolveGroup(const Table& table, std::span<const Key> keys,
                      size_t base, bool for_find,
                      ResolvedKey (&resolved)[kLookupGroup]) const noexcept;
  absl::Status Collision(const ResolvedKey& key, uint64_t offset) const;
  // Unlinks `key`'s value from `table` (true), counting it into `deltas`;
  // false when the key has none. REQUIRES: in scope.
  bool Unlink(const Table& table, const ResolvedKey& key,
              CounterDeltas& deltas) const;
  Lookup LookupOver(const TableGeometry& t) const {
    return Lookup(t.slots, t.slots_log2, segment_->base(), seed_,
                  keys_.keep_keys());
  }

  std::unique_ptr<Segment> segment_;
  uint64_t seed_;
  // A Lookup over no table (null slots): only its key functions (Resolve,
  // KeyTag, KeyHash, Matches) are used, which read no slot.
  Lookup keys_;
  mutable std::atomic<bool> growth_requested_{false};
  bool checksums_;
  mutable std::mutex session_mu_;
  mutable std::atomic<LocalSession*> session_{nullptr};
};

}  // namespace shmheap::internal

#endif  // SHMHEAP_HASHTABLE_STORE_H_
