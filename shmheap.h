// shmheap: typed arrays in shared memory, published under keys, read in place
// by every process.
//
// A master creates a Heap, forks workers (or unrelated processes attach by
// name or file), workers publish arrays under keys, and every process reads
// every result with no serialization and no copy:
//
//   shmheap::Heap heap = *shmheap::Heap::Create({});
//   if (fork() == 0) {
//     std::vector<float> v = Analyse();
//     (void)heap.Add<float>("file:a.ml", v, {{int64_t(v.size())}});
//     _exit(0);
//   }
//   wait(nullptr);
//   absl::StatusOr<shmheap::ArrayView<float>> a = heap.Get<float>("file:a.ml");
//
// Processes and threads: a Heap may be used from any thread of its process.
// A Heap created before fork is usable in the child, which joins the heap as
// a session of its own on its first call. Views (ArrayView, RawView, Pin)
// must not outlive their Heap and do not survive fork.
//
// Keys (hashtable/key.h) are byte strings hashed with XXH3 and the heap's
// seed, or a HashedKey for callers that already hold a 64-bit hash (as Hack
// and Flow do); every keyed call takes either through Key. With
// Options::keep_keys, every blob stores its key, so two keys with the same
// 64-bit hash are told apart: Add of the second returns kAlreadyExists and
// Get of the second kNotFound, never the other key's data.
//
// Per-operation concurrency: see hashtable/table.h; the protocol is
// hashtable/store.h. In short, Add is write-once (first writer wins),
// readers see complete values only, and a collection never runs while any
// process holds a view, a Pin or a ReadScope. Reads in bulk go through a
// ReadScope (Heap::Read), whose lookups take no locked instruction.
//
// Errors (absl::Status codes, every function):
//   kInvalidArgument     bad dims, kind, data size or name
//   kNotFound            no such key, heap or file (a named heap or file
//                        still being created is not there yet)
//   kAlreadyExists       another key with the same 64-bit hash holds the
//                        slot; or the target of Move exists; or the name
//                        or file to create exists
//   kResourceExhausted   table full, heap full, backing store full
//                        (/dev/shm, disk, RLIMIT_FSIZE, memory floor), or
//                        max_sessions live processes; the dependency table
//                        full
//   kPermissionDenied    the heap belongs to another uid
//   kFailedPrecondition  not a shmheap segment, another format version, or
//                        a path that is not a regular file (FIFO, device,
//                        directory)
//   kDataLoss            corruption found, or a collector died mid-way
//   kAborted             a Move's source changed under it
//   kDeadlineExceeded    Collect or Clear could not stop the world in its
//                        deadline; WaitFor's key was not published in its
//                        timeout
//   kFailedPrecondition  also: Collect or Clear while this process holds a
//                        view, a call on a moved-from Heap, a dependency
//                        call on a heap without a dependency table
// The library never throws, never exits and never prints.

#ifndef SHMHEAP_SHMHEAP_H_
#define SHMHEAP_SHMHEAP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gc/options.h"
#include "hashtable/add_item.h"
#include "hashtable/key.h"
#include "hashtable/lookup.h"
#include "heap/array_ref.h"
#include "heap/array_view.h"
#include "heap/kind.h"
#include "heap/pin.h"
#include "heap/stats.h"

