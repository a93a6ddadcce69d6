/* shmheap_stubs.c: the OCaml binding's C half (shmheap.mli is the
 * contract). It uses the C ABI (capi/shmheap_c.h) and nothing else of
 * shmheap.
 *
 * Arrays in place. An array that Shmheap.get returns is a Bigarray whose
 * data pointer is the blob's payload in the heap's mapping: no copy. Its
 * custom operations are the Bigarray runtime's (comparison, hashing and
 * marshalling, which copies out) with a finaliser of our own, the way the
 * Unix library builds its mapped-file Bigarrays (otherlibs/unix/mmap_ba.c).
 *
 * The pin. Every such array points at a Pin: a struct whose first member is
 * the Bigarray runtime's caml_ba_proxy, installed as the array's proxy from
 * the start. Bigarray.Genarray.sub_left, slice_left, reshape,
 * change_layout (and the Array1/2/3 forms) copy the custom operations and
 * share a non-NULL proxy, incrementing its refcount (runtime/bigarray.c,
 * caml_ba_update_proxy; PR#8568), so every array derived from a pinned one
 * holds a count on the same Pin. The finaliser drops the array's count;
 * the last one releases the shmheap_view (or read scope) the Pin holds, and
 * with it the C ABI's pin on the heap. Arrays are flagged
 * CAML_BA_MAPPED_FILE, so the runtime never frees their data, and never
 * takes them for unmanaged ones whose sub-arrays need no proxy.
 *
 * Emptying (Shmheap.release, the end of with_read, publish). An emptied
 * array drops its count now: its dimensions become 0 (every access raises
 * Invalid_argument), its data pointer goes to a static zeroed scratch
 * buffer (what a 0-dimensional array then reads), its proxy to NULL and its
 * flags to CAML_BA_EXTERNAL, so arrays later derived from it share nothing.
 * Arrays derived from it before keep their own counts: nothing that can
 * still read shared memory is ever unpinned.
 *
 * Heaps. A Shmheap.t is a custom block pointing at a HeapState that counts
 * references: the block's (until close or finalisation) and one per Pin
 * and builder. shmheap_close runs when the last goes, so close never pulls
 * the mapping from under a live array.
 *
 * Threads: every function here runs under OCaml's runtime lock, which
 * serialises the counters (no atomics needed, as in the Bigarray runtime
 * itself, OCaml 4.x). collect, maybe_collect and verify release the lock
 * while they run and touch no OCaml value meanwhile; the heap holds a
 * reference for them. Fork: the C ABI makes pins inherited by a child inert
 * there; the counts of this process's pins (for collect's message) start
 * again from 0 in the child (a generation bumped by pthread_atfork).
 *
 * Errors: raise Shmheap.Error (code, message) through the exception that
 * shmheap.ml registers as "shmheap.error"; codes are constructors of
 * Shmheap.code, in kCodes' order. */

#define CAML_NAME_SPACE
/* caml_ba_compare and its siblings (the Bigarray runtime's comparison,
 * hashing and marshalling) are declared under CAML_INTERNALS, as the Unix
 * library's mapped-file Bigarrays use them. */
#define CAML_INTERNALS

#include <caml/alloc.h>
#include <caml/bigarray.h>
#include <caml/callback.h>
#include <caml/custom.h>
#include <caml/fail.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>
#include <caml/signals.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capi/shmheap_c.h"

/* OCaml's Bigarray kinds and layouts are shmheap's, one to one. */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " is " #b)
SAME(CAML_BA_FLOAT32, SHMHEAP_FLOAT32);
SAME(CAML_BA_FLOAT64, SHMHEAP_FLOAT64);
SAME(CAML_BA_SINT8, SHMHEAP_INT8_SIGNED);
SAME(CAML_BA_UINT8, SHMHEAP_INT8_UNSIGNED);
SAME(CAML_BA_SINT16, SHMHEAP_INT16_SIGNED);
SAME(CAML_BA_UINT16, SHMHEAP_INT16_UNSIGNED);
SAME(CAML_BA_INT32, SHMHEAP_INT32);
SAME(CAML_BA_INT64, SHMHEAP_INT64);
SAME(CAML_BA_CAML_INT, SHMHEAP_INT);
SAME(CAML_BA_NATIVE_INT, SHMHEAP_NATIVEINT);
SAME(CAML_BA_COMPLEX32, SHMHEAP_COMPLEX32);
SAME(CAML_BA_COMPLEX64, SHMHEAP_COMPLEX64);
SAME(CAML_BA_CHAR, SHMHEAP_CHAR);
_Static_assert(SHMHEAP_NUM_KINDS == CAML_BA_CHAR + 1, "kinds");
_Static_assert((CAML_BA_FORTRAN_LAYOUT >> CAML_BA_LAYOUT_SHIFT) ==
                   SHMHEAP_FORTRAN_LAYOUT,
               "layout");
