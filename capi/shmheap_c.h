/* shmheap_c.h: the C ABI over shmheap (shmheap.h), the one layer every
 * binding uses (bindings/ocaml, bindings/python).
 *
 * LMDB's habits: opaque handles, integer return codes, one function per
 * operation with its errors listed, no C++ type in sight. Every function
 * that can fail returns an `int` code (SHMHEAP_OK or one of the
 * SHMHEAP_E* codes below, which are absl::StatusCode's values) and, when
 * it fails, leaves a message for the calling thread that
 * shmheap_last_error() returns until the thread's next failing call.
 *
 * Keys: every keyed call takes a `const shmheap_key*`: bytes (hashed with
 * the heap's seed), or a caller's 64-bit hash with optional bytes (Hack
 * and Flow pass MD5 prefixes), as shmheap::HashedKey.
 *
 * Lifetimes (the same rules as the C++ API):
 *   - a heap handle may be used from any thread of its process, and in a
 *     child after fork (the child joins as a session of its own);
 *   - a view (shmheap_get) pins the heap: no collection moves its data
 *     until shmheap_view_release. It must be released before its heap is
 *     closed, and is not to be used in a child after fork;
 *   - a read scope (shmheap_read_begin) is one pin for many lookups; the
 *     shmheap_ref values it fills point into shared memory and are valid
 *     until shmheap_read_end;
 *   - a builder (shmheap_reserve) holds a pin until it is published or
 *     freed.
 *
 * Kinds and layouts are shmheap::Kind and shmheap::Layout's values
 * (SHMHEAP_FLOAT32 ... SHMHEAP_CHAR, SHMHEAP_C_LAYOUT, SHMHEAP_FORTRAN_LAYOUT);
 * OCaml's Bigarray kinds map one to one.
 */

#ifndef SHMHEAP_CAPI_SHMHEAP_C_H_
#define SHMHEAP_CAPI_SHMHEAP_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: absl::StatusCode values. */
enum {
  SHMHEAP_OK = 0,
  SHMHEAP_EINVALID = 3,      /* bad dims, kind, layout, size, name, options */
  SHMHEAP_EDEADLINE = 4,     /* collect, clear: the world did not stop;
                                wait_for: the key did not come in time */
  SHMHEAP_ENOTFOUND = 5,     /* no such key, heap or file */
  SHMHEAP_EEXISTS = 6,       /* colliding key; move target; name to create */
  SHMHEAP_EPERMISSION = 7,   /* the heap belongs to another uid */
  SHMHEAP_EEXHAUSTED = 8,    /* table, heap, backing store, max_sessions */
  SHMHEAP_EPRECONDITION = 9, /* not a heap; collect/clear pinned; closed */
  SHMHEAP_EABORTED = 10,     /* a move's source changed under it */
  SHMHEAP_EINTERNAL = 13,    /* a bug, or memory for a handle ran out */
  SHMHEAP_EUNAVAILABLE = 14, /* a named heap is still being created */
  SHMHEAP_EDATALOSS = 15     /* damaged heap */
};

/* Element kinds (shmheap::Kind) and layouts (shmheap::Layout). */
enum {
  SHMHEAP_FLOAT32 = 0,
  SHMHEAP_FLOAT64 = 1,
  SHMHEAP_INT8_SIGNED = 2,
  SHMHEAP_INT8_UNSIGNED = 3,
  SHMHEAP_INT16_SIGNED = 4,
  SHMHEAP_INT16_UNSIGNED = 5,
  SHMHEAP_INT32 = 6,
  SHMHEAP_INT64 = 7,
  SHMHEAP_INT = 8,       /* OCaml's native int, 64 bits */
  SHMHEAP_NATIVEINT = 9, /* a machine word, 64 bits */
  SHMHEAP_COMPLEX32 = 10,
  SHMHEAP_COMPLEX64 = 11,
  SHMHEAP_CHAR = 12,
  SHMHEAP_NUM_KINDS = 13
};
enum { SHMHEAP_C_LAYOUT = 0, SHMHEAP_FORTRAN_LAYOUT = 1 };
#define SHMHEAP_MAX_DIMS 16

typedef struct shmheap_heap shmheap_heap;
typedef struct shmheap_view shmheap_view;
typedef struct shmheap_builder shmheap_builder;
typedef struct shmheap_read shmheap_read;

/* A key: `len` bytes at `bytes`; with `hashed` nonzero, `hash` is the
 * caller's 64-bit hash and the bytes (which may be empty) are stored and
 * compared. */
typedef struct shmheap_key {
  const char* bytes;
  size_t len;
  uint64_t hash;
  int hashed;
} shmheap_key;