namespace shmheap {

struct Options {
  // Capacity for blobs (rounded up to a page). The range is reserved, not
  // committed: physical memory is taken 1 chunk at a time as blobs arrive.
  uint64_t heap_bytes = uint64_t{1} << 30;
  // The table starts with 2^table_slots_log2 slots of 16 bytes (4..32).
  uint32_t table_slots_log2 = 20;
  // The largest the table may grow to: a collection that finds more than
  // half the slots used rehashes the table into one at least twice as large
  // (README, "Table growth"), up to 2^max_table_slots_log2 slots
  // (table_slots_log2..32). Address space for two tables of that size is
  // reserved (MAP_NORESERVE); only the live table's slots take memory.
  // 0: table_slots_log2 + 6 (64 times the initial size), at most 32.
  uint32_t max_table_slots_log2 = 0;
  // Store each key in its blob, so 64-bit collisions are detected.
  bool keep_keys = true;
  // Give every blob an XXH3-64 checksum of its payload, computed when it is
  // published and checked by Verify (and by `shmheap save`/`load`): damaged
  // payloads are then found. Off by default: it costs a pass over the
  // payload per write (about a third of a large Add's time; README,
  // "Verify").
  bool checksums = false;
  // Processes that may be joined at once (dead ones are reclaimed).
  uint32_t max_sessions = 256;
  // Allocation chunk per process (a multiple of 4096).
  uint64_t chunk_bytes = uint64_t{1} << 20;
  // Memory that must stay available when a memory-backed heap grows.
  uint64_t min_available_bytes = uint64_t{64} << 20;
  // Hash seed; 0 picks a random one.
  uint64_t seed = 0;
  // The dependency table (Heap::AddDep): 2^dep_table_slots_log2 slots of 8
  // bytes, one per edge, all backed when the heap is created; it never
  // grows. 4..32, or 0 for none. The default, 17 (2^17 edges, 1 MiB), is
  // hh_shared's dep_table_pow for Hack.
  uint32_t dep_table_slots_log2 = 17;
};

namespace internal {
class Segment;
class Store;
}  // namespace internal

class Heap;

// An array being built in place (Heap::Reserve): fill bytes(), then Publish.
// Destroying it unpublished leaves its bytes as garbage for the collector.
class RawBuilder {
 public:
  RawBuilder(RawBuilder&& other) noexcept { *this = std::move(other); }
  RawBuilder& operator=(RawBuilder&& other) noexcept {
    store_ = std::exchange(other.store_, nullptr);
    hash_ = other.hash_;
    tag_ = other.tag_;
    has_key_ = other.has_key_;
    key_hashed_ = other.key_hashed_;
    blob_ = std::exchange(other.blob_, 0);
    payload_ = std::exchange(other.payload_, nullptr);
    payload_bytes_ = std::exchange(other.payload_bytes_, 0);
    key_ = std::move(other.key_);
    pin_ = std::move(other.pin_);
    return *this;
  }

  std::span<std::byte> bytes() const { return {payload_, payload_bytes_}; }
  // Publishes like Heap::Add: true when this call published the value. At
  // most once. Errors: kFailedPrecondition (already published),
  // kAlreadyExists (another key with the same hash), kResourceExhausted
  // (table full).
  absl::StatusOr<bool> Publish();

 private:
  friend class Heap;
  RawBuilder() = default;
  const internal::Store* store_ = nullptr;
  uint64_t hash_ = 0;
  uint16_t tag_ = 0;
  bool has_key_ = false;
  bool key_hashed_ = false;
  uint64_t blob_ = 0;
  std::byte* payload_ = nullptr;
  uint64_t payload_bytes_ = 0;
  std::string key_;
  Pin pin_;
};

template <Element T>
class Builder {
 public:
  std::span<T> data() const {
    auto b = raw_.bytes();
    return {reinterpret_cast<T*>(b.data()), b.size() / sizeof(T)};
  }
  absl::StatusOr<bool> Publish() { return raw_.Publish(); }

 private:
  friend class Heap;
  explicit Builder(RawBuilder raw) : raw_(std::move(raw)) {}
  RawBuilder raw_;
};

// A read scope: LMDB's read transaction for shmheap. While it lives, this
// process is in scope (no collection moves a blob), and every lookup through
// it returns a borrowed ArrayRef/RawRef that stays valid until the scope
// ends. Entering costs one locked increment of this process's pin count
// (nothing at all when another Pin of this process is alive); lookups take
// no locked instruction, write no shared memory and allocate nothing on a
// miss.
//
//   absl::StatusOr<shmheap::ReadScope> r = heap.Read();
//   for (const std::string& k : keys)
//     if (std::optional<shmheap::ArrayRef<float>> a = r->Find<float>(k))
//       total += (*a)(0);
//
// Thread safety: a ReadScope may be shared by threads of its process (its
// members are const); each thread may also hold its own. Like a Pin, it
// must not outlive its Heap, does not survive fork, and keeps collections
// waiting while it lives: keep scopes short where a collector may run.
class ReadScope {
 public:
  ReadScope(ReadScope&&) noexcept = default;
  ReadScope& operator=(ReadScope&&) noexcept = default;