SAME(CAML_BA_C_LAYOUT, SHMHEAP_C_LAYOUT);
SAME(CAML_BA_MAX_NUM_DIMS, SHMHEAP_MAX_DIMS);
/* OCaml's int and nativeint kinds are 64-bit words here, and Bigarray
 * dimensions (intnat) are shmheap's int64_t dims. */
_Static_assert(sizeof(intnat) == sizeof(int64_t), "64-bit OCaml only");

/* Shmheap.code's constructors, in order: the C ABI's codes. */
static const int kCodes[] = {
    SHMHEAP_EINVALID,      SHMHEAP_EDEADLINE,   SHMHEAP_ENOTFOUND,
    SHMHEAP_EEXISTS,       SHMHEAP_EPERMISSION, SHMHEAP_EEXHAUSTED,
    SHMHEAP_EPRECONDITION, SHMHEAP_EABORTED,    SHMHEAP_EINTERNAL,
    SHMHEAP_EUNAVAILABLE,  SHMHEAP_EDATALOSS,
};
enum { kCodeInternalIndex = 8 };

/* Names of the kinds, as Bigarray's values (Bigarray.float32, ...). */
static const char* const kKindNames[SHMHEAP_NUM_KINDS] = {
    "float32",      "float64",        "int8_signed", "int8_unsigned",
    "int16_signed", "int16_unsigned", "int32",       "int64",
    "int",          "nativeint",      "complex32",   "complex64",
    "char",
};
static const char* const kLayoutNames[2] = {"c_layout", "fortran_layout"};

/* ---- errors ---- */

static void Raise(int code, const char* message) {
  static const value* exn = NULL;
  if (exn == NULL) exn = caml_named_value("shmheap.error");
  if (exn == NULL) caml_failwith(message); /* shmheap.ml not initialised */
  int index = kCodeInternalIndex;
  for (size_t i = 0; i < sizeof(kCodes) / sizeof(kCodes[0]); ++i) {
    if (kCodes[i] == code) index = (int)i;
  }
  value args[2];
  args[0] = Val_int(index);
  args[1] = caml_copy_string(message);
  caml_raise_with_args(*exn, 2, args);
}

/* Raises the C ABI's message for `code`, prefixed with the OCaml call. */
static void RaiseLast(int code, const char* what) {
  char message[1024];
  snprintf(message, sizeof(message), "Shmheap.%s: %s", what,
           shmheap_last_error());
  Raise(code, message);
}

/* ---- fork generations ---- */

static unsigned g_generation = 0;
static void OnForkChild(void) { ++g_generation; }

/* ---- heaps ---- */

enum { kPinView, kPinScope, kPinBuilder, kPinKinds };

typedef struct HeapState {
  shmheap_heap* heap;
  intnat refs;         /* the OCaml handle (until closed) + Pins + builders */
  unsigned generation; /* of `live` */
  intnat live[kPinKinds]; /* this process's pins on the heap, by kind */
} HeapState;

/* Brings `live` to this process: a child starts with no pins of its own. */
static HeapState* Sync(HeapState* hs) {
  if (hs->generation != g_generation) {
    hs->generation = g_generation;
    for (int i = 0; i < kPinKinds; ++i) hs->live[i] = 0;
  }
  return hs;
}

static void HeapUnref(HeapState* hs) {
  if (--hs->refs == 0) {
    shmheap_close(hs->heap);
    free(hs);
  }
}

#define Heap_state(v) (*(HeapState**)Data_custom_val(v))

static void FinalizeHeap(value v) {
  HeapState* hs = Heap_state(v);
  if (hs != NULL) {
    Heap_state(v) = NULL;
    HeapUnref(hs);
  }
}

static struct custom_operations g_heap_ops = {
    "shmheap.heap",
    FinalizeHeap,
    custom_compare_default,
    custom_hash_default,
    custom_serialize_default,
    custom_deserialize_default,
    custom_compare_ext_default,
    custom_fixed_length_default,
};

/* The heap of `v`, or Error (EPRECONDITION) once it is closed. */
static HeapState* LiveHeap(value v, const char* what) {
  HeapState* hs = Heap_state(v);
  if (hs == NULL) {
    char message[128];
    snprintf(message, sizeof(message), "Shmheap.%s: the heap is closed", what);
    Raise(SHMHEAP_EPRECONDITION, message);
  }
  return Sync(hs);
}

