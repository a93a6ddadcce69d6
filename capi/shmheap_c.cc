// The C ABI (capi/shmheap_c.h) over the public C++ API: handles wrap
// shmheap::Heap, views, builders and read scopes; statuses become codes plus
// a thread-local message. Nothing here throws across the ABI: allocation of
// a handle uses nothrow new, and every absl::Status is caught as a code.

#include "capi/shmheap_c.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "shmheap.h"

// Every C constant is the C++ value it mirrors: one assertion per value, so
// a renumbering on either side fails to compile instead of mislabelling.
namespace {
template <class E>
constexpr bool Mirrors(int c, E e) {
  return c == static_cast<int>(e);
}
}  // namespace
static_assert(SHMHEAP_NUM_KINDS == shmheap::kNumKinds);
static_assert(SHMHEAP_MAX_DIMS == shmheap::kMaxDims);
static_assert(Mirrors(SHMHEAP_FLOAT32, shmheap::Kind::kFloat32));
static_assert(Mirrors(SHMHEAP_FLOAT64, shmheap::Kind::kFloat64));
static_assert(Mirrors(SHMHEAP_INT8_SIGNED, shmheap::Kind::kInt8Signed));
static_assert(Mirrors(SHMHEAP_INT8_UNSIGNED, shmheap::Kind::kInt8Unsigned));
static_assert(Mirrors(SHMHEAP_INT16_SIGNED, shmheap::Kind::kInt16Signed));
static_assert(Mirrors(SHMHEAP_INT16_UNSIGNED, shmheap::Kind::kInt16Unsigned));
static_assert(Mirrors(SHMHEAP_INT32, shmheap::Kind::kInt32));
static_assert(Mirrors(SHMHEAP_INT64, shmheap::Kind::kInt64));
static_assert(Mirrors(SHMHEAP_INT, shmheap::Kind::kInt));
static_assert(Mirrors(SHMHEAP_NATIVEINT, shmheap::Kind::kNativeint));
static_assert(Mirrors(SHMHEAP_COMPLEX32, shmheap::Kind::kComplex32));
static_assert(Mirrors(SHMHEAP_COMPLEX64, shmheap::Kind::kComplex64));
static_assert(Mirrors(SHMHEAP_CHAR, shmheap::Kind::kChar));
static_assert(Mirrors(SHMHEAP_C_LAYOUT, shmheap::Layout::kC));
static_assert(Mirrors(SHMHEAP_FORTRAN_LAYOUT, shmheap::Layout::kFortran));
static_assert(Mirrors(SHMHEAP_OK, absl::StatusCode::kOk));
static_assert(Mirrors(SHMHEAP_EINVALID, absl::StatusCode::kInvalidArgument));
static_assert(Mirrors(SHMHEAP_EDEADLINE, absl::StatusCode::kDeadlineExceeded));
static_assert(Mirrors(SHMHEAP_ENOTFOUND, absl::StatusCode::kNotFound));
static_assert(Mirrors(SHMHEAP_EEXISTS, absl::StatusCode::kAlreadyExists));
static_assert(Mirrors(SHMHEAP_EPERMISSION,
                      absl::StatusCode::kPermissionDenied));
static_assert(Mirrors(SHMHEAP_EEXHAUSTED,
                      absl::StatusCode::kResourceExhausted));
static_assert(Mirrors(SHMHEAP_EPRECONDITION,
                      absl::StatusCode::kFailedPrecondition));
static_assert(Mirrors(SHMHEAP_EABORTED, absl::StatusCode::kAborted));
static_assert(Mirrors(SHMHEAP_EINTERNAL, absl::StatusCode::kInternal));
static_assert(Mirrors(SHMHEAP_EUNAVAILABLE, absl::StatusCode::kUnavailable));
static_assert(Mirrors(SHMHEAP_EDATALOSS, absl::StatusCode::kDataLoss));

struct shmheap_heap {
  shmheap::Heap heap;
};
struct shmheap_view {
  shmheap::RawView view;
};
struct shmheap_builder {
  shmheap::RawBuilder builder;
};
struct shmheap_read {
  shmheap::ReadScope scope;
};