  // The value of `key` as a borrowed view, or nullopt when the key is
  // absent (or a different key with the same 64-bit hash holds the slot).
  // No allocation, no formatting.
  // Inline (hashtable/lookup.h): a lookup compiles into its caller.
  std::optional<RawRef> FindRaw(Key key) const noexcept {
    return lookup_.Find(lookup_.ResolveForFind(key));
  }
  // The same, typed: nullopt also when the stored kind is not readable as
  // T (FindRaw, or Get, tells the two apart).
  template <Element T>
  std::optional<ArrayRef<T>> Find(Key key) const noexcept {
    const std::optional<RawRef> r = FindRaw(key);
    if (!r || !r->Is<T>()) return std::nullopt;
    return ArrayRef<T>(reinterpret_cast<const T*>(r->data()), r->dims().data(),
                       r->ndims(), r->kind(), r->layout());
  }
  // Like Find, with errors: kNotFound (its message names the heap and key:
  // formatting it costs a few hundred ns, which Find avoids),
  // kInvalidArgument when the stored kind is not readable as T.
  absl::StatusOr<RawRef> GetRaw(Key key) const;
  template <Element T>
  absl::StatusOr<ArrayRef<T>> Get(Key key) const {
    absl::StatusOr<RawRef> r = GetRaw(key);
    if (!r.ok()) return r.status();
    return r->As<T>();
  }
  // Whether `key` has a value. Reads the table only (hashtable/store.h
  // gives the probability that a different key is taken for it).
  bool Contains(Key key) const noexcept {
    return lookup_.Contains(lookup_.Resolve(key));
  }

  // Batched lookups (hh_shared's get_batch): out[i] is the result for
  // keys[i]; returns how many were found. Slots and then blobs are
  // prefetched a group of keys ahead, so their cache misses overlap.
  // REQUIRES: out.size() == keys.size().
  size_t GetMany(std::span<const Key> keys,
                 std::span<std::optional<RawRef>> out) const noexcept;
  size_t ContainsMany(std::span<const Key> keys,
                      std::span<bool> out) const noexcept;

  // Iteration (hh_shared has none; Pyre and Flow keep side lists of their
  // keys). Calls fn(entry) for every published value, in table order,
  // until fn returns false; returns how many entries fn was given. Each
  // key is given at most once; values published, replaced or removed by
  // other processes while the scope lives may or may not be seen (a
  // snapshot is what Collect gives, not a scope). Costs one pass over the
  // whole slot array (16 bytes per slot). The entry's views are borrowed
  // from this scope.
  struct Entry {
    uint64_t hash;         // the table hash it was published under
    std::string_view key;  // its stored key; empty unless keys are kept
    RawRef value;
  };
  template <class Fn>
  size_t ForEach(Fn&& fn) const {
    size_t given = 0;
    Entry e;
    for (uint64_t i = 0; i < lookup_.table().capacity(); ++i) {
      if (!lookup_.EntryAt(i, &e.hash, &e.key, &e.value)) continue;
      ++given;
      if (!fn(static_cast<const Entry&>(e))) break;
    }
    return given;
  }

  // An owning view of `ref` that outlives the scope (it shares the scope's
  // pin). REQUIRES: `ref` came from this scope.
  template <Element T>
  ArrayView<T> Keep(const ArrayRef<T>& ref) const noexcept {
    return ref.View(pin_);
  }
  RawView Keep(const RawRef& ref) const noexcept { return ref.View(pin_); }

 private:
  friend class Heap;
  ReadScope(const internal::Store* store, const internal::Lookup& lookup,
            Pin pin) noexcept
      : store_(store), lookup_(lookup), pin_(std::move(pin)) {}
  const internal::Store* store_;
  // A copy of the store's read path: lookups read no Store field.
  internal::Lookup lookup_;
  Pin pin_;
};

// A heap. Every function that returns a Status lists its codes; the codes
// themselves are explained at the top of this file. A moved-from Heap may
// only be destroyed or assigned to: any other call on it returns
// kFailedPrecondition ("moved-from Heap") or false.
class Heap {
 public:
  using Pin = ::shmheap::Pin;