static value WrapHeap(int rc, shmheap_heap* heap, const char* what) {
  if (rc != SHMHEAP_OK) RaiseLast(rc, what);
  HeapState* hs = calloc(1, sizeof(HeapState));
  if (hs == NULL) {
    shmheap_close(heap);
    caml_raise_out_of_memory();
  }
  hs->heap = heap;
  hs->refs = 1;
  hs->generation = g_generation;
  value v = caml_alloc_custom(&g_heap_ops, sizeof(HeapState*), 0, 1);
  Heap_state(v) = hs;
  return v;
}

/* ---- pins and arrays ---- */

typedef struct Pin {
  struct caml_ba_proxy proxy; /* first: the arrays' shared proxy */
  int kind;                   /* kPinView or kPinScope */
  void* handle;               /* shmheap_view* or shmheap_read* */
  HeapState* hs;
  unsigned generation;
} Pin;

static Pin* NewPin(HeapState* hs, int kind, void* handle, void* data,
                   size_t bytes) {
  Pin* p = malloc(sizeof(Pin));
  if (p == NULL) return NULL;
  p->proxy.refcount = 1;
  p->proxy.data = data;
  p->proxy.size = bytes;
  p->kind = kind;
  p->handle = handle;
  p->hs = hs;
  p->generation = g_generation;
  ++hs->refs;
  ++Sync(hs)->live[kind];
  return p;
}

static void PinUnref(Pin* p) {
  if (--p->proxy.refcount != 0) return;
  HeapState* hs = p->hs;
  if (p->kind == kPinView) {
    shmheap_view_release(p->handle);
  } else {
    shmheap_read_end(p->handle);
  }
  if (p->generation == g_generation) --Sync(hs)->live[p->kind];
  free(p);
  HeapUnref(hs);
}

static void FinalizeArray(value v) {
  struct caml_ba_array* b = Caml_ba_array_val(v);
  if (b->proxy != NULL) {
    Pin* p = (Pin*)b->proxy;
    b->proxy = NULL;
    PinUnref(p);
  }
}

static struct custom_operations g_array_ops = {
    "_bigarr02",
    FinalizeArray,
    caml_ba_compare,
    caml_ba_hash,
    caml_ba_serialize,
    caml_ba_deserialize,
    custom_compare_ext_default,
    custom_fixed_length_default,
};

/* A Bigarray over `r` that holds one count on `p`, which the caller took.
 * Each array counts 1/1000 of the GC's budget for outside resources, so
 * that about every thousand arrays dropped without release, a collection
 * finalises them and their pins go. */
static value WrapArray(Pin* p, const shmheap_ref* r) {
  const int nd = r->ndims;
  value v = caml_alloc_custom(&g_array_ops,
                              SIZEOF_BA_ARRAY + nd * sizeof(intnat), 1, 1000);
  struct caml_ba_array* b = Caml_ba_array_val(v);
  b->data = (void*)r->data;
  b->num_dims = nd;
  b->flags =
      r->kind | (r->layout << CAML_BA_LAYOUT_SHIFT) | CAML_BA_MAPPED_FILE;
  b->proxy = &p->proxy;
  for (int i = 0; i < nd; ++i) b->dim[i] = r->dims[i];
  return v;
}

/* What an emptied 0-dimensional array reads. */
static _Alignas(16) unsigned char g_scratch[16];

CAMLprim value shm_ml_release(value v) {
  if (!Is_block(v) || Tag_val(v) != Custom_tag ||
      Custom_ops_val(v) != &g_array_ops) {
    caml_invalid_argument("Shmheap.release: not an array from Shmheap");
  }
  struct caml_ba_array* b = Caml_ba_array_val(v);
  if (b->proxy == NULL) return Val_unit;
  Pin* p = (Pin*)b->proxy;
  b->proxy = NULL;
  b->flags &= ~CAML_BA_MANAGED_MASK; /* CAML_BA_EXTERNAL */
  b->data = g_scratch;
  for (intnat i = 0; i < b->num_dims; ++i) b->dim[i] = 0;
  PinUnref(p);
  return Val_unit;
}

/* Whether `v` is an array that still holds a pin (for tests). */
CAMLprim value shm_ml_is_pinned(value v) {
  return Val_bool(Is_block(v) && Tag_val(v) == Custom_tag &&
                  Custom_ops_val(v) == &g_array_ops &&
                  Caml_ba_array_val(v)->proxy != NULL);
}