namespace {

thread_local std::string t_last_error;

int Fail(const absl::Status& s) {
  t_last_error.assign(s.message().data(), s.message().size());
  return static_cast<int>(s.code());
}

int Fail(absl::StatusCode code, const char* message) {
  t_last_error = message;
  return static_cast<int>(code);
}

int OutOfMemory() {
  return Fail(absl::StatusCode::kInternal, "out of memory for a handle");
}

shmheap::Key ToKey(const shmheap_key* k) {
  const std::string_view bytes(k->bytes != nullptr ? k->bytes : "", k->len);
  if (k->hashed) return shmheap::HashedKey{k->hash, bytes};
  return bytes;
}

shmheap::Options ToOptions(const shmheap_options* o) {
  shmheap::Options r;
  if (o == nullptr) return r;
  r.heap_bytes = o->heap_bytes;
  r.table_slots_log2 = o->table_slots_log2;
  r.max_sessions = o->max_sessions;
  r.chunk_bytes = o->chunk_bytes;
  r.min_available_bytes = o->min_available_bytes;
  r.seed = o->seed;
  r.keep_keys = o->keep_keys != 0;
  r.checksums = o->checksums != 0;
  r.max_table_slots_log2 = o->max_table_slots_log2;
  r.dep_table_slots_log2 = o->dep_table_slots_log2;
  return r;
}

int Wrap(absl::StatusOr<shmheap::Heap> heap, shmheap_heap** out) {
  *out = nullptr;
  if (!heap.ok()) return Fail(heap.status());
  auto* h = new (std::nothrow) shmheap_heap{*std::move(heap)};
  if (h == nullptr) return OutOfMemory();
  *out = h;
  return SHMHEAP_OK;
}

// Checks the arguments the C ABI adds: a dims pointer and count.
bool DimsOk(int ndims, const int64_t* dims) {
  return ndims >= 0 && ndims <= SHMHEAP_MAX_DIMS &&
         (ndims == 0 || dims != nullptr);
}

void FillRef(const shmheap::RawRef& r, shmheap_ref* out) {
  out->data = r.data();
  out->dims = r.dims().data();
  out->ndims = r.ndims();
  out->kind = static_cast<int>(r.kind());
  out->layout = static_cast<int>(r.layout());
  out->bytes = r.size_bytes();
}

int Write(shmheap_heap* heap, const shmheap_key* key, int kind, int layout,
          int ndims, const int64_t* dims, const void* data, size_t data_bytes,
          int* result, bool replace) {
  if (!DimsOk(ndims, dims)) {
    return Fail(absl::StatusCode::kInvalidArgument,
                "ndims must be 0..16, with dims given");
  }
  if (data == nullptr && data_bytes != 0) {
    return Fail(absl::StatusCode::kInvalidArgument, "data is NULL");
  }
  const std::span<const int64_t> d(dims, static_cast<size_t>(ndims));
  const std::span<const std::byte> bytes(static_cast<const std::byte*>(data),
                                         data_bytes);
  absl::StatusOr<bool> r =
      replace
          ? heap->heap.ReplaceRaw(ToKey(key), static_cast<shmheap::Kind>(kind),
                                  d, static_cast<shmheap::Layout>(layout),
                                  bytes)
          : heap->heap.AddRaw(ToKey(key), static_cast<shmheap::Kind>(kind), d,
                              static_cast<shmheap::Layout>(layout), bytes);
  if (!r.ok()) return Fail(r.status());
  if (result != nullptr) *result = *r ? 1 : 0;
  return SHMHEAP_OK;
}

void FillReport(const shmheap::GcReport& g, shmheap_gc_report* out) {
  if (out == nullptr) return;
  out->ran = g.ran ? 1 : 0;
  out->bytes_before = g.bytes_before;
  out->bytes_after = g.bytes_after;
  out->blobs_moved = g.blobs_moved;
  out->bytes_moved = g.bytes_moved;
  out->live_blobs = g.live_blobs;
  out->tombstones_cleared = g.tombstones_cleared;
  out->table_slots_before = g.table_slots_before;
  out->table_slots_after = g.table_slots_after;
  out->seconds = g.seconds;
  out->handshake_seconds = g.handshake_seconds;
}

// Collect and Clear: `run` (one of them) with the deadline, its report.
template <class Run>
int StopTheWorld(int64_t deadline_ms, shmheap_gc_report* report, Run run) {
  shmheap::CollectOptions o;
  if (deadline_ms > 0) o.deadline = std::chrono::milliseconds(deadline_ms);
  absl::StatusOr<shmheap::GcReport> r = run(o);
  if (!r.ok()) return Fail(r.status());
  FillReport(*r, report);
  return SHMHEAP_OK;
}

}  // namespace