  // An anonymous heap (memfd): shared with children forked after this call.
  // Errors: kInvalidArgument (options), kResourceExhausted (memory).
  static absl::StatusOr<Heap> Create(const Options& options);
  // A heap in /dev/shm under `name` ("/x" or "x"), mode 0600, O_EXCL.
  // Errors: kInvalidArgument (name, options), kAlreadyExists,
  // kResourceExhausted.
  static absl::StatusOr<Heap> CreateNamed(std::string_view name,
                                          const Options& options);
  // Errors: kInvalidArgument (name), kNotFound, kPermissionDenied,
  // kFailedPrecondition (not a heap, other format), kDataLoss (damaged, or
  // a collector died mid-compaction), kResourceExhausted (max_sessions).
  static absl::StatusOr<Heap> OpenNamed(std::string_view name);
  // Errors: kInvalidArgument (name), kNotFound.
  static absl::Status UnlinkNamed(std::string_view name);
  // A heap over a regular file, created 0600 with O_EXCL. Nothing in it
  // depends on the address it is mapped at, so it maps straight back.
  // Errors: as CreateNamed / OpenNamed.
  static absl::StatusOr<Heap> CreateFile(const std::string& path,
                                         const Options& options);
  static absl::StatusOr<Heap> OpenFile(const std::string& path);

  Heap(Heap&&) noexcept;
  Heap& operator=(Heap&&) noexcept;
  ~Heap();

  // The 64-bit hash this heap gives `key` (never 0; 0 for a moved-from
  // Heap).
  uint64_t Hash(std::string_view key) const;

  // Write-once publication: true when this call published the value, false
  // when the key already had one (left unchanged). `data` holds the
  // product of `dims` elements in `layout`'s storage order.
  // A table that is full, or that a write finds loaded past half, grows:
  // when this process is out of scope (holds no view, Pin, ReadScope or
  // builder), the write runs a collection, which grows the table, and (if
  // it was full) tries again; so an Add may take a collection's time. That
  // collection waits at most 100 ms for other processes to leave their
  // scopes (not CollectOptions' default 10 s: the caller did not ask to
  // wait); a full table tries it up to 4 times before it says why it stays
  // full, and a growth that could not run is asked for again later.
  // Errors: kInvalidArgument (dims, kind, layout, data size),
  // kAlreadyExists (another key with the same 64-bit hash holds the slot),
  // kResourceExhausted (heap or backing store full; max_sessions; the
  // table full at 2^max_table_slots_log2, or full while this process is
  // in scope, or full when the collection that would grow it failed: the
  // message says which), kDataLoss (a collector died mid-compaction).
  template <Element T>
  absl::StatusOr<bool> Add(Key key, std::span<const T> data,
                           std::span<const int64_t> dims,
                           Layout layout = Layout::kC) {
    return AddRaw(key, KindTraits<T>::kKind, dims, layout, std::as_bytes(data));
  }
  absl::StatusOr<bool> AddRaw(Key key, Kind kind, std::span<const int64_t> dims,
                              Layout layout, std::span<const std::byte> data);

  // Batched write-once publication: the Add of every item, in one scope
  // entry, one acquisition of this process's allocation lock and one
  // counter update for the whole batch (one table probe per item, as Add).
  // results[i] is exactly what AddRaw(items[i]...) would have returned had
  // the items been added one after another in order:
  //   true                published by this call;
  //   false               the key already had a value (perhaps an earlier
  //                       item's: of two items with one key, the first wins);
  //   kInvalidArgument    dims, kind, layout or data size of this item;
  //   kAlreadyExists      another key with the same 64-bit hash holds the
  //                       slot (an earlier item's included);
  //   kResourceExhausted  table, heap or backing store full for this item
  //                       (the others are still attempted).
  // An item's failure does not stop the batch. Returns how many items this
  // call published. Errors (then no item was attempted and `results` is
  // unchanged): kInvalidArgument (results.size() != items.size()),
  // kResourceExhausted (max_sessions), kDataLoss (a collector died
  // mid-compaction), kFailedPrecondition (moved-from Heap).
  absl::StatusOr<size_t> AddMany(std::span<const AddItem> items,
                                 std::span<absl::StatusOr<bool>> results);

