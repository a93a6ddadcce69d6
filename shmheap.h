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
// Keys are byte strings hashed with XXH3-64 and the heap's seed. Callers that
// already hold a 64-bit hash (as Hack and Flow do) pass a HashedKey. With
// Options::keep_keys, every blob stores its key, so two keys with the same
// 64-bit hash are told apart: Add of the second returns kAlreadyExists and
// Get of the second kNotFound, never the other key's data.
//
// Per-operation concurrency: see hashtable/table.h. In short, Add is
// write-once (first writer wins), readers see complete values only, and a
// collection never runs while any process holds a view or a Pin.
//
// Errors (absl::Status codes, every function):
//   kInvalidArgument     bad dims, kind, data size or name
//   kNotFound            no such key, heap or file
//   kAlreadyExists       another key with the same 64-bit hash holds the
//                        slot; or the target of Move exists; or the name
//                        or file to create exists
//   kResourceExhausted   table full, heap full, backing store full
//                        (/dev/shm, disk, RLIMIT_FSIZE, memory floor), or
//                        max_sessions live processes
//   kPermissionDenied    the heap belongs to another uid
//   kFailedPrecondition  not a shmheap segment, or another format version
//   kDataLoss            corruption found, or a collector died mid-way
//   kAborted             a Move's source changed under it
// The library never throws, never exits and never prints.

#ifndef SHMHEAP_SHMHEAP_H_
#define SHMHEAP_SHMHEAP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gc/collector.h"
#include "heap/array_view.h"
#include "heap/kind.h"
#include "heap/pin.h"

namespace shmheap {

struct Options {
  // Capacity for blobs (rounded up to a page). The range is reserved, not
  // committed: physical memory is taken 1 chunk at a time as blobs arrive.
  uint64_t heap_bytes = uint64_t{1} << 30;
  // The table has 2^table_slots_log2 slots of 16 bytes (4..32).
  uint32_t table_slots_log2 = 20;
  // Store each key in its blob, so 64-bit collisions are detected.
  bool keep_keys = true;
  // Processes that may be joined at once (dead ones are reclaimed).
  uint32_t max_sessions = 256;
  // Allocation chunk per process (a multiple of 4096).
  uint64_t chunk_bytes = uint64_t{1} << 20;
  // Memory that must stay available when a memory-backed heap grows.
  uint64_t min_available_bytes = uint64_t{64} << 20;
  // Hash seed; 0 picks a random one.
  uint64_t seed = 0;
};

// A key given by its 64-bit hash. `key`, when not empty, is stored (with
// keep_keys) and compared on lookup; an empty `key` trusts the hash alone.
struct HashedKey {
  uint64_t hash = 0;
  std::string_view key = {};
};

struct Stats {
  uint64_t table_slots = 0;       // capacity
  uint64_t table_used = 0;        // slots with a hash (live + tombstones)
  uint64_t table_tombstones = 0;  // slots with a hash and no value
  uint64_t live_blobs = 0;
  uint64_t heap_capacity = 0;  // bytes for blobs
  uint64_t heap_top = 0;       // bytes handed out to chunks so far
  uint64_t live_bytes = 0;     // bytes of published, reachable blobs
  uint64_t dead_bytes = 0;     // removed, replaced, lost blobs, fillers
  uint64_t sessions = 0;       // sessions of live processes
  uint64_t collections = 0;
};

namespace internal {
class Segment;
class LocalSession;
class Table;
struct HeapState;
}  // namespace internal

class Heap;

// An array being built in place (Heap::Reserve): fill data(), then Publish.
// Destroying it unpublished leaves its bytes as garbage for the collector.
class RawBuilder {
 public:
  RawBuilder(RawBuilder&& other) noexcept { *this = std::move(other); }
  RawBuilder& operator=(RawBuilder&& other) noexcept {
    state_ = std::exchange(other.state_, nullptr);
    hash_ = other.hash_;
    blob_ = std::exchange(other.blob_, 0);
    payload_ = std::exchange(other.payload_, nullptr);
    payload_bytes_ = std::exchange(other.payload_bytes_, 0);
    replace_ = other.replace_;
    key_ = std::move(other.key_);
    pin_ = std::move(other.pin_);
    return *this;
  }

  std::span<std::byte> bytes() const { return {payload_, payload_bytes_}; }
  // Publishes like Heap::Add (or Replace, for ReserveReplace): true when
  // this call published the value. At most once.
  absl::StatusOr<bool> Publish();