extern "C" {

const char* shmheap_last_error(void) { return t_last_error.c_str(); }

size_t shmheap_element_size(int kind) {
  if (kind < 0 || kind >= SHMHEAP_NUM_KINDS) return 0;
  return shmheap::ElementSize(static_cast<shmheap::Kind>(kind));
}

void shmheap_options_default(shmheap_options* o) {
  const shmheap::Options d;
  o->heap_bytes = d.heap_bytes;
  o->table_slots_log2 = d.table_slots_log2;
  o->max_sessions = d.max_sessions;
  o->chunk_bytes = d.chunk_bytes;
  o->min_available_bytes = d.min_available_bytes;
  o->seed = d.seed;
  o->keep_keys = d.keep_keys ? 1 : 0;
  o->checksums = d.checksums ? 1 : 0;
  o->max_table_slots_log2 = d.max_table_slots_log2;
  o->dep_table_slots_log2 = d.dep_table_slots_log2;
}

int shmheap_create(const shmheap_options* options, shmheap_heap** out) {
  return Wrap(shmheap::Heap::Create(ToOptions(options)), out);
}
int shmheap_create_named(const char* name, const shmheap_options* options,
                         shmheap_heap** out) {
  if (name == nullptr) {
    *out = nullptr;
    return Fail(absl::StatusCode::kInvalidArgument, "name is NULL");
  }
  return Wrap(shmheap::Heap::CreateNamed(name, ToOptions(options)), out);
}
int shmheap_open_named(const char* name, shmheap_heap** out) {
  if (name == nullptr) {
    *out = nullptr;
    return Fail(absl::StatusCode::kInvalidArgument, "name is NULL");
  }
  return Wrap(shmheap::Heap::OpenNamed(name), out);
}
int shmheap_create_file(const char* path, const shmheap_options* options,
                        shmheap_heap** out) {
  if (path == nullptr) {
    *out = nullptr;
    return Fail(absl::StatusCode::kInvalidArgument, "path is NULL");
  }
  return Wrap(shmheap::Heap::CreateFile(path, ToOptions(options)), out);
}
int shmheap_open_file(const char* path, shmheap_heap** out) {
  if (path == nullptr) {
    *out = nullptr;
    return Fail(absl::StatusCode::kInvalidArgument, "path is NULL");
  }
  return Wrap(shmheap::Heap::OpenFile(path), out);
}
int shmheap_unlink_named(const char* name) {
  if (name == nullptr) {
    return Fail(absl::StatusCode::kInvalidArgument, "name is NULL");
  }
  absl::Status s = shmheap::Heap::UnlinkNamed(name);
  return s.ok() ? SHMHEAP_OK : Fail(s);
}
void shmheap_close(shmheap_heap* heap) { delete heap; }

uint64_t shmheap_hash(const shmheap_heap* heap, const char* bytes, size_t len) {
  return heap->heap.Hash(std::string_view(bytes != nullptr ? bytes : "", len));
}

int shmheap_add(shmheap_heap* heap, const shmheap_key* key, int kind,
                int layout, int ndims, const int64_t* dims, const void* data,
                size_t data_bytes, int* published) {
  return Write(heap, key, kind, layout, ndims, dims, data, data_bytes,
               published, false);
}
int shmheap_replace(shmheap_heap* heap, const shmheap_key* key, int kind,
                    int layout, int ndims, const int64_t* dims,
                    const void* data, size_t data_bytes, int* replaced) {
  return Write(heap, key, kind, layout, ndims, dims, data, data_bytes, replaced,
               true);
}

int shmheap_add_many(shmheap_heap* heap, const shmheap_add_item* items,
                     size_t n, int* results, size_t* published) {
  if (n > 0 && (items == nullptr || results == nullptr)) {
    return Fail(absl::StatusCode::kInvalidArgument,
                "add_many: items or results is NULL");
  }
  std::unique_ptr<shmheap::AddItem[]> batch(new (std::nothrow)
                                                shmheap::AddItem[n]);
  std::unique_ptr<absl::StatusOr<bool>[]> outcomes(new (std::nothrow)
                                                       absl::StatusOr<bool>[n]);
  if (n > 0 && (batch == nullptr || outcomes == nullptr)) {
    return Fail(absl::StatusCode::kResourceExhausted,
                "add_many: out of memory for the batch");
  }
  // Items the C ABI itself rejects (its dims pointer and count, NULL data)
  // are left out of the batch and answered here.
  std::unique_ptr<bool[]> rejected(new (std::nothrow) bool[n]());
  if (n > 0 && rejected == nullptr) {
    return Fail(absl::StatusCode::kResourceExhausted,
                "add_many: out of memory for the batch");
  }
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    const shmheap_add_item& it = items[i];
    if (!DimsOk(it.ndims, it.dims) ||
        (it.data == nullptr && it.data_bytes != 0)) {
      rejected[i] = true;
      continue;
    }
    batch[m++] = shmheap::AddItem{
        ToKey(&it.key), static_cast<shmheap::Kind>(it.kind),
        std::span<const int64_t>(it.dims, static_cast<size_t>(it.ndims)),
        static_cast<shmheap::Layout>(it.layout),
        std::span<const std::byte>(static_cast<const std::byte*>(it.data),
                                   it.data_bytes)};
  }
  absl::StatusOr<size_t> r =
      heap->heap.AddMany(std::span<const shmheap::AddItem>(batch.get(), m),
                         std::span<absl::StatusOr<bool>>(outcomes.get(), m));
  if (!r.ok()) return Fail(r.status());
  bool failed = false;
  for (size_t i = 0, j = 0; i < n; ++i) {
    if (rejected[i]) {
      results[i] = -SHMHEAP_EINVALID;
      if (!failed) {
        t_last_error = "add_many: item " + std::to_string(i) +
                       ": ndims must be 0..16 with dims given, and data "
                       "given when data_bytes > 0";
        failed = true;
      }
      continue;
    }
    const absl::StatusOr<bool>& o = outcomes[j++];
    if (o.ok()) {
      results[i] = *o ? SHMHEAP_ADD_PUBLISHED : SHMHEAP_ADD_PRESENT;
      continue;
    }
    results[i] = -static_cast<int>(o.status().code());
    if (!failed) {
      t_last_error = "add_many: item " + std::to_string(i) + ": " +
                     std::string(o.status().message());
      failed = true;
    }
  }
  if (published != nullptr) *published = *r;
  return SHMHEAP_OK;
}