  // Publishes the value whether or not the key had one: true when it
  // replaced a value, false when the key was absent. The old value's bytes
  // become dead. Errors: as Add.
  template <Element T>
  absl::StatusOr<bool> Replace(Key key, std::span<const T> data,
                               std::span<const int64_t> dims,
                               Layout layout = Layout::kC) {
    return ReplaceRaw(key, KindTraits<T>::kKind, dims, layout,
                      std::as_bytes(data));
  }
  absl::StatusOr<bool> ReplaceRaw(Key key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data);

  // Zero-copy construction: reserves the blob, the caller fills
  // builder.data() in place, then builder.Publish() behaves like Add,
  // except that a full table is kResourceExhausted without a collection
  // (the builder's unpublished blob would not survive one).
  // The builder holds a Pin until it dies. Errors: as Add, less
  // kAlreadyExists (which Publish reports).
  template <Element T>
  absl::StatusOr<Builder<T>> Reserve(Key key, std::span<const int64_t> dims,
                                     Layout layout = Layout::kC) {
    absl::StatusOr<RawBuilder> raw =
        ReserveRaw(key, KindTraits<T>::kKind, dims, layout);
    if (!raw.ok()) return raw.status();
    return Builder<T>(*std::move(raw));
  }
  absl::StatusOr<RawBuilder> ReserveRaw(Key key, Kind kind,
                                        std::span<const int64_t> dims,
                                        Layout layout);

  // Enters a read scope (see ReadScope). Errors: kResourceExhausted
  // (max_sessions), kDataLoss (a collector died mid-compaction). Waits
  // while a collection runs.
  absl::StatusOr<ReadScope> Read() const;

  // A read-only view straight into shared memory that pins: no collection
  // moves the data while the view lives. Errors: kNotFound if absent,
  // kInvalidArgument if the stored kind is not readable as T (int64_t reads
  // kInt64, kInt and kNativeint), and Read()'s. Each call enters and leaves
  // the scope (a locked increment and decrement); inside a loop, a
  // ReadScope is cheaper.
  template <Element T>
  absl::StatusOr<ArrayView<T>> Get(Key key) const {
    Pin pin;
    absl::StatusOr<RawRef> r = GetPinned(key, pin);
    if (!r.ok()) return r.status();
    absl::StatusOr<ArrayRef<T>> a = r->As<T>();
    if (!a.ok()) return a.status();
    return a->View(std::move(pin));
  }
  absl::StatusOr<RawView> GetRaw(Key key) const;

  // Whether `key` has a value. Takes no scope and writes no shared memory
  // (a seqlock read of the table; hashtable/store.h); false also for a
  // moved-from Heap or a heap whose collector died mid-compaction.
  bool Contains(Key key) const;

  // Waits until `key` has a value (Plasma's wait for an object not created
  // yet): returns at once if it has one, else sleeps (a futex, no spinning)
  // until another thread or process publishes it by any path (Add,
  // AddMany, a Reserve's Publish, Replace, Move, a FetchAdd that creates
  // it), for at most `timeout` (absl::InfiniteDuration(): no limit; zero:
  // one check). WaitFor takes no scope while it sleeps: collections run
  // meanwhile (a Collect changes nothing for it). A caller that holds a
  // view, Pin, ReadScope or builder keeps its process in scope while it
  // waits, and so keeps collections out (other processes' Collect then
  // fails at its deadline): wait out of scope. A process killed while it
  // waits costs later publishes a wake each until its session is
  // reclaimed (by a process that joins, or the next Collect). A
  // publisher killed between its publish and its wake, or one running a
  // build older than WaitFor, wakes nobody: the waiter re-checks the key
  // every few seconds anyway (kWaitRecheck, hashtable/store.h). The value may
  // be gone again by the time the caller reads it (removed or replaced):
  // WaitFor reports presence, not a view. Errors: kDeadlineExceeded (not
  // published within `timeout`), kInvalidArgument (negative timeout),
  // kResourceExhausted (max_sessions: the first wait of a process joins the
  // heap), kDataLoss (a collector died mid-compaction), kFailedPrecondition
  // (moved-from Heap).
  absl::Status WaitFor(Key key, absl::Duration timeout) const;