/* shmheap::Options. Fill with shmheap_options_default, then change. */
typedef struct shmheap_options {
  uint64_t heap_bytes;
  uint32_t table_slots_log2;
  uint32_t max_sessions;
  uint64_t chunk_bytes;
  uint64_t min_available_bytes;
  uint64_t seed;
  int keep_keys;
  int checksums;
  /* The largest table a collection may grow it to (0: table_slots_log2 + 6,
   * at most 32); see Options::max_table_slots_log2. */
  uint32_t max_table_slots_log2;
  /* The dependency table: 2^n slots of 8 bytes (4..32), 0 for none; see
   * Options::dep_table_slots_log2 (default 17). */
  uint32_t dep_table_slots_log2;
} shmheap_options;

typedef struct shmheap_stats {
  uint64_t table_slots, table_used, table_tombstones, live_blobs;
  uint64_t heap_capacity, heap_top, live_bytes, dead_bytes;
  uint64_t sessions, collections;
  /* The dependency table (0 when the heap has none): slots, non-empty
   * slots (removed edges included), slots of removed edges. */
  uint64_t dep_slots, dep_used, dep_removed;
} shmheap_stats;

typedef struct shmheap_gc_report {
  int ran; /* 0: another process's collection ran, or nothing to do */
  uint64_t bytes_before, bytes_after, blobs_moved, bytes_moved;
  uint64_t live_blobs, tombstones_cleared;
  double seconds, handshake_seconds;
  /* Table capacity in slots before and after (after > before: it grew). */
  uint64_t table_slots_before, table_slots_after;
} shmheap_gc_report;

/* A borrowed array inside a read scope (or the fields of a view). */
typedef struct shmheap_ref {
  const void* data;
  const int64_t* dims; /* ndims of them */
  int ndims;
  int kind;
  int layout;
  size_t bytes; /* product of dims times the element size */
} shmheap_ref;

/* The calling thread's message for its last failing call ("" if none). */
const char* shmheap_last_error(void);
/* The size in bytes of one element of `kind` (0 for an invalid kind). */
size_t shmheap_element_size(int kind);

void shmheap_options_default(shmheap_options* options);

/* Heaps. Errors: SHMHEAP_EINVALID (options, name), SHMHEAP_EEXISTS (name or
 * file exists), SHMHEAP_ENOTFOUND, SHMHEAP_EPERMISSION, SHMHEAP_EPRECONDITION
 * (not a heap, other format), SHMHEAP_EUNAVAILABLE (being created),
 * SHMHEAP_EDATALOSS, SHMHEAP_EEXHAUSTED (memory, max_sessions). On success
 * *out holds a handle for shmheap_close. */
int shmheap_create(const shmheap_options* options, shmheap_heap** out);
int shmheap_create_named(const char* name, const shmheap_options* options,
                         shmheap_heap** out);
int shmheap_open_named(const char* name, shmheap_heap** out);
int shmheap_create_file(const char* path, const shmheap_options* options,
                        shmheap_heap** out);
int shmheap_open_file(const char* path, shmheap_heap** out);
/* Errors: SHMHEAP_EINVALID (name), SHMHEAP_ENOTFOUND. */
int shmheap_unlink_named(const char* name);
/* Leaves the heap (NULL is ignored). REQUIRES: its views, builders and read
 * scopes are released. */
void shmheap_close(shmheap_heap* heap);

/* The heap's 64-bit hash of `len` bytes (never 0). */
uint64_t shmheap_hash(const shmheap_heap* heap, const char* bytes, size_t len);

/* Add (write-once) and replace: `data` holds `data_bytes` bytes, the
 * product of `dims` elements of `kind` in `layout` order. *published := 1
 * when this call published (add) or replaced a value (replace), else 0.
 * Errors: SHMHEAP_EINVALID (dims, kind, layout, size), SHMHEAP_EEXISTS
 * (another key with the same hash), SHMHEAP_EEXHAUSTED, SHMHEAP_EDATALOSS. */
int shmheap_add(shmheap_heap* heap, const shmheap_key* key, int kind,
                int layout, int ndims, const int64_t* dims, const void* data,
                size_t data_bytes, int* published);
int shmheap_replace(shmheap_heap* heap, const shmheap_key* key, int kind,
                    int layout, int ndims, const int64_t* dims,
                    const void* data, size_t data_bytes, int* replaced);

/* One value of shmheap_add_many: shmheap_add's arguments. */
typedef struct shmheap_add_item {
  shmheap_key key;
  int kind;
  int layout;
  int ndims;
  const int64_t* dims;
  const void* data;
  size_t data_bytes;
} shmheap_add_item;