int shmheap_reserve(shmheap_heap* heap, const shmheap_key* key, int kind,
                    int layout, int ndims, const int64_t* dims,
                    shmheap_builder** out) {
  *out = nullptr;
  if (!DimsOk(ndims, dims)) {
    return Fail(absl::StatusCode::kInvalidArgument,
                "ndims must be 0..16, with dims given");
  }
  absl::StatusOr<shmheap::RawBuilder> b = heap->heap.ReserveRaw(
      ToKey(key), static_cast<shmheap::Kind>(kind),
      std::span<const int64_t>(dims, static_cast<size_t>(ndims)),
      static_cast<shmheap::Layout>(layout));
  if (!b.ok()) return Fail(b.status());
  auto* h = new (std::nothrow) shmheap_builder{*std::move(b)};
  if (h == nullptr) return OutOfMemory();
  *out = h;
  return SHMHEAP_OK;
}
void* shmheap_builder_data(shmheap_builder* builder) {
  return builder->builder.bytes().data();
}
size_t shmheap_builder_bytes(const shmheap_builder* builder) {
  return builder->builder.bytes().size();
}
int shmheap_publish(shmheap_builder* builder, int* published) {
  absl::StatusOr<bool> r = builder->builder.Publish();
  delete builder;
  if (!r.ok()) return Fail(r.status());
  if (published != nullptr) *published = *r ? 1 : 0;
  return SHMHEAP_OK;
}
void shmheap_builder_free(shmheap_builder* builder) { delete builder; }