  // Cancellation (hh_shared's hh_stop_workers / hh_check_should_exit): one
  // heap-wide flag. RequestStop sets it and ClearStop clears it, from any
  // process; StopRequested is one load of a header word that only those two
  // write, cheap enough to poll per work item. A process that sees the flag
  // also sees everything the requester published before RequestStop
  // (release/acquire). RequestStop is one lock-free atomic store, so a
  // signal handler may call it (examples/typecheck does, for Ctrl-C). No
  // errors: on a moved-from Heap they do nothing and StopRequested is false.
  void RequestStop();
  void ClearStop();
  bool StopRequested() const;

  // The dependency table (hh_shared's hh_add_dep / hh_get_dep): a
  // lock-free multimap of keys to sets of values, both below 2^31, in the
  // heap's segment (hashtable/deps.h has the protocol and its concurrency
  // table). Each call enters this process's scope for its duration (so it
  // waits while a collection runs). A collection leaves the table as it is.
  //
  // Adds edge key -> value: true when this call stored it, false when it
  // was there already (adding an edge twice, from any processes at once,
  // stores it once). Errors: kInvalidArgument (key or value 2^31 or more),
  // kFailedPrecondition ("heap has no dependency table
  // (dep_table_slots_log2 = 0)"), kResourceExhausted ("dependency table
  // full: N slots": removed edges keep their slots until the table is
  // reset; also max_sessions), kDataLoss (a collector died mid-compaction).
  absl::StatusOr<bool> AddDep(uint32_t key, uint32_t value);
  // Every value added for `key` and not removed since, each once, in no
  // promised order (empty for a key with none). Errors: as AddDep, less
  // the full table.
  absl::StatusOr<std::vector<uint32_t>> GetDeps(uint32_t key) const;
  // Removes every edge of `key`; returns how many this call removed. A
  // removed edge keeps its slot (GetDeps skips it; adding it again stores
  // it anew in another slot) until the table is reset, so a table that
  // sees many removals needs room for them (Stats::dep_removed).
  // Errors: as GetDeps.
  absl::StatusOr<size_t> RemoveDeps(uint32_t key);

  // Unlinks the value; its bytes become dead. Errors: kNotFound, and
  // Add's kResourceExhausted (max_sessions) and kDataLoss.
  absl::Status Remove(Key key);
  // Batched Remove (hh_shared's remove_batch): unlinks the value of every
  // key in `keys` that has one, in one scope entry; absent keys are
  // skipped, not an error. Returns how many values were unlinked.
  // Errors: kResourceExhausted (max_sessions), kDataLoss, kFailedPrecondition
  // (moved-from Heap); on an error nothing was removed.
  absl::StatusOr<size_t> RemoveMany(std::span<const Key> keys);

  // A named 64-bit counter (hh_shared's hh_counter_next): atomically adds
  // `delta` to `key`'s value and returns the value before, so concurrent
  // callers in any processes get distinct results (unique ids with delta
  // 1). The counter is an ordinary value, a 0-dimensional int64 array: an
  // absent key is created at 0 first (write-once, so racing creators agree
  // on one), and the value then changes in place (it carries no checksum,
  // even with Options::checksums). FetchAdd(key, 0) reads it; a Get view of
  // it may see it change. Replace, Remove and Move treat it like any value
  // (a FetchAdd racing with them adds to the blob it found, old or new);
  // the collector moves it with its value. Errors: kInvalidArgument (the
  // key holds a value that is not a 0-dimensional int64, or one published
  // with a checksum under Options::checksums), kAlreadyExists
  // (another key with the same 64-bit hash), kAborted (removed under every
  // one of four tries), kResourceExhausted, kDataLoss.
  absl::StatusOr<int64_t> FetchAdd(Key key, int64_t delta = 1);

  // Moves the value of `from` to `to`, which must be absent
  // (kAlreadyExists otherwise). The payload is copied once into a blob that
  // records `to` (every blob records the key it is published under, which
  // is what lets Get detect collisions and Verify check every slot).
  // Errors: kNotFound (no `from`), kAlreadyExists, kAborted (`from` changed
  // during the move; `to` holds the moved value), and Add's.
  absl::Status Move(Key from, Key to);