 private:
  friend class Heap;
  RawBuilder() = default;
  internal::HeapState* state_ = nullptr;
  uint64_t hash_ = 0;
  uint64_t blob_ = 0;
  std::byte* payload_ = nullptr;
  uint64_t payload_bytes_ = 0;
  bool replace_ = false;
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

class Heap {
 public:
  using Pin = ::shmheap::Pin;

  // An anonymous heap (memfd): shared with children forked after this call.
  static absl::StatusOr<Heap> Create(const Options& options);
  // A heap in /dev/shm under `name` ("/x" or "x"), mode 0600, O_EXCL.
  static absl::StatusOr<Heap> CreateNamed(std::string_view name,
                                          const Options& options);
  static absl::StatusOr<Heap> OpenNamed(std::string_view name);
  static absl::Status UnlinkNamed(std::string_view name);
  // A heap over a regular file, created 0600 with O_EXCL. Nothing in it
  // depends on the address it is mapped at, so it maps straight back.
  static absl::StatusOr<Heap> CreateFile(const std::string& path,
                                         const Options& options);
  static absl::StatusOr<Heap> OpenFile(const std::string& path);

  Heap(Heap&&) noexcept;
  Heap& operator=(Heap&&) noexcept;
  ~Heap();

  // The 64-bit hash this heap gives `key` (never 0).
  uint64_t Hash(std::string_view key) const;

  // Write-once publication: true when this call published the value, false
  // when the key already had one (left unchanged). `data` holds the
  // product of `dims` elements in `layout`'s storage order.
  template <Element T>
  absl::StatusOr<bool> Add(std::string_view key, std::span<const T> data,
                           std::span<const int64_t> dims,
                           Layout layout = Layout::kC) {
    return AddRaw(key, KindTraits<T>::kKind, dims, layout, std::as_bytes(data));
  }
  template <Element T>
  absl::StatusOr<bool> Add(HashedKey key, std::span<const T> data,
                           std::span<const int64_t> dims,
                           Layout layout = Layout::kC) {
    return AddRaw(key, KindTraits<T>::kKind, dims, layout, std::as_bytes(data));
  }
  absl::StatusOr<bool> AddRaw(std::string_view key, Kind kind,
                              std::span<const int64_t> dims, Layout layout,
                              std::span<const std::byte> data);
  absl::StatusOr<bool> AddRaw(HashedKey key, Kind kind,
                              std::span<const int64_t> dims, Layout layout,
                              std::span<const std::byte> data);

  // Publishes the value whether or not the key had one: true when it
  // replaced a value, false when the key was absent. The old value's bytes
  // become dead.
  template <Element T>
  absl::StatusOr<bool> Replace(std::string_view key, std::span<const T> data,
                               std::span<const int64_t> dims,
                               Layout layout = Layout::kC) {
    return ReplaceRaw(key, KindTraits<T>::kKind, dims, layout,
                      std::as_bytes(data));
  }
  template <Element T>
  absl::StatusOr<bool> Replace(HashedKey key, std::span<const T> data,
                               std::span<const int64_t> dims,
                               Layout layout = Layout::kC) {
    return ReplaceRaw(key, KindTraits<T>::kKind, dims, layout,
                      std::as_bytes(data));
  }
  absl::StatusOr<bool> ReplaceRaw(std::string_view key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data);
  absl::StatusOr<bool> ReplaceRaw(HashedKey key, Kind kind,
                                  std::span<const int64_t> dims, Layout layout,
                                  std::span<const std::byte> data);

  // Zero-copy construction: reserves the blob, the caller fills
  // builder.data() in place, then builder.Publish() behaves like Add.
  // The builder holds a Pin until it dies.
  template <Element T>
  absl::StatusOr<Builder<T>> Reserve(std::string_view key,
                                     std::span<const int64_t> dims,
                                     Layout layout = Layout::kC) {
    absl::StatusOr<RawBuilder> raw =
        ReserveRaw(key, KindTraits<T>::kKind, dims, layout);
    if (!raw.ok()) return raw.status();
    return Builder<T>(*std::move(raw));
  }
  template <Element T>
  absl::StatusOr<Builder<T>> Reserve(HashedKey key,
                                     std::span<const int64_t> dims,
                                     Layout layout = Layout::kC) {
    absl::StatusOr<RawBuilder> raw =
        ReserveRaw(key, KindTraits<T>::kKind, dims, layout);
    if (!raw.ok()) return raw.status();
    return Builder<T>(*std::move(raw));
  }
  absl::StatusOr<RawBuilder> ReserveRaw(std::string_view key, Kind kind,
                                        std::span<const int64_t> dims,
                                        Layout layout);
  absl::StatusOr<RawBuilder> ReserveRaw(HashedKey key, Kind kind,
                                        std::span<const int64_t> dims,
                                        Layout layout);