CAMLprim value shm_ml_address(value v) {
  return caml_copy_nativeint((intnat)Caml_ba_data_val(v));
}

/* ---- keys and checks ---- */

/* `vkey` is the key's bytes, `vhash` None or Some of the caller's hash.
 * The bytes stay in place until the next OCaml allocation. */
static shmheap_key Key(value vkey, value vhash) {
  shmheap_key k;
  k.bytes = String_val(vkey);
  k.len = caml_string_length(vkey);
  k.hashed = Is_block(vhash);
  k.hash = k.hashed ? (uint64_t)Int64_val(Field(vhash, 0)) : 0;
  return k;
}

/* Raises Error (EINVALID) unless `r` holds `kind` in `layout`. */
static void CheckType(const shmheap_ref* r, value vkind, value vlayout,
                      const shmheap_key* key, const char* what,
                      void (*undo)(void*), void* undo_arg) {
  const int kind = Int_val(vkind);
  const int layout = Int_val(vlayout);
  if (r->kind == kind && r->layout == layout) return;
  char message[512];
  const int shown = key->len > 64 ? 64 : (int)key->len;
  snprintf(message, sizeof(message),
           "Shmheap.%s \"%.*s%s\": stored as %s in %s, asked for %s in %s "
           "(a mismatch is never reinterpreted)",
           what, shown, key->bytes, key->len > 64 ? "..." : "",
           kKindNames[r->kind], kLayoutNames[r->layout], kKindNames[kind],
           kLayoutNames[layout]);
  undo(undo_arg);
  Raise(SHMHEAP_EINVALID, message);
}

static void ReleaseView(void* view) { shmheap_view_release(view); }
static void Nothing(void* unused) { (void)unused; }

/* ---- heaps: create, open, close ---- */

/* A name or path for the C ABI: no NUL inside. */
static const char* CString(value v, const char* what) {
  if (!caml_string_is_c_safe(v)) {
    char message[128];
    snprintf(message, sizeof(message),
             "Shmheap.%s: the name contains a NUL byte", what);
    Raise(SHMHEAP_EINVALID, message);
  }
  return String_val(v);
}

static void ToOptions(value vo, shmheap_options* o) {
  /* Fields the OCaml record does not carry (max_table_slots_log2) keep
   * their defaults. */
  shmheap_options_default(o);
  o->heap_bytes = (uint64_t)Long_val(Field(vo, 0));
  o->table_slots_log2 = (uint32_t)Long_val(Field(vo, 1));
  o->max_sessions = (uint32_t)Long_val(Field(vo, 2));
  o->chunk_bytes = (uint64_t)Long_val(Field(vo, 3));
  o->min_available_bytes = (uint64_t)Long_val(Field(vo, 4));
  o->seed = (uint64_t)Int64_val(Field(vo, 5));
  o->keep_keys = Bool_val(Field(vo, 6));
  o->checksums = Bool_val(Field(vo, 7));
}

CAMLprim value shm_ml_init(value unit) {
  static int done = 0;
  if (!done) {
    done = 1;
    pthread_atfork(NULL, NULL, OnForkChild);
  }
  return Val_unit;
}

CAMLprim value shm_ml_default_options(value unit) {
  CAMLparam1(unit);
  CAMLlocal2(r, seed);
  shmheap_options o;
  shmheap_options_default(&o);
  seed = caml_copy_int64((int64_t)o.seed);
  r = caml_alloc_tuple(8);
  Store_field(r, 0, Val_long(o.heap_bytes));
  Store_field(r, 1, Val_long(o.table_slots_log2));
  Store_field(r, 2, Val_long(o.max_sessions));
  Store_field(r, 3, Val_long(o.chunk_bytes));
  Store_field(r, 4, Val_long(o.min_available_bytes));
  Store_field(r, 5, seed);
  Store_field(r, 6, Val_bool(o.keep_keys));
  Store_field(r, 7, Val_bool(o.checksums));
  CAMLreturn(r);
}

CAMLprim value shm_ml_create(value vo) {
  shmheap_options o;
  ToOptions(vo, &o);
  shmheap_heap* heap;
  int rc = shmheap_create(&o, &heap);
  return WrapHeap(rc, heap, "create");
}

typedef int (*CreateAt)(const char*, const shmheap_options*, shmheap_heap**);
typedef int (*OpenAt)(const char*, shmheap_heap**);