  // Enters this process's scope explicitly: while the Pin (or any view)
  // lives, no collection moves data, and further operations skip the
  // shared handshake. Waits while a collection runs. Errors: as Read().
  absl::StatusOr<Pin> Enter() const;

  // Counters summed over every session, and the number of live sessions:
  // reads /proc once per registry entry in use, so it costs microseconds
  // per process; not for hot loops.
  Stats stats() const;

  // fsck: checks the header, that every slot points inside the heap at a
  // blob that the heap walk reaches, whose stored hash matches the slot,
  // whose stored key gives the slot's key tag, and whose size agrees with
  // its kind, dims and key; that no blob has two slots; that the heap
  // parses end to end through blobs and fillers; and that the counters
  // agree. Every offset is bounds-checked before it is followed. kDataLoss
  // naming the first bad offset. Run it while no process writes
  // (concurrent writers make counters disagree). The counters are checked
  // only while no process has died since the last collection: a killed
  // process may leave them off by its last operation (Collect recounts them
  // exactly). A chunk claimed by a process killed before it recorded the
  // claim parses as a filler. Errors: kDataLoss, and Read()'s.
  absl::Status Verify() const;

  // Compacts the heap in place (gc/collector.h): waits until no process is
  // in scope, slides live blobs down, keeps the freed pages up to
  // options.reuse_slack_bytes backed and zeroed for the next writes, returns
  // the rest of the freed tail to the OS and clears tombstones, then grows
  // the table if more than half its slots are used (gc/grow.h). Any process
  // may call it.
  // kFailedPrecondition if this process holds a view, Pin or ReadScope;
  // kDeadlineExceeded if some process stays in scope past the deadline
  // (nothing changed); kDataLoss if the heap turns out damaged (it does not
  // parse, or a slot points at no blob the slide finds: it is then marked
  // damaged).
  absl::StatusOr<GcReport> Collect(const CollectOptions& options = {});

  // Empties the heap in place (gc/clear.h): every key and counter
  // (FetchAdd's are ordinary keys), the table's slots (it keeps its size),
  // every edge of the dependency table (removed ones too) and the
  // statistics; the freed pages are zeroed up to
  // options.reuse_slack_bytes and the rest go back to the OS, as Collect
  // does. A stop-the-world step like Collect, under the same lock (a Clear
  // that meets a running collection waits for it, then clears): views stay
  // valid while they live, since Clear waits for every process to leave its
  // scope. No process re-attaches: afterwards every Get is kNotFound and
  // Add works. The stop flag (RequestStop) is kept. A Clear killed midway
  // is finished by the next process that enters the heap. Returns the
  // report (bytes_before, bytes_kept, bytes_released, the times).
  // kFailedPrecondition if this process holds a view, Pin or ReadScope;
  // kDeadlineExceeded if some process stays in scope past the deadline, or
  // a running collection does not finish in it (nothing changed);
  // kDataLoss if the heap turns out damaged.
  absl::StatusOr<GcReport> Clear(const CollectOptions& options = {});

  // Collects when the heap's used bytes reach `overhead` times its live
  // bytes (hh_shared's policy) and at least one chunk is dead. Returns the
  // report, or ran == false when no collection was needed. Errors: Collect's.
  static constexpr double kGentle = 2.0;
  static constexpr double kAggressive = 1.2;
  absl::StatusOr<GcReport> MaybeCollect(double overhead = kGentle,
                                        const CollectOptions& options = {});

  // This process's mapping of the heap: every view's data lies inside it
  // (empty for a moved-from Heap).
  std::span<const std::byte> mapping() const;

  // For tools and tests. REQUIRES: not moved-from.
  const internal::Segment& segment() const;
  const internal::Store* store() const { return store_.get(); }

 private:
  explicit Heap(std::unique_ptr<internal::Store> store);
  static absl::StatusOr<Heap> FromSegment(
      absl::StatusOr<std::unique_ptr<internal::Segment>> segment);
  // Get's untyped half: enters the scope into `pin` and finds the value.
  absl::StatusOr<RawRef> GetPinned(Key key, Pin& pin) const;

  std::unique_ptr<internal::Store> store_;
};

}  // namespace shmheap

#endif  // SHMHEAP_SHMHEAP_H_