  // A read-only view straight into shared memory. kNotFound if absent,
  // kInvalidArgument if the stored kind is not readable as T (int64_t reads
  // kInt64, kInt and kNativeint). The view pins: no collection moves the
  // data while it lives.
  template <Element T>
  absl::StatusOr<ArrayView<T>> Get(std::string_view key) const {
    absl::StatusOr<RawView> raw = GetRaw(key);
    if (!raw.ok()) return raw.status();
    return std::move(*raw).As<T>();
  }
  template <Element T>
  absl::StatusOr<ArrayView<T>> Get(HashedKey key) const {
    absl::StatusOr<RawView> raw = GetRaw(key);
    if (!raw.ok()) return raw.status();
    return std::move(*raw).As<T>();
  }
  absl::StatusOr<RawView> GetRaw(std::string_view key) const;
  absl::StatusOr<RawView> GetRaw(HashedKey key) const;

  bool Contains(std::string_view key) const;
  bool Contains(HashedKey key) const;

  // Unlinks the value (kNotFound if absent); its bytes become dead.
  absl::Status Remove(std::string_view key);
  absl::Status Remove(HashedKey key);

  // Moves the value of `from` to `to`, which must be absent
  // (kAlreadyExists otherwise). The payload is copied once into a blob that
  // records `to` (every blob records the key it is published under, which
  // is what lets Get detect collisions and Verify check every slot).
  absl::Status Move(std::string_view from, std::string_view to);
  absl::Status Move(HashedKey from, HashedKey to);

  // Enters this process's scope explicitly: while the Pin (or any view)
  // lives, no collection moves data, and further operations skip the
  // shared handshake. Waits while a collection runs.
  absl::StatusOr<Pin> Enter() const;

  Stats stats() const;

  // fsck: checks the header, that every slot points inside the heap at a
  // blob that the heap walk reaches, whose stored hash (and key) matches the
  // slot and whose size agrees with its kind, dims and key; that no blob
  // has two slots; that the heap parses end to end through blobs and
  // fillers; and that the counters agree. Every offset is bounds-checked
  // before it is followed. kDataLoss naming the first bad offset. Run it
  // while no process writes (concurrent writers make counters disagree).
  // The counters are checked only while no process has died since the last
  // collection: a killed process may leave them off by its last operation
  // (Collect recounts them exactly). A chunk claimed by a process killed
  // before it recorded the claim parses as a filler.
  absl::Status Verify() const;

  // Compacts the heap in place (gc/collector.h): waits until no process is
  // in scope, slides live blobs down, returns the freed tail to the OS and
  // clears tombstones. Any process may call it.
  // kFailedPrecondition if this process holds a view or Pin;
  // kDeadlineExceeded if some process stays in scope past the deadline
  // (nothing changed); kDataLoss if an earlier collector died mid-way.
  absl::StatusOr<GcReport> Collect(const CollectOptions& options = {});

  // Collects when the heap's used bytes reach `overhead` times its live
  // bytes (hh_shared's policy) and at least one chunk is dead. Returns the
  // report, or ran == false when no collection was needed.
  static constexpr double kGentle = 2.0;
  static constexpr double kAggressive = 1.2;
  absl::StatusOr<GcReport> MaybeCollect(double overhead = kGentle,
                                        const CollectOptions& options = {});

  // For tools and tests.
  const internal::Segment& segment() const;
  internal::HeapState* state() const { return state_.get(); }

 private:
  explicit Heap(std::unique_ptr<internal::HeapState> state);
  static absl::StatusOr<Heap> FromSegment(
      absl::StatusOr<std::unique_ptr<internal::Segment>> segment);

  std::unique_ptr<internal::HeapState> state_;
};

}  // namespace shmheap

#endif  // SHMHEAP_SHMHEAP_H_