static value Create(CreateAt create, value vname, value vo, const char* what) {
  shmheap_options o;
  ToOptions(vo, &o);
  shmheap_heap* heap;
  int rc = create(CString(vname, what), &o, &heap);
  return WrapHeap(rc, heap, what);
}

static value Open(OpenAt open, value vname, const char* what) {
  shmheap_heap* heap;
  int rc = open(CString(vname, what), &heap);
  return WrapHeap(rc, heap, what);
}

CAMLprim value shm_ml_create_named(value vname, value vo) {
  return Create(shmheap_create_named, vname, vo, "create_named");
}

CAMLprim value shm_ml_open_named(value vname) {
  return Open(shmheap_open_named, vname, "open_named");
}

CAMLprim value shm_ml_create_file(value vpath, value vo) {
  return Create(shmheap_create_file, vpath, vo, "create_file");
}

CAMLprim value shm_ml_open_file(value vpath) {
  return Open(shmheap_open_file, vpath, "open_file");
}

CAMLprim value shm_ml_unlink_named(value vname) {
  int rc = shmheap_unlink_named(CString(vname, "unlink_named"));
  if (rc != SHMHEAP_OK) RaiseLast(rc, "unlink_named");
  return Val_unit;
}

CAMLprim value shm_ml_close(value vt) {
  FinalizeHeap(vt);
  return Val_unit;
}

CAMLprim value shm_ml_hash(value vt, value vkey) {
  HeapState* hs = LiveHeap(vt, "hash");
  uint64_t h =
      shmheap_hash(hs->heap, String_val(vkey), caml_string_length(vkey));
  return caml_copy_int64((int64_t)h);
}

/* The number of pins this process holds on the heap (for tests). */
CAMLprim value shm_ml_pins(value vt) {
  HeapState* hs = LiveHeap(vt, "pins");
  return Val_long(hs->live[kPinView] + hs->live[kPinScope] +
                  hs->live[kPinBuilder]);
}

CAMLprim value shm_ml_mapping(value vt) {
  CAMLparam1(vt);
  CAMLlocal2(r, base);
  HeapState* hs = LiveHeap(vt, "mapping");
  const void* start;
  size_t bytes;
  shmheap_mapping(hs->heap, &start, &bytes);
  base = caml_copy_nativeint((intnat)start);
  r = caml_alloc_tuple(2);
  Store_field(r, 0, base);
  Store_field(r, 1, Val_long(bytes));
  CAMLreturn(r);
}

/* ---- writes ---- */

CAMLprim value shm_ml_add(value vt, value vkey, value vhash, value va,
                          value vreplace) {
  HeapState* hs = LiveHeap(vt, Bool_val(vreplace) ? "replace" : "add");
  const shmheap_key key = Key(vkey, vhash);
  const struct caml_ba_array* b = Caml_ba_array_val(va);
  const int kind = (int)(b->flags & CAML_BA_KIND_MASK);
  const int layout =
      (int)((b->flags & CAML_BA_LAYOUT_MASK) >> CAML_BA_LAYOUT_SHIFT);
  const size_t bytes = caml_ba_byte_size((struct caml_ba_array*)b);
  int published = 0;
  int rc =
      Bool_val(vreplace)
          ? shmheap_replace(hs->heap, &key, kind, layout, (int)b->num_dims,
                            (const int64_t*)b->dim, b->data, bytes, &published)
          : shmheap_add(hs->heap, &key, kind, layout, (int)b->num_dims,
                        (const int64_t*)b->dim, b->data, bytes, &published);
  if (rc != SHMHEAP_OK) RaiseLast(rc, Bool_val(vreplace) ? "replace" : "add");
  return Val_bool(published);
}

CAMLprim value shm_ml_remove(value vt, value vkey, value vhash) {
  HeapState* hs = LiveHeap(vt, "remove");
  const shmheap_key key = Key(vkey, vhash);
  int rc = shmheap_remove(hs->heap, &key);
  if (rc == SHMHEAP_ENOTFOUND) return Val_false;
  if (rc != SHMHEAP_OK) RaiseLast(rc, "remove");
  return Val_true;
}

CAMLprim value shm_ml_mem(value vt, value vkey, value vhash) {
  HeapState* hs = LiveHeap(vt, "mem");
  const shmheap_key key = Key(vkey, vhash);
  return Val_bool(shmheap_contains(hs->heap, &key));
}

CAMLprim value shm_ml_move(value vt, value vfrom, value vfrom_hash, value vto,
                           value vto_hash) {
  HeapState* hs = LiveHeap(vt, "move");
  const shmheap_key from = Key(vfrom, vfrom_hash);
  const shmheap_key to = Key(vto, vto_hash);
  int rc = shmheap_move(hs->heap, &from, &to);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "move");
  return Val_unit;
}