int shmheap_get(const shmheap_heap* heap, const shmheap_key* key,
                shmheap_view** out) {
  *out = nullptr;
  absl::StatusOr<shmheap::RawView> v = heap->heap.GetRaw(ToKey(key));
  if (!v.ok()) return Fail(v.status());
  auto* h = new (std::nothrow) shmheap_view{*std::move(v)};
  if (h == nullptr) return OutOfMemory();
  *out = h;
  return SHMHEAP_OK;
}
void shmheap_view_ref(const shmheap_view* view, shmheap_ref* out) {
  const shmheap::RawView& v = view->view;
  out->data = v.bytes().data();
  out->dims = v.dims().data();
  out->ndims = v.ndims();
  out->kind = static_cast<int>(v.kind());
  out->layout = static_cast<int>(v.layout());
  out->bytes = v.size_bytes();
}
void shmheap_view_release(shmheap_view* view) { delete view; }

int shmheap_contains(const shmheap_heap* heap, const shmheap_key* key) {
  return heap->heap.Contains(ToKey(key)) ? 1 : 0;
}
int shmheap_remove(shmheap_heap* heap, const shmheap_key* key) {
  absl::Status s = heap->heap.Remove(ToKey(key));
  return s.ok() ? SHMHEAP_OK : Fail(s);
}
int shmheap_remove_many(shmheap_heap* heap, const shmheap_key* keys, size_t n,
                        size_t* removed) {
  if (removed != nullptr) *removed = 0;
  std::unique_ptr<shmheap::Key[]> batch(new (std::nothrow) shmheap::Key[n]);
  if (n > 0 && batch == nullptr) return OutOfMemory();
  for (size_t i = 0; i < n; ++i) batch[i] = ToKey(&keys[i]);
  absl::StatusOr<size_t> r =
      heap->heap.RemoveMany(std::span<const shmheap::Key>(batch.get(), n));
  if (!r.ok()) return Fail(r.status());
  if (removed != nullptr) *removed = *r;
  return SHMHEAP_OK;
}
int shmheap_add_dep(shmheap_heap* heap, uint32_t key, uint32_t value,
                    int* added) {
  if (added != nullptr) *added = 0;
  absl::StatusOr<bool> r = heap->heap.AddDep(key, value);
  if (!r.ok()) return Fail(r.status());
  if (added != nullptr) *added = *r ? 1 : 0;
  return SHMHEAP_OK;
}
int shmheap_get_deps(const shmheap_heap* heap, uint32_t key, uint32_t* values,
                     size_t* count) {
  if (count == nullptr) {
    return Fail(absl::StatusCode::kInvalidArgument,
                "shmheap_get_deps: count is NULL");
  }
  const size_t room = *count;
  if (values == nullptr && room > 0) {
    return Fail(absl::StatusCode::kInvalidArgument,
                "shmheap_get_deps: values is NULL but *count is not 0");
  }
  absl::StatusOr<std::vector<uint32_t>> r = heap->heap.GetDeps(key);
  if (!r.ok()) return Fail(r.status());
  std::copy_n(r->begin(), std::min(room, r->size()), values);
  *count = r->size();
  return SHMHEAP_OK;
}
int shmheap_remove_deps(shmheap_heap* heap, uint32_t key, size_t* removed) {
  if (removed != nullptr) *removed = 0;
  absl::StatusOr<size_t> r = heap->heap.RemoveDeps(key);
  if (!r.ok()) return Fail(r.status());
  if (removed != nullptr) *removed = *r;
  return SHMHEAP_OK;
}
int shmheap_fetch_add(shmheap_heap* heap, const shmheap_key* key, int64_t delta,
                      int64_t* before) {
  absl::StatusOr<int64_t> r = heap->heap.FetchAdd(ToKey(key), delta);
  if (!r.ok()) return Fail(r.status());
  if (before != nullptr) *before = *r;
  return SHMHEAP_OK;
}
void shmheap_request_stop(shmheap_heap* heap) { heap->heap.RequestStop(); }
void shmheap_clear_stop(shmheap_heap* heap) { heap->heap.ClearStop(); }
int shmheap_stop_requested(const shmheap_heap* heap) {
  return heap->heap.StopRequested() ? 1 : 0;
}
int shmheap_wait_for(const shmheap_heap* heap, const shmheap_key* key,
                     int64_t timeout_ns) {
  const absl::Duration timeout = timeout_ns == -1
                                     ? absl::InfiniteDuration()
                                     : absl::Nanoseconds(timeout_ns);
  absl::Status s = heap->heap.WaitFor(ToKey(key), timeout);
  return s.ok() ? SHMHEAP_OK : Fail(s);
}
int shmheap_move(shmheap_heap* heap, const shmheap_key* from,
                 const shmheap_key* to) {
  absl::Status s = heap->heap.Move(ToKey(from), ToKey(to));
  return s.ok() ? SHMHEAP_OK : Fail(s);
}