/* An item's outcome in shmheap_add_many's results, when not an error. */
enum { SHMHEAP_ADD_PRESENT = 0, SHMHEAP_ADD_PUBLISHED = 1 };

/* Batched add (shmheap::Heap::AddMany): the shmheap_add of each of the `n`
 * items, in one scope entry, one allocation-lock acquisition and one
 * counter update. results[i] := SHMHEAP_ADD_PUBLISHED when this call
 * published items[i], SHMHEAP_ADD_PRESENT when its key already had a value
 * (perhaps an earlier item's), or the negated code of that item's own
 * error: -SHMHEAP_EINVALID (dims, kind, layout, size, NULL data),
 * -SHMHEAP_EEXISTS (another key with the same hash), -SHMHEAP_EEXHAUSTED
 * (table, heap or backing store full). An item's error does not stop the
 * others. *published := how many were published (`published` may be NULL).
 * Returns SHMHEAP_OK when the batch ran, whatever its items' outcomes;
 * shmheap_last_error() then names the first failed item, if any.
 * Errors (no item attempted, results unchanged): SHMHEAP_EINVALID (items
 * or results NULL with n > 0), SHMHEAP_EEXHAUSTED (max_sessions, or memory
 * for the call's arrays), SHMHEAP_EDATALOSS, SHMHEAP_EPRECONDITION. */
int shmheap_add_many(shmheap_heap* heap, const shmheap_add_item* items,
                     size_t n, int* results, size_t* published);

/* Zero-copy construction: *out's data (shmheap_builder_data) is filled by
 * the caller, then shmheap_publish behaves like shmheap_add and frees the
 * builder whatever it returns; shmheap_builder_free drops an unpublished
 * one. Errors: as shmheap_add (publish: SHMHEAP_EEXISTS,
 * SHMHEAP_EEXHAUSTED). */
int shmheap_reserve(shmheap_heap* heap, const shmheap_key* key, int kind,
                    int layout, int ndims, const int64_t* dims,
                    shmheap_builder** out);
void* shmheap_builder_data(shmheap_builder* builder);
size_t shmheap_builder_bytes(const shmheap_builder* builder);
int shmheap_publish(shmheap_builder* builder, int* published);
void shmheap_builder_free(shmheap_builder* builder);

/* A pinned view of `key`'s value. Errors: SHMHEAP_ENOTFOUND,
 * SHMHEAP_EDATALOSS, SHMHEAP_EEXHAUSTED (max_sessions). */
int shmheap_get(const shmheap_heap* heap, const shmheap_key* key,
                shmheap_view** out);
/* The view's array (valid until shmheap_view_release). */
void shmheap_view_ref(const shmheap_view* view, shmheap_ref* out);
void shmheap_view_release(shmheap_view* view);

/* 1 if present, 0 if not (no error). */
int shmheap_contains(const shmheap_heap* heap, const shmheap_key* key);
/* Errors: SHMHEAP_ENOTFOUND. */
int shmheap_remove(shmheap_heap* heap, const shmheap_key* key);
/* Batched remove: unlinks every key of keys[0, n) that has a value, in one
 * scope entry; absent keys are skipped. *removed (may be NULL) is how many
 * were unlinked. Errors: SHMHEAP_EEXHAUSTED (max_sessions),
 * SHMHEAP_EDATALOSS; then nothing was removed. */
int shmheap_remove_many(shmheap_heap* heap, const shmheap_key* keys, size_t n,
                        size_t* removed);
/* The dependency table (shmheap::Heap::AddDep, hh_shared's hh_add_dep):
 * keys and values below 2^31. Every call may also return
 * SHMHEAP_EINVALID (a key or value of 2^31 or more), SHMHEAP_EPRECONDITION
 * (the heap has no dependency table: dep_table_slots_log2 = 0),
 * SHMHEAP_EEXHAUSTED (max_sessions) and SHMHEAP_EDATALOSS.
 *
 * Adds edge key -> value; *added (may be NULL) is 1 when this call stored
 * it, 0 when it was there. Also SHMHEAP_EEXHAUSTED: the table is full
 * (removed edges keep their slots). */
int shmheap_add_dep(shmheap_heap* heap, uint32_t key, uint32_t value,
                    int* added);
/* The values of `key` (in no promised order), snprintf style: on entry
 * *count is the room in values[] (values may be NULL when it is 0); on
 * return *count is how many values the key has, and the first
 * min(room, *count) of them are in values[]. A *count larger than the room
 * means the buffer was too small: call again with at least that much (the
 * set may have grown in between, so loop). Also SHMHEAP_EINVALID: values
 * NULL with room, or count NULL. */