/* ---- get ---- */

CAMLprim value shm_ml_get(value vt, value vkey, value vhash, value vkind,
                          value vlayout) {
  CAMLparam5(vt, vkey, vhash, vkind, vlayout);
  CAMLlocal1(array);
  HeapState* hs = LiveHeap(vt, "get");
  const shmheap_key key = Key(vkey, vhash);
  shmheap_view* view;
  int rc = shmheap_get(hs->heap, &key, &view);
  if (rc == SHMHEAP_ENOTFOUND) CAMLreturn(Val_none);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "get");
  shmheap_ref r;
  shmheap_view_ref(view, &r);
  CheckType(&r, vkind, vlayout, &key, "get", ReleaseView, view);
  Pin* p = NewPin(hs, kPinView, view, (void*)r.data, r.bytes);
  if (p == NULL) {
    shmheap_view_release(view);
    caml_raise_out_of_memory();
  }
  array = WrapArray(p, &r);
  CAMLreturn(caml_alloc_some(array));
}

/* ---- read scopes ---- */

typedef struct Reader {
  Pin* pin; /* NULL once the scope's own count is dropped */
  HeapState* hs;
} Reader;

#define Reader_val(v) ((Reader*)Data_custom_val(v))

/* Drops the scope's own count; true if arrays still hold the pin. */
static int EndReader(Reader* r) {
  Pin* p = r->pin;
  if (p == NULL) return 0;
  r->pin = NULL;
  const int held = p->proxy.refcount > 1;
  PinUnref(p);
  return held;
}

static void FinalizeReader(value v) { (void)EndReader(Reader_val(v)); }

static struct custom_operations g_reader_ops = {
    "shmheap.reader",           FinalizeReader,
    custom_compare_default,     custom_hash_default,
    custom_serialize_default,   custom_deserialize_default,
    custom_compare_ext_default, custom_fixed_length_default,
};

CAMLprim value shm_ml_read_begin(value vt) {
  CAMLparam1(vt);
  CAMLlocal1(v);
  HeapState* hs = LiveHeap(vt, "with_read");
  v = caml_alloc_custom(&g_reader_ops, sizeof(Reader), 0, 1);
  Reader_val(v)->pin = NULL;
  Reader_val(v)->hs = hs;
  shmheap_read* read;
  int rc = shmheap_read_begin(hs->heap, &read);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "with_read");
  Pin* p = NewPin(hs, kPinScope, read, NULL, 0);
  if (p == NULL) {
    shmheap_read_end(read);
    caml_raise_out_of_memory();
  }
  Reader_val(v)->pin = p;
  CAMLreturn(v);
}

CAMLprim value shm_ml_read_end(value vr) {
  return Val_bool(EndReader(Reader_val(vr)));
}

CAMLprim value shm_ml_find(value vr, value vkey, value vhash, value vkind,
                           value vlayout) {
  CAMLparam5(vr, vkey, vhash, vkind, vlayout);
  CAMLlocal1(array);
  Pin* p = Reader_val(vr)->pin;
  if (p == NULL) {
    Raise(SHMHEAP_EPRECONDITION, "Shmheap.find: the with_read scope has ended");
  }
  const shmheap_key key = Key(vkey, vhash);
  shmheap_ref r;
  if (shmheap_read_find(p->handle, &key, &r) != SHMHEAP_OK) {
    CAMLreturn(Val_none);
  }
  CheckType(&r, vkind, vlayout, &key, "find", Nothing, NULL);
  ++p->proxy.refcount;
  array = WrapArray(p, &r);
  CAMLreturn(caml_alloc_some(array));
}

/* ---- builders ---- */

/* Malloc'd, so that `ref.dims` (pointing at `dims`) never moves. */
typedef struct Builder {
  shmheap_builder* builder; /* NULL once published or discarded */
  HeapState* hs;
  unsigned generation;
  shmheap_ref ref; /* the reserved array */
  int64_t dims[SHMHEAP_MAX_DIMS];
} Builder;

#define Builder_val(v) (*(Builder**)Data_custom_val(v))

/* Forgets the builder once published or freed. */
static void DoneBuilder(Builder* b) {
  HeapState* hs = b->hs;
  b->builder = NULL;
  if (b->generation == g_generation) --Sync(hs)->live[kPinBuilder];
  HeapUnref(hs);
}