int shmheap_read_begin(const shmheap_heap* heap, shmheap_read** out) {
  *out = nullptr;
  absl::StatusOr<shmheap::ReadScope> r = heap->heap.Read();
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) shmheap_read{*std::move(r)};
  if (h == nullptr) return OutOfMemory();
  *out = h;
  return SHMHEAP_OK;
}
int shmheap_read_find(const shmheap_read* read, const shmheap_key* key,
                      shmheap_ref* out) {
  const std::optional<shmheap::RawRef> r = read->scope.FindRaw(ToKey(key));
  if (!r) return SHMHEAP_ENOTFOUND;  // no message: a miss is cheap
  FillRef(*r, out);
  return SHMHEAP_OK;
}
size_t shmheap_read_find_many(const shmheap_read* read, const shmheap_key* keys,
                              size_t n, shmheap_ref* out, int* found) {
  size_t hits = 0;
  // GetMany works in groups of its own; this only bounds the stack.
  constexpr size_t kBatch = 64;
  shmheap::Key batch[kBatch];
  std::optional<shmheap::RawRef> refs[kBatch];
  for (size_t base = 0; base < n; base += std::size(batch)) {
    const size_t m = std::min(std::size(batch), n - base);
    for (size_t i = 0; i < m; ++i) batch[i] = ToKey(&keys[base + i]);
    read->scope.GetMany(std::span<const shmheap::Key>(batch, m),
                        std::span<std::optional<shmheap::RawRef>>(refs, m));
    for (size_t i = 0; i < m; ++i) {
      found[base + i] = refs[i].has_value() ? 1 : 0;
      if (refs[i]) {
        FillRef(*refs[i], &out[base + i]);
        ++hits;
      }
    }
  }
  return hits;
}
void shmheap_read_end(shmheap_read* read) { delete read; }

int shmheap_collect(shmheap_heap* heap, int64_t deadline_ms,
                    shmheap_gc_report* report) {
  return StopTheWorld(deadline_ms, report,
                      [&](const auto& o) { return heap->heap.Collect(o); });
}
int shmheap_clear(shmheap_heap* heap, int64_t deadline_ms,
                  shmheap_gc_report* report) {
  return StopTheWorld(deadline_ms, report,
                      [&](const auto& o) { return heap->heap.Clear(o); });
}
int shmheap_maybe_collect(shmheap_heap* heap, double overhead,
                          shmheap_gc_report* report) {
  absl::StatusOr<shmheap::GcReport> r = heap->heap.MaybeCollect(overhead);
  if (!r.ok()) return Fail(r.status());
  FillReport(*r, report);
  return SHMHEAP_OK;
}
void shmheap_get_stats(const shmheap_heap* heap, shmheap_stats* out) {
  const shmheap::Stats s = heap->heap.stats();
  out->table_slots = s.table_slots;
  out->table_used = s.table_used;
  out->table_tombstones = s.table_tombstones;
  out->live_blobs = s.live_blobs;
  out->heap_capacity = s.heap_capacity;
  out->heap_top = s.heap_top;
  out->live_bytes = s.live_bytes;
  out->dead_bytes = s.dead_bytes;
  out->sessions = s.sessions;
  out->collections = s.collections;
  out->dep_slots = s.dep_slots;
  out->dep_used = s.dep_used;
  out->dep_removed = s.dep_removed;
}
int shmheap_verify(const shmheap_heap* heap) {
  absl::Status s = heap->heap.Verify();
  return s.ok() ? SHMHEAP_OK : Fail(s);
}
void shmheap_mapping(const shmheap_heap* heap, const void** base,
                     size_t* bytes) {
  const std::span<const std::byte> m = heap->heap.mapping();
  *base = m.data();
  *bytes = m.size();
}

}  // extern "C"