int shmheap_get_deps(const shmheap_heap* heap, uint32_t key, uint32_t* values,
                     size_t* count);
/* Removes every edge of `key`; *removed (may be NULL) is how many this call
 * removed. Removed edges keep their slots until the table is reset. */
int shmheap_remove_deps(shmheap_heap* heap, uint32_t key, size_t* removed);

/* A named counter (shmheap::Heap::FetchAdd): adds delta atomically and
 * stores the value before in *before (may be NULL). Errors: SHMHEAP_EINVALID
 * (the key holds another kind or shape, or a checksummed int64),
 * SHMHEAP_EEXISTS (hash collision), SHMHEAP_EABORTED, SHMHEAP_EEXHAUSTED,
 * SHMHEAP_EDATALOSS. */
int shmheap_fetch_add(shmheap_heap* heap, const shmheap_key* key, int64_t delta,
                      int64_t* before);
/* Cancellation (shmheap::Heap::RequestStop): a heap-wide flag any process
 * sets or clears and every worker may poll cheaply; stop_requested returns
 * 1 or 0. No errors. */
void shmheap_request_stop(shmheap_heap* heap);
void shmheap_clear_stop(shmheap_heap* heap);
int shmheap_stop_requested(const shmheap_heap* heap);
/* Waits until `key` has a value (shmheap::Heap::WaitFor): SHMHEAP_OK at
 * once if it has one, else sleeps (a futex, holding no pin) until some
 * process publishes it, for at most timeout_ns nanoseconds (-1: no limit;
 * 0: one check). Errors: SHMHEAP_EDEADLINE (not published in time),
 * SHMHEAP_EINVALID (a negative timeout other than -1), SHMHEAP_EEXHAUSTED
 * (max_sessions: a process's first wait joins the heap),
 * SHMHEAP_EDATALOSS. */
int shmheap_wait_for(const shmheap_heap* heap, const shmheap_key* key,
                     int64_t timeout_ns);
/* Errors: SHMHEAP_ENOTFOUND (from), SHMHEAP_EEXISTS (to), SHMHEAP_EABORTED,
 * and shmheap_add's. */
int shmheap_move(shmheap_heap* heap, const shmheap_key* from,
                 const shmheap_key* to);

/* Read scopes. begin: errors SHMHEAP_EDATALOSS, SHMHEAP_EEXHAUSTED.
 * find: SHMHEAP_OK and *out filled, or SHMHEAP_ENOTFOUND (no message is
 * formatted: a miss is cheap). find_many: fills out[i] and found[i] (1/0)
 * for keys[i], returns the number found. */
int shmheap_read_begin(const shmheap_heap* heap, shmheap_read** out);
int shmheap_read_find(const shmheap_read* read, const shmheap_key* key,
                      shmheap_ref* out);
size_t shmheap_read_find_many(const shmheap_read* read, const shmheap_key* keys,
                              size_t n, shmheap_ref* out, int* found);
void shmheap_read_end(shmheap_read* read);

/* Collection. deadline_ms <= 0 means the default (10 s). Errors:
 * SHMHEAP_EPRECONDITION (this process holds a view, builder or read scope),
 * SHMHEAP_EDEADLINE, SHMHEAP_EDATALOSS. report may be NULL. */
int shmheap_collect(shmheap_heap* heap, int64_t deadline_ms,
                    shmheap_gc_report* report);
/* Empties the heap in place (Heap::Clear): every key and counter, the
 * table's slots and the statistics; no process re-attaches, the stop flag is
 * kept. A stop-the-world step like collect, with the same deadline and
 * errors: SHMHEAP_EPRECONDITION (this process holds a view, builder or read
 * scope), SHMHEAP_EDEADLINE (nothing changed), SHMHEAP_EDATALOSS. report
 * (may be NULL) has bytes_before, bytes_after (0) and the times. */
int shmheap_clear(shmheap_heap* heap, int64_t deadline_ms,
                  shmheap_gc_report* report);
/* Collects when used bytes reach `overhead` times the live bytes. */
int shmheap_maybe_collect(shmheap_heap* heap, double overhead,
                          shmheap_gc_report* report);
void shmheap_get_stats(const shmheap_heap* heap, shmheap_stats* out);
/* Errors: SHMHEAP_EDATALOSS naming the first bad offset. */
int shmheap_verify(const shmheap_heap* heap);
/* The start and length of the heap's mapping in this process (for tests
 * that check a view is zero-copy). */
void shmheap_mapping(const shmheap_heap* heap, const void** base,
                     size_t* bytes);

#ifdef __cplusplus
}
#endif

#endif /* SHMHEAP_CAPI_SHMHEAP_C_H_ */