static void FinalizeBuilder(value v) {
  Builder* b = Builder_val(v);
  if (b == NULL) return;
  if (b->builder != NULL) {
    shmheap_builder_free(b->builder);
    DoneBuilder(b);
  }
  free(b);
  Builder_val(v) = NULL;
}

static struct custom_operations g_builder_ops = {
    "shmheap.builder",          FinalizeBuilder,
    custom_compare_default,     custom_hash_default,
    custom_serialize_default,   custom_deserialize_default,
    custom_compare_ext_default, custom_fixed_length_default,
};

CAMLprim value shm_ml_reserve(value vt, value vkey, value vhash, value vkind,
                              value vlayout, value vdims) {
  CAMLparam5(vt, vkey, vhash, vkind, vlayout);
  CAMLxparam1(vdims);
  CAMLlocal1(v);
  HeapState* hs = LiveHeap(vt, "reserve");
  const mlsize_t nd = Wosize_val(vdims);
  if (nd > SHMHEAP_MAX_DIMS) {
    Raise(SHMHEAP_EINVALID, "Shmheap.reserve: more than 16 dimensions");
  }
  v = caml_alloc_custom(&g_builder_ops, sizeof(Builder*), 0, 1);
  Builder_val(v) = NULL;
  Builder* b = calloc(1, sizeof(Builder));
  if (b == NULL) caml_raise_out_of_memory();
  Builder_val(v) = b; /* the finaliser frees it from here on */
  for (mlsize_t i = 0; i < nd; ++i) b->dims[i] = Long_val(Field(vdims, i));
  const shmheap_key key = Key(vkey, vhash);
  shmheap_builder* builder;
  int rc = shmheap_reserve(hs->heap, &key, Int_val(vkind), Int_val(vlayout),
                           (int)nd, b->dims, &builder);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "reserve");
  b->builder = builder;
  b->hs = hs;
  b->generation = g_generation;
  b->ref.data = shmheap_builder_data(builder);
  b->ref.dims = b->dims;
  b->ref.ndims = (int)nd;
  b->ref.kind = Int_val(vkind);
  b->ref.layout = Int_val(vlayout);
  b->ref.bytes = shmheap_builder_bytes(builder);
  ++hs->refs;
  ++hs->live[kPinBuilder];
  CAMLreturn(v);
}

CAMLprim value shm_ml_reserve_byte(value* argv, int argn) {
  (void)argn;
  return shm_ml_reserve(argv[0], argv[1], argv[2], argv[3], argv[4], argv[5]);
}

static Builder* LiveBuilder(value vb, const char* what) {
  Builder* b = Builder_val(vb);
  if (b == NULL || b->builder == NULL) {
    char message[128];
    snprintf(message, sizeof(message),
             "Shmheap.%s: the builder is already published or discarded", what);
    Raise(SHMHEAP_EPRECONDITION, message);
  }
  return b;
}

/* The reserved array, pinned by a read scope of its own, so that it (and
 * what is derived from it) stays pinned whatever becomes of the builder. */
CAMLprim value shm_ml_builder_data(value vb) {
  CAMLparam1(vb);
  CAMLlocal1(array);
  Builder* b = LiveBuilder(vb, "builder_data");
  shmheap_read* read;
  int rc = shmheap_read_begin(b->hs->heap, &read);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "builder_data");
  Pin* p = NewPin(b->hs, kPinScope, read, (void*)b->ref.data, b->ref.bytes);
  if (p == NULL) {
    shmheap_read_end(read);
    caml_raise_out_of_memory();
  }
  array = WrapArray(p, &b->ref);
  CAMLreturn(array);
}

CAMLprim value shm_ml_publish(value vb) {
  Builder* b = LiveBuilder(vb, "publish");
  int published = 0;
  int rc = shmheap_publish(b->builder, &published); /* frees it */
  DoneBuilder(b);
  if (rc != SHMHEAP_OK) RaiseLast(rc, "publish");
  return Val_bool(published);
}

CAMLprim value shm_ml_discard(value vb) {
  Builder* b = Builder_val(vb);
  if (b != NULL && b->builder != NULL) {
    shmheap_builder_free(b->builder);
    DoneBuilder(b);
  }
  return Val_unit;
}

/* ---- collection, stats, verify ---- */

static value Report(const shmheap_gc_report* g) {
  CAMLparam0();
  CAMLlocal3(r, seconds, handshake);
  seconds = caml_copy_double(g->seconds);
  handshake = caml_copy_double(g->handshake_seconds);
  r = caml_alloc_tuple(9);
  Store_field(r, 0, Val_bool(g->ran));
  Store_field(r, 1, Val_long(g->bytes_before));
  Store_field(r, 2, Val_long(g->bytes_after));
  Store_field(r, 3, Val_long(g->blobs_moved));
  Store_field(r, 4, Val_long(g->bytes_moved));
  Store_field(r, 5, Val_long(g->live_blobs));
  Store_field(r, 6, Val_long(g->tombstones_cleared));
  Store_field(r, 7, seconds);
  Store_field(r, 8, handshake);
  CAMLreturn(r);
}

/* Formats a blocking call's error; for collect refused because this
 * process is pinned, says by what and how to release it. */
static void FormatError(char* message, size_t size, int rc, HeapState* hs,
                        const char* what, int collecting) {
  const intnat pins =
      hs->live[kPinView] + hs->live[kPinScope] + hs->live[kPinBuilder];
  if (!collecting || rc != SHMHEAP_EPRECONDITION || pins == 0) {
    snprintf(message, size, "Shmheap.%s: %s", what, shmheap_last_error());
    return;
  }
  snprintf(message, size,
           "Shmheap.%s: %s. In this process %ld array(s) from get, %ld "
           "with_read scope(s) or builder_data array(s) and %ld unpublished "
           "builder(s) pin the heap. An array pins until it is released "
           "(Shmheap.release, the end of with_read, publish) or unreachable "
           "and finalised by the GC, with every sub-array and slice taken "
           "from it: drop them, then call Gc.full_major (), or collect from "
           "another process",
           what, shmheap_last_error(), (long)hs->live[kPinView],
           (long)hs->live[kPinScope], (long)hs->live[kPinBuilder]);
}

/* Ends a call that ran without the runtime lock, holding a reference on
 * `hs` (so that close from another thread waited): drops it, raises. */
static void EndBlocking(HeapState* hs, int rc, const char* what,
                        int collecting) {
  char message[1536];
  if (rc != SHMHEAP_OK) {
    FormatError(message, sizeof(message), rc, Sync(hs), what, collecting);
  }
  HeapUnref(hs);
  if (rc != SHMHEAP_OK) Raise(rc, message);
}

/* collect (overhead < 0) or maybe_collect, without the runtime lock. */
static value Collect(value vt, const char* what, int64_t deadline_ms,
                     double overhead) {
  HeapState* hs = LiveHeap(vt, what);
  shmheap_gc_report g;
  ++hs->refs;
  caml_enter_blocking_section();
  int rc = overhead < 0 ? shmheap_collect(hs->heap, deadline_ms, &g)
                        : shmheap_maybe_collect(hs->heap, overhead, &g);
  caml_leave_blocking_section();
  EndBlocking(hs, rc, what, 1);
  return Report(&g);
}

CAMLprim value shm_ml_collect(value vt, value vdeadline_ms) {
  return Collect(vt, "collect", Long_val(vdeadline_ms), -1);
}

CAMLprim value shm_ml_maybe_collect(value vt, value voverhead) {
  if (!(Double_val(voverhead) >= 0)) {
    Raise(SHMHEAP_EINVALID, "Shmheap.maybe_collect: overhead must be >= 0");
  }
  return Collect(vt, "maybe_collect", 0, Double_val(voverhead));
}

CAMLprim value shm_ml_stats(value vt) {
  CAMLparam1(vt);
  CAMLlocal1(r);
  HeapState* hs = LiveHeap(vt, "stats");
  shmheap_stats s;
  shmheap_get_stats(hs->heap, &s);
  r = caml_alloc_tuple(10);
  Store_field(r, 0, Val_long(s.table_slots));
  Store_field(r, 1, Val_long(s.table_used));
  Store_field(r, 2, Val_long(s.table_tombstones));
  Store_field(r, 3, Val_long(s.live_blobs));
  Store_field(r, 4, Val_long(s.heap_capacity));
  Store_field(r, 5, Val_long(s.heap_top));
  Store_field(r, 6, Val_long(s.live_bytes));
  Store_field(r, 7, Val_long(s.dead_bytes));
  Store_field(r, 8, Val_long(s.sessions));
  Store_field(r, 9, Val_long(s.collections));
  CAMLreturn(r);
}

CAMLprim value shm_ml_verify(value vt) {
  HeapState* hs = LiveHeap(vt, "verify");
  ++hs->refs;
  caml_enter_blocking_section();
  int rc = shmheap_verify(hs->heap);
  caml_leave_blocking_section();
  EndBlocking(hs, rc, "verify", 0);
  return Val_unit;
}
