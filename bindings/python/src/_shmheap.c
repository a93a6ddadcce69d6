/* _shmheap: the CPython extension under the `shmheap` package, over the C
 * ABI (capi/shmheap_c.h) and nothing else, as the OCaml stubs are.
 *
 * Why hand-written C rather than pybind11: the C ABI already has the shape a
 * binding wants (opaque handles, integer codes, a message), so each method
 * is a few lines of argument parsing around one call; numpy's C API makes
 * the zero-copy array and sets its base in two calls; and nothing sits
 * between `heap[key]` and shmheap_get but the mapping slot (the per-call
 * overhead is a target of issue 14). It also needs no package beyond
 * python3-dev and python3-numpy.
 *
 * Objects and who holds what:
 *
 *   Heap     a shmheap_heap*. close() marks it closed (no new operation);
 *            the handle itself is closed when nothing below still uses it
 *            (the C ABI requires views, builders and scopes released first).
 *   Pin      the `base` of every array a lookup returns. It holds either a
 *            shmheap_view (from get) or a reference to the Read it came from,
 *            and a reference to its Heap; its dealloc releases the view, or
 *            lets the Read end. numpy collapses a view's base to the first
 *            non-array owner, so every slice, reshape and view of a returned
 *            array holds the same Pin: data cannot move while any of them
 *            lives.
 *   Read     a shmheap_read (one pin for many lookups). close()/__exit__
 *            stops new lookups; the scope itself ends when the last array
 *            borrowed from it is gone, so no array ever outlives its pin.
 *   Builder  the base of a reserved (writable) array: a shmheap_builder
 *            until publish, then a read scope that keeps the published data
 *            pinned for as long as the (now read-only) array lives.
 *
 * Every object is used under the GIL. Calls that may wait (create and
 * open, collect, verify, large copies) release it, counted in Heap.busy so
 * that a close() from another thread cannot free the handle under them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "capi/shmheap_c.h"

/* Copies of at least this many bytes release the GIL. */
#define RELEASE_GIL_BYTES (1 << 20)

enum { kAnonymous = 0, kNamed = 1, kFile = 2 };

/* ---------------------------------------------------------------- errors */

/* The exception class for each C ABI code, registered by shmheap/__init__.py
 * through _set_errors; g_error_base is ShmheapError (for unknown codes). */
static PyObject* g_errors[16];
static PyObject* g_error_base;

static PyObject* ErrorClass(int code) {
  PyObject* c = (code >= 0 && code < 16) ? g_errors[code] : NULL;
  if (c == NULL) c = g_error_base;
  return c != NULL ? c : PyExc_RuntimeError;
}

/* Raises the class for `code` with "what: message". */
static PyObject* RaiseMsg(int code, PyObject* message) {
  if (message != NULL) {
    PyErr_SetObject(ErrorClass(code), message);
    Py_DECREF(message);
  }
  return NULL;
}

/* Raises the class for `code` with "<op>: <the C ABI's message>". */
static PyObject* RaiseCode(int code, const char* op) {
  return RaiseMsg(code,
                  PyUnicode_FromFormat("%s: %s", op, shmheap_last_error()));
}

/* The same, naming the key: "<op> <key!r>: <message>". */
static PyObject* RaiseKey(int code, const char* op, PyObject* key) {
  return RaiseMsg(
      code, PyUnicode_FromFormat("%s %R: %s", op, key, shmheap_last_error()));
}

/* ------------------------------------------------------------ the types */

typedef struct {
  PyObject_HEAD shmheap_heap* heap; /* NULL once closed for real */
  int closed;                       /* close() was called */
  int backing;                      /* kAnonymous, kNamed, kFile */
  PyObject* name;                   /* name or path (str), or None */
  Py_ssize_t views;                 /* live Pins with a shmheap_view */
  Py_ssize_t scope_arrays;          /* live Pins borrowing from a Read */
  Py_ssize_t scopes;                /* Reads whose scope has not ended */
  Py_ssize_t builders;              /* live Builders */
  Py_ssize_t busy;                  /* calls running without the GIL */
} HeapObject;

typedef struct {
  PyObject_HEAD HeapObject* heap;
  shmheap_read* read; /* NULL once ended */
  int closed;         /* no new lookups */
  Py_ssize_t arrays;  /* live Pins borrowing from it */
} ReadObject;

typedef struct {
  PyObject_HEAD HeapObject* heap;
  shmheap_view* view; /* a get's pin, or NULL */
  ReadObject* scope;  /* a read scope's array, or NULL */
} PinObject;

typedef struct {
  PyObject_HEAD HeapObject* heap;
  shmheap_builder* builder; /* until publish */
  shmheap_read* hold;       /* after publish: keeps the data pinned */
} BuilderObject;

static PyTypeObject HeapType;
static PyTypeObject ReadType;
static PyTypeObject PinType;
static PyTypeObject BuilderType;

/* Closes the handle once close() was called and nothing uses it. */
static void MaybeFinishClose(HeapObject* h) {
  if (h->closed && h->heap != NULL && h->views == 0 && h->scopes == 0 &&
      h->builders == 0 && h->busy == 0) {
    shmheap_close(h->heap);
    h->heap = NULL;
  }
}

static int CheckOpen(HeapObject* h) {
  if (h->closed || h->heap == NULL) {
    RaiseMsg(SHMHEAP_EPRECONDITION,
             PyUnicode_FromString("the heap is closed (Heap.close)"));
    return -1;
  }
  return 0;
}

/* --------------------------------------------------------- keys, dtypes */

/* A key is a str (its UTF-8 bytes) or bytes; the borrowed pointer lives as
 * long as the key object. */
static int ParseKey(PyObject* o, shmheap_key* k) {
  Py_ssize_t n;
  const char* s;
  if (PyUnicode_Check(o)) {
    s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) return -1;
  } else if (PyBytes_Check(o)) {
    s = PyBytes_AS_STRING(o);
    n = PyBytes_GET_SIZE(o);
  } else {
    PyErr_Format(PyExc_TypeError, "a key is str or bytes, not %.200s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  k->bytes = s;
  k->len = (size_t)n;
  k->hash = 0;
  k->hashed = 0;
  return 0;
}

/* The dtype each stored kind is read as (kind order of shmheap_c.h). */
static PyArray_Descr* g_descr[SHMHEAP_NUM_KINDS];
static const int kTypenum[SHMHEAP_NUM_KINDS] = {
    NPY_FLOAT32,   NPY_FLOAT64,    NPY_INT8,  NPY_UINT8, NPY_INT16,
    NPY_UINT16,    NPY_INT32,      NPY_INT64, NPY_INT64, NPY_INT64,
    NPY_COMPLEX64, NPY_COMPLEX128, NPY_STRING};
static const char* const kKindName[SHMHEAP_NUM_KINDS] = {
    "float32",   "float64",    "int8",  "uint8", "int16",
    "uint16",    "int32",      "int64", "int",   "nativeint",
    "complex64", "complex128", "char"};

static int InitDescrs(void) {
  for (int k = 0; k < SHMHEAP_NUM_KINDS; ++k) {
    if (kTypenum[k] == NPY_STRING) {
      g_descr[k] = PyArray_DescrNewFromType(NPY_STRING);
      if (g_descr[k] == NULL) return -1;
      g_descr[k]->elsize = 1; /* S1 */
    } else {
      g_descr[k] = PyArray_DescrFromType(kTypenum[k]);
      if (g_descr[k] == NULL) return -1;
    }
  }
  return 0;
}

static PyObject* UnsupportedDtype(PyArray_Descr* d, const char* why) {
  PyErr_Format(PyExc_TypeError,
               "%R is not stored by shmheap%s; it stores float32, "
               "float64, int8, int16, int32, int64, uint8, uint16, complex64, "
               "complex128 and S1 (char), in native byte order",
               (PyObject*)d, why);
  return NULL;
}

/* The kind for dtype `d`, or -1 with TypeError naming it. */
static int KindOfDescr(PyArray_Descr* d) {
  if (d->names != NULL || d->subarray != NULL) {
    UnsupportedDtype(d, " (a structured or subarray dtype)");
    return -1;
  }
  if (d->elsize > 1 && !PyArray_ISNBO(d->byteorder)) {
    UnsupportedDtype(d,
                     " (non-native byte order: use a.astype(a.dtype."
                     "newbyteorder('=')))");
    return -1;
  }
  const int n = d->elsize;
  switch (d->kind) {
    case 'f':
      if (n == 4) return SHMHEAP_FLOAT32;
      if (n == 8) return SHMHEAP_FLOAT64;
      break;
    case 'i':
      if (n == 1) return SHMHEAP_INT8_SIGNED;
      if (n == 2) return SHMHEAP_INT16_SIGNED;
      if (n == 4) return SHMHEAP_INT32;
      if (n == 8) return SHMHEAP_INT64;
      break;
    case 'u':
      if (n == 1) return SHMHEAP_INT8_UNSIGNED;
      if (n == 2) return SHMHEAP_INT16_UNSIGNED;
      break;
    case 'c':
      if (n == 8) return SHMHEAP_COMPLEX32;
      if (n == 16) return SHMHEAP_COMPLEX64;
      break;
    case 'S':
      if (n == 1) return SHMHEAP_CHAR;
      break;
  }
  UnsupportedDtype(d, "");
  return -1;
}

/* Applies the `kind=` keyword: "int" and "nativeint" store an int64 array
 * as OCaml's int / nativeint, "char" a one-byte array as char. */
static int ApplyKindName(PyObject* name, PyArray_Descr* d, int* kind) {
  if (name == NULL || name == Py_None) return 0;
  const char* s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
  if (s == NULL) {
    PyErr_Clear();
    PyErr_SetString(PyExc_TypeError,
                    "kind is None, 'int', 'nativeint' or 'char'");
    return -1;
  }
  int want = -1, from = *kind;
  if (strcmp(s, "int") == 0 || strcmp(s, "nativeint") == 0) {
    if (from == SHMHEAP_INT64)
      want = s[0] == 'i' ? SHMHEAP_INT : SHMHEAP_NATIVEINT;
  } else if (strcmp(s, "char") == 0) {
    if (from == SHMHEAP_INT8_UNSIGNED || from == SHMHEAP_INT8_SIGNED ||
        from == SHMHEAP_CHAR) {
      want = SHMHEAP_CHAR;
    }
  } else {
    RaiseMsg(SHMHEAP_EINVALID,
             PyUnicode_FromFormat("kind %R: must be None, 'int', 'nativeint' "
                                  "or 'char'",
                                  name));
    return -1;
  }
  if (want < 0) {
    RaiseMsg(SHMHEAP_EINVALID,
             PyUnicode_FromFormat("kind %R needs %s data, not dtype %R", name,
                                  s[0] == 'c' ? "uint8, int8 or S1" : "int64",
                                  (PyObject*)d));
    return -1;
  }
  *kind = want;
  return 0;
}

/* order: None (keep the array's own: Fortran if it is Fortran-contiguous
 * and not C-contiguous), "C" or "F". Returns the layout or -1. */
static int ParseOrder(PyObject* order, int* layout, int* given) {
  *given = 0;
  *layout = SHMHEAP_C_LAYOUT;
  if (order == NULL || order == Py_None) return 0;
  const char* s = PyUnicode_Check(order) ? PyUnicode_AsUTF8(order) : NULL;
  if (s != NULL && strcmp(s, "C") == 0) {
    *given = 1;
    return 0;
  }
  if (s != NULL && strcmp(s, "F") == 0) {
    *given = 1;
    *layout = SHMHEAP_FORTRAN_LAYOUT;
    return 0;
  }
  PyErr_Clear();
  RaiseMsg(SHMHEAP_EINVALID,
           PyUnicode_FromFormat("order %R: must be None, 'C' or 'F'", order));
  return -1;
}

/* An array to store: a contiguous ndarray in the chosen layout (a copy when
 * the input is not), its kind and its dims. */
typedef struct {
  PyArrayObject* array; /* owned */
  int kind;
  int layout;
  int ndims;
  int64_t dims[SHMHEAP_MAX_DIMS];
} Input;

static int ParseInput(PyObject* obj, PyObject* kind_name, PyObject* order,
                      Input* in) {
  in->array = NULL;
  int given;
  if (ParseOrder(order, &in->layout, &given) < 0) return -1;
  PyArrayObject* a;
  if (PyArray_Check(obj)) {
    a = (PyArrayObject*)obj;
    Py_INCREF(a);
  } else {
    a = (PyArrayObject*)PyArray_FROM_O(obj);
    if (a == NULL) return -1;
  }
  in->kind = KindOfDescr(PyArray_DESCR(a));
  if (in->kind < 0 ||
      ApplyKindName(kind_name, PyArray_DESCR(a), &in->kind) < 0) {
    Py_DECREF(a);
    return -1;
  }
  if (PyArray_NDIM(a) > SHMHEAP_MAX_DIMS) {
    RaiseMsg(SHMHEAP_EINVALID,
             PyUnicode_FromFormat("an array of %d dimensions: shmheap stores "
                                  "0 to %d",
                                  PyArray_NDIM(a), SHMHEAP_MAX_DIMS));
    Py_DECREF(a);
    return -1;
  }
  if (!given) {
    in->layout = (!PyArray_IS_C_CONTIGUOUS(a) && PyArray_IS_F_CONTIGUOUS(a))
                     ? SHMHEAP_FORTRAN_LAYOUT
                     : SHMHEAP_C_LAYOUT;
  }
  const int fortran = in->layout == SHMHEAP_FORTRAN_LAYOUT;
  if (fortran ? !PyArray_IS_F_CONTIGUOUS(a) : !PyArray_IS_C_CONTIGUOUS(a)) {
    PyArrayObject* c = (PyArrayObject*)PyArray_NewCopy(
        a, fortran ? NPY_FORTRANORDER : NPY_CORDER);
    Py_DECREF(a);
    if (c == NULL) return -1;
    a = c;
  }
  in->array = a;
  in->ndims = PyArray_NDIM(a);
  for (int i = 0; i < in->ndims; ++i) in->dims[i] = PyArray_DIM(a, i);
  return 0;
}

/* ---------------------------------------------------------------- arrays */

/* An ndarray over ref's data with `base` (stolen) as its base: read-only
 * unless `writable`. */
static PyObject* MakeArray(const void* data, int ndims, const int64_t* dims,
                           int layout, PyArray_Descr* descr, PyObject* base,
                           int writable) {
  npy_intp d[SHMHEAP_MAX_DIMS];
  for (int i = 0; i < ndims; ++i) d[i] = (npy_intp)dims[i];
  int flags = writable ? NPY_ARRAY_WRITEABLE : 0;
  if (layout == SHMHEAP_FORTRAN_LAYOUT) flags |= NPY_ARRAY_F_CONTIGUOUS;
  Py_INCREF(descr); /* NewFromDescr steals it */
  PyObject* a = PyArray_NewFromDescr(&PyArray_Type, descr, ndims, d, NULL,
                                     (void*)data, flags, NULL);
  if (a == NULL) {
    Py_DECREF(base);
    return NULL;
  }
  if (PyArray_SetBaseObject((PyArrayObject*)a, base) < 0) { /* steals base */
    Py_DECREF(a);
    return NULL;
  }
  return a;
}

static PyObject* RefArray(const shmheap_ref* ref, PyObject* base) {
  return MakeArray(ref->data, ref->ndims, ref->dims, ref->layout,
                   g_descr[ref->kind], base, 0);
}

static PinObject* NewPin(HeapObject* h) {
  PinObject* p = PyObject_New(PinObject, &PinType);
  if (p == NULL) return NULL;
  Py_INCREF(h);
  p->heap = h;
  p->view = NULL;
  p->scope = NULL;
  return p;
}

static void EndRead(ReadObject* r) {
  if (r->read != NULL) {
    shmheap_read_end(r->read);
    r->read = NULL;
    r->heap->scopes--;
    MaybeFinishClose(r->heap);
  }
}

static void Pin_dealloc(PinObject* p) {
  HeapObject* h = p->heap;
  if (p->view != NULL) {
    shmheap_view_release(p->view);
    h->views--;
  }
  if (p->scope != NULL) {
    ReadObject* r = p->scope;
    r->arrays--;
    h->scope_arrays--;
    if (r->closed && r->arrays == 0) EndRead(r);
    Py_DECREF(r);
  }
  MaybeFinishClose(h);
  Py_DECREF(h);
  PyObject_Free(p);
}

/* A borrowed array from scope `r`. */
static PyObject* ScopeArray(ReadObject* r, const shmheap_ref* ref) {
  PinObject* p = NewPin(r->heap);
  if (p == NULL) return NULL;
  Py_INCREF(r);
  p->scope = r;
  r->arrays++;
  r->heap->scope_arrays++;
  return RefArray(ref, (PyObject*)p);
}

/* ------------------------------------------------------------- the Heap */

static HeapObject* NewHeap(PyTypeObject* cls, shmheap_heap* handle, int backing,
                           PyObject* name) {
  HeapObject* h = (HeapObject*)cls->tp_alloc(cls, 0);
  if (h == NULL) {
    shmheap_close(handle);
    return NULL;
  }
  h->heap = handle;
  h->backing = backing;
  h->name = name != NULL ? name : Py_None;
  Py_INCREF(h->name);
  return h;
}

static PyObject* Heap_new(PyTypeObject* cls, PyObject* args, PyObject* kw) {
  PyErr_SetString(PyExc_TypeError,
                  "use Heap.create, create_named, open_named, create_file or "
                  "open_file");
  return NULL;
}

static void Heap_dealloc(HeapObject* h) {
  /* Nothing refers to it any more, so no view, builder or scope is left. */
  if (h->heap != NULL) shmheap_close(h->heap);
  Py_XDECREF(h->name);
  Py_TYPE(h)->tp_free((PyObject*)h);
}

static int ParseU64(PyObject* o, const char* field, uint64_t* out) {
  if (o == NULL) return 0;
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    RaiseMsg(SHMHEAP_EINVALID,
             PyUnicode_FromFormat("%s must be an int in 0..2**64-1, not %R",
                                  field, o));
    return -1;
  }
  *out = v;
  return 0;
}

static int ParseOptions(PyObject* args, PyObject* kw, const char* fmt,
                        const char** name, shmheap_options* o) {
  static char* kwlist[] = {"name",        "heap_bytes",
                           "slots_log2",  "max_sessions",
                           "chunk_bytes", "min_available_bytes",
                           "seed",        "keep_keys",
                           "checksums",   NULL};
  PyObject *heap_bytes = NULL, *slots = NULL, *sessions = NULL, *chunk = NULL,
           *floor = NULL, *seed = NULL;
  int keep_keys = -1, checksums = -1;
  shmheap_options_default(o);
  char** names = name != NULL ? kwlist : kwlist + 1;
  int ok = name != NULL
               ? PyArg_ParseTupleAndKeywords(
                     args, kw, fmt, names, name, &heap_bytes, &slots, &sessions,
                     &chunk, &floor, &seed, &keep_keys, &checksums)
               : PyArg_ParseTupleAndKeywords(args, kw, fmt, names, &heap_bytes,
                                             &slots, &sessions, &chunk, &floor,
                                             &seed, &keep_keys, &checksums);
  if (!ok) return -1;
  uint64_t s = o->table_slots_log2, m = o->max_sessions;
  if (ParseU64(heap_bytes, "heap_bytes", &o->heap_bytes) < 0 ||
      ParseU64(slots, "slots_log2", &s) < 0 ||
      ParseU64(sessions, "max_sessions", &m) < 0 ||
      ParseU64(chunk, "chunk_bytes", &o->chunk_bytes) < 0 ||
      ParseU64(floor, "min_available_bytes", &o->min_available_bytes) < 0 ||
      ParseU64(seed, "seed", &o->seed) < 0) {
    return -1;
  }
  /* Out of uint32 is out of the library's range too: let it say so. */
  o->table_slots_log2 = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
  o->max_sessions = m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
  if (keep_keys >= 0) o->keep_keys = keep_keys;
  if (checksums >= 0) o->checksums = checksums;
  return 0;
}

/* Runs create/open without the GIL and wraps the handle. */
typedef int (*OpenFn)(const char* name, const shmheap_options* o,
                      shmheap_heap** out);

static int OpenNamedFn(const char* name, const shmheap_options* o,
                       shmheap_heap** out) {
  return shmheap_open_named(name, out);
}
static int OpenFileFn(const char* name, const shmheap_options* o,
                      shmheap_heap** out) {
  return shmheap_open_file(name, out);
}
static int CreateFn(const char* name, const shmheap_options* o,
                    shmheap_heap** out) {
  return shmheap_create(o, out);
}

static PyObject* OpenWith(PyTypeObject* cls, OpenFn fn, const char* op,
                          const char* name, const shmheap_options* o,
                          int backing) {
  PyObject* n = name != NULL ? PyUnicode_DecodeFSDefault(name) : NULL;
  if (name != NULL && n == NULL) return NULL;
  shmheap_heap* handle = NULL;
  int rc;
  PyThreadState* ts = PyEval_SaveThread();
  rc = fn(name, o, &handle);
  PyEval_RestoreThread(ts);
  if (rc != SHMHEAP_OK) {
    if (n == NULL) return RaiseCode(rc, op);
    RaiseMsg(rc,
             PyUnicode_FromFormat("%s %R: %s", op, n, shmheap_last_error()));
    Py_DECREF(n);
    return NULL;
  }
  PyObject* h = (PyObject*)NewHeap(cls, handle, backing, n);
  Py_XDECREF(n);
  return h;
}

static PyObject* Heap_create(PyObject* cls, PyObject* args, PyObject* kw) {
  shmheap_options o;
  if (ParseOptions(args, kw, "|$OOOOOOpp:create", NULL, &o) < 0) return NULL;
  return OpenWith((PyTypeObject*)cls, CreateFn, "Heap.create", NULL, &o,
                  kAnonymous);
}

static PyObject* Heap_create_named(PyObject* cls, PyObject* args,
                                   PyObject* kw) {
  shmheap_options o;
  const char* name;
  if (ParseOptions(args, kw, "s|$OOOOOOpp:create_named", &name, &o) < 0) {
    return NULL;
  }
  return OpenWith((PyTypeObject*)cls, shmheap_create_named, "Heap.create_named",
                  name, &o, kNamed);
}

static PyObject* Heap_create_file(PyObject* cls, PyObject* args, PyObject* kw) {
  shmheap_options o;
  const char* path;
  if (ParseOptions(args, kw, "s|$OOOOOOpp:create_file", &path, &o) < 0) {
    return NULL;
  }
  return OpenWith((PyTypeObject*)cls, shmheap_create_file, "Heap.create_file",
                  path, &o, kFile);
}

static PyObject* Heap_open_named(PyObject* cls, PyObject* args) {
  const char* name;
  if (!PyArg_ParseTuple(args, "s:open_named", &name)) return NULL;
  return OpenWith((PyTypeObject*)cls, OpenNamedFn, "Heap.open_named", name,
                  NULL, kNamed);
}

static PyObject* Heap_open_file(PyObject* cls, PyObject* args) {
  PyObject* path;
  if (!PyArg_ParseTuple(args, "O&:open_file", PyUnicode_FSConverter, &path)) {
    return NULL;
  }
  PyObject* r = OpenWith((PyTypeObject*)cls, OpenFileFn, "Heap.open_file",
                         PyBytes_AS_STRING(path), NULL, kFile);
  Py_DECREF(path);
  return r;
}

static PyObject* Heap_unlink_named(PyObject* cls, PyObject* args) {
  const char* name;
  if (!PyArg_ParseTuple(args, "s:unlink_named", &name)) return NULL;
  const int rc = shmheap_unlink_named(name);
  if (rc != SHMHEAP_OK) {
    return RaiseMsg(rc, PyUnicode_FromFormat("Heap.unlink_named '%s': %s", name,
                                             shmheap_last_error()));
  }
  Py_RETURN_NONE;
}

static PyObject* Heap_close(HeapObject* h, PyObject* unused) {
  h->closed = 1;
  MaybeFinishClose(h);
  Py_RETURN_NONE;
}

static PyObject* Heap_enter(HeapObject* h, PyObject* unused) {
  if (CheckOpen(h) < 0) return NULL;
  Py_INCREF(h);
  return (PyObject*)h;
}

static PyObject* Heap_exit(HeapObject* h, PyObject* args) {
  return Heap_close(h, NULL);
}

static PyObject* Heap_reduce(HeapObject* h, PyObject* unused) {
  if (h->backing == kAnonymous) {
    PyErr_SetString(PyExc_TypeError,
                    "an anonymous heap cannot be pickled: share it by fork "
                    "(the fork start method), or use Heap.create_named and "
                    "Heap.open_named");
    return NULL;
  }
  PyObject* opener = PyObject_GetAttrString(
      (PyObject*)Py_TYPE(h), h->backing == kNamed ? "open_named" : "open_file");
  if (opener == NULL) return NULL;
  return Py_BuildValue("(N(O))", opener, h->name);
}

/* Write: add (replace == 0) or replace. Returns 1/0 (published/replaced) or
 * -1 with an exception. */
static int Write(HeapObject* h, PyObject* key, PyObject* value,
                 PyObject* kind_name, PyObject* order, int replace) {
  if (CheckOpen(h) < 0) return -1;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return -1;
  Input in;
  if (ParseInput(value, kind_name, order, &in) < 0) return -1;
  const void* data = PyArray_DATA(in.array);
  const size_t bytes = (size_t)PyArray_NBYTES(in.array);
  int result = 0, rc;
  if (bytes >= RELEASE_GIL_BYTES) {
    h->busy++;
    PyThreadState* ts = PyEval_SaveThread();
    rc = (replace ? shmheap_replace : shmheap_add)(h->heap, &k, in.kind,
                                                   in.layout, in.ndims, in.dims,
                                                   data, bytes, &result);
    PyEval_RestoreThread(ts);
    h->busy--;
  } else {
    rc = (replace ? shmheap_replace : shmheap_add)(h->heap, &k, in.kind,
                                                   in.layout, in.ndims, in.dims,
                                                   data, bytes, &result);
  }
  Py_DECREF(in.array);
  MaybeFinishClose(h);
  if (rc != SHMHEAP_OK) {
    RaiseKey(rc, replace ? "replace" : "add", key);
    return -1;
  }
  return result;
}

static PyObject* Heap_add(HeapObject* h, PyObject* args, PyObject* kw) {
  static char* kwlist[] = {"key", "array", "kind", "order", NULL};
  PyObject *key, *value, *kind = NULL, *order = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OO:add", kwlist, &key, &value,
                                   &kind, &order)) {
    return NULL;
  }
  const int r = Write(h, key, value, kind, order, 0);
  return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject* Heap_replace(HeapObject* h, PyObject* args, PyObject* kw) {
  static char* kwlist[] = {"key", "array", "kind", "order", NULL};
  PyObject *key, *value, *kind = NULL, *order = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OO:replace", kwlist, &key,
                                   &value, &kind, &order)) {
    return NULL;
  }
  const int r = Write(h, key, value, kind, order, 1);
  return r < 0 ? NULL : PyBool_FromLong(r);
}

/* get: the array, or `dflt` (NULL: raise NotFound) when absent. */
static PyObject* Get(HeapObject* h, PyObject* key, PyObject* dflt) {
  if (CheckOpen(h) < 0) return NULL;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return NULL;
  shmheap_view* v;
  const int rc = shmheap_get(h->heap, &k, &v);
  if (rc != SHMHEAP_OK) {
    if (rc == SHMHEAP_ENOTFOUND && dflt != NULL) {
      Py_INCREF(dflt);
      return dflt;
    }
    return RaiseKey(rc, "get", key);
  }
  PinObject* p = NewPin(h);
  if (p == NULL) {
    shmheap_view_release(v);
    return NULL;
  }
  p->view = v;
  h->views++;
  shmheap_ref ref;
  shmheap_view_ref(v, &ref);
  return RefArray(&ref, (PyObject*)p);
}

static PyObject* Heap_get(HeapObject* h, PyObject* args) {
  PyObject *key, *dflt = Py_None;
  if (!PyArg_UnpackTuple(args, "get", 1, 2, &key, &dflt)) return NULL;
  return Get(h, key, dflt);
}

static PyObject* Heap_subscript(HeapObject* h, PyObject* key) {
  return Get(h, key, NULL);
}

static int Remove(HeapObject* h, PyObject* key) {
  if (CheckOpen(h) < 0) return -1;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return -1;
  const int rc = shmheap_remove(h->heap, &k);
  if (rc != SHMHEAP_OK) {
    RaiseKey(rc, "remove", key);
    return -1;
  }
  return 0;
}

static int Heap_ass_subscript(HeapObject* h, PyObject* key, PyObject* value) {
  if (value == NULL) return Remove(h, key);
  const int r = Write(h, key, value, NULL, NULL, 0);
  if (r < 0) return -1;
  if (r == 0) {
    RaiseMsg(SHMHEAP_EEXISTS,
             PyUnicode_FromFormat("heap[%R] = ...: the key already has a "
                                  "value (values are write-once: use "
                                  "Heap.replace, or Heap.add for a bool)",
                                  key));
    return -1;
  }
  return 0;
}

static PyObject* Heap_remove(HeapObject* h, PyObject* key) {
  if (Remove(h, key) < 0) return NULL;
  Py_RETURN_NONE;
}

static int Heap_contains(HeapObject* h, PyObject* key) {
  if (CheckOpen(h) < 0) return -1;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return -1;
  return shmheap_contains(h->heap, &k);
}

static PyObject* Heap_move(HeapObject* h, PyObject* args) {
  PyObject *from, *to;
  if (!PyArg_ParseTuple(args, "OO:move", &from, &to)) return NULL;
  if (CheckOpen(h) < 0) return NULL;
  shmheap_key a, b;
  if (ParseKey(from, &a) < 0 || ParseKey(to, &b) < 0) return NULL;
  const int rc = shmheap_move(h->heap, &a, &b);
  if (rc != SHMHEAP_OK) {
    return RaiseMsg(rc, PyUnicode_FromFormat("move %R -> %R: %s", from, to,
                                             shmheap_last_error()));
  }
  Py_RETURN_NONE;
}

static PyObject* Heap_hash(HeapObject* h, PyObject* key) {
  if (CheckOpen(h) < 0) return NULL;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return NULL;
  return PyLong_FromUnsignedLongLong(shmheap_hash(h->heap, k.bytes, k.len));
}

/* ---------------------------------------------------------- the builder */

static int ParseShape(PyObject* shape, int* ndims, int64_t* dims) {
  if (PyLong_Check(shape)) {
    *ndims = 1;
    dims[0] = PyLong_AsLongLong(shape);
    return dims[0] == -1 && PyErr_Occurred() ? -1 : 0;
  }
  PyObject* seq =
      PySequence_Fast(shape, "shape is an int or a sequence of ints");
  if (seq == NULL) return -1;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > SHMHEAP_MAX_DIMS) {
    Py_DECREF(seq);
    RaiseMsg(SHMHEAP_EINVALID,
             PyUnicode_FromFormat("shape %R has %zd dimensions: shmheap "
                                  "stores 0 to %d",
                                  shape, n, SHMHEAP_MAX_DIMS));
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    dims[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
    if (dims[i] == -1 && PyErr_Occurred()) {
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  *ndims = (int)n;
  return 0;
}

static PyObject* Heap_reserve(HeapObject* h, PyObject* args, PyObject* kw) {
  static char* kwlist[] = {"key", "shape", "dtype", "order", "kind", NULL};
  PyObject *key, *shape, *order = NULL, *kind_name = NULL;
  PyArray_Descr* descr = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO&|O$O:reserve", kwlist, &key,
                                   &shape, PyArray_DescrConverter, &descr,
                                   &order, &kind_name)) {
    return NULL;
  }
  PyObject* result = NULL;
  shmheap_key k;
  int ndims, layout, given, kind;
  int64_t dims[SHMHEAP_MAX_DIMS];
  if (CheckOpen(h) < 0 || ParseKey(key, &k) < 0 ||
      ParseShape(shape, &ndims, dims) < 0 ||
      ParseOrder(order, &layout, &given) < 0 ||
      (kind = KindOfDescr(descr)) < 0 ||
      ApplyKindName(kind_name, descr, &kind) < 0) {
    goto done;
  }
  shmheap_builder* b;
  const int rc = shmheap_reserve(h->heap, &k, kind, layout, ndims, dims, &b);
  if (rc != SHMHEAP_OK) {
    RaiseKey(rc, "reserve", key);
    goto done;
  }
  BuilderObject* o = PyObject_New(BuilderObject, &BuilderType);
  if (o == NULL) {
    shmheap_builder_free(b);
    goto done;
  }
  Py_INCREF(h);
  o->heap = h;
  o->builder = b;
  o->hold = NULL;
  h->builders++;
  result = MakeArray(shmheap_builder_data(b), ndims, dims, layout, descr,
                     (PyObject*)o, 1);
done:
  Py_DECREF(descr);
  return result;
}

static void Builder_dealloc(BuilderObject* b) {
  HeapObject* h = b->heap;
  if (b->builder != NULL) shmheap_builder_free(b->builder);
  if (b->hold != NULL) shmheap_read_end(b->hold);
  h->builders--;
  MaybeFinishClose(h);
  Py_DECREF(h);
  PyObject_Free(b);
}

static PyObject* Heap_publish(HeapObject* h, PyObject* a) {
  BuilderObject* b =
      PyArray_Check(a) ? (BuilderObject*)PyArray_BASE((PyArrayObject*)a) : NULL;
  if (b == NULL || Py_TYPE(b) != &BuilderType) {
    PyErr_SetString(PyExc_TypeError,
                    "publish takes the array Heap.reserve returned (not a "
                    "view of it)");
    return NULL;
  }
  if (b->heap != h) {
    return RaiseMsg(SHMHEAP_EINVALID,
                    PyUnicode_FromString("publish: the array was reserved in "
                                         "another heap"));
  }
  if (b->builder == NULL) {
    return RaiseMsg(SHMHEAP_EPRECONDITION,
                    PyUnicode_FromString("publish: already published"));
  }
  if (CheckOpen(h) < 0) return NULL;
  /* `a` becomes read-only below. Views taken of it before publish have
   * `a` as their base (numpy stops collapsing bases at a non-array) and
   * their own WRITEABLE flag, which no one can reach from here: the
   * docstring tells callers not to write through them (README, known
   * gaps). */
  shmheap_read* hold;
  int rc = shmheap_read_begin(h->heap, &hold);
  if (rc != SHMHEAP_OK) return RaiseCode(rc, "publish");
  int published = 0;
  rc = shmheap_publish(b->builder, &published);
  b->builder = NULL; /* freed by publish, whatever it returned */
  b->hold = hold;
  PyArray_CLEARFLAGS((PyArrayObject*)a, NPY_ARRAY_WRITEABLE);
  if (rc != SHMHEAP_OK) return RaiseCode(rc, "publish");
  return PyBool_FromLong(published);
}

/* --------------------------------------------------------- read scopes */

static ReadObject* NewRead(HeapObject* h) {
  if (CheckOpen(h) < 0) return NULL;
  shmheap_read* read;
  const int rc = shmheap_read_begin(h->heap, &read);
  if (rc != SHMHEAP_OK) return (ReadObject*)RaiseCode(rc, "read");
  ReadObject* r = PyObject_New(ReadObject, &ReadType);
  if (r == NULL) {
    shmheap_read_end(read);
    return NULL;
  }
  Py_INCREF(h);
  r->heap = h;
  r->read = read;
  r->closed = 0;
  r->arrays = 0;
  h->scopes++;
  return r;
}

static void Read_dealloc(ReadObject* r) {
  HeapObject* h = r->heap;
  EndRead(r);
  Py_DECREF(h);
  PyObject_Free(r);
}

static int CheckReadOpen(ReadObject* r) {
  if (r->closed || r->read == NULL) {
    RaiseMsg(SHMHEAP_EPRECONDITION,
             PyUnicode_FromString("the read scope is closed"));
    return -1;
  }
  return 0;
}

static PyObject* ReadLookup(ReadObject* r, PyObject* key, PyObject* dflt) {
  if (CheckReadOpen(r) < 0) return NULL;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return NULL;
  shmheap_ref ref;
  const int rc = shmheap_read_find(r->read, &k, &ref);
  if (rc == SHMHEAP_ENOTFOUND) {
    if (dflt != NULL) {
      Py_INCREF(dflt);
      return dflt;
    }
    return RaiseMsg(rc, PyUnicode_FromFormat("read %R: not found", key));
  }
  if (rc != SHMHEAP_OK) return RaiseKey(rc, "read", key);
  return ScopeArray(r, &ref);
}

static PyObject* Read_subscript(ReadObject* r, PyObject* key) {
  return ReadLookup(r, key, NULL);
}

static PyObject* Read_get(ReadObject* r, PyObject* args) {
  PyObject *key, *dflt = Py_None;
  if (!PyArg_UnpackTuple(args, "get", 1, 2, &key, &dflt)) return NULL;
  return ReadLookup(r, key, dflt);
}

static int Read_contains(ReadObject* r, PyObject* key) {
  if (CheckReadOpen(r) < 0) return -1;
  shmheap_key k;
  if (ParseKey(key, &k) < 0) return -1;
  shmheap_ref ref;
  return shmheap_read_find(r->read, &k, &ref) == SHMHEAP_OK;
}

/* A list with an array (or None) for each key, from one batched lookup. */
static PyObject* ReadGetMany(ReadObject* r, PyObject* keys) {
  if (CheckReadOpen(r) < 0) return NULL;
  PyObject* seq = PySequence_Fast(keys, "keys must be a sequence");
  if (seq == NULL) return NULL;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject* out = PyList_New(n);
  shmheap_key* k = PyMem_Malloc(sizeof(shmheap_key) * (size_t)(n ? n : 1));
  shmheap_ref* refs = PyMem_Malloc(sizeof(shmheap_ref) * (size_t)(n ? n : 1));
  int* found = PyMem_Malloc(sizeof(int) * (size_t)(n ? n : 1));
  if (out == NULL || k == NULL || refs == NULL || found == NULL) {
    if (out != NULL) PyErr_NoMemory();
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (ParseKey(PySequence_Fast_GET_ITEM(seq, i), &k[i]) < 0) goto fail;
  }
  shmheap_read_find_many(r->read, k, (size_t)n, refs, found);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* a = Py_None;
    if (found[i]) {
      a = ScopeArray(r, &refs[i]);
      if (a == NULL) goto fail;
    } else {
      Py_INCREF(a);
    }
    PyList_SET_ITEM(out, i, a);
  }
  PyMem_Free(k);
  PyMem_Free(refs);
  PyMem_Free(found);
  Py_DECREF(seq);
  return out;
fail:
  Py_XDECREF(out);
  PyMem_Free(k);
  PyMem_Free(refs);
  PyMem_Free(found);
  Py_DECREF(seq);
  return NULL;
}

static PyObject* Read_get_many(ReadObject* r, PyObject* keys) {
  return ReadGetMany(r, keys);
}

static PyObject* Read_close(ReadObject* r, PyObject* unused) {
  r->closed = 1;
  if (r->arrays == 0) EndRead(r);
  Py_RETURN_NONE;
}

static PyObject* Read_enter(ReadObject* r, PyObject* unused) {
  if (CheckReadOpen(r) < 0) return NULL;
  Py_INCREF(r);
  return (PyObject*)r;
}

static PyObject* Read_exit(ReadObject* r, PyObject* args) {
  return Read_close(r, NULL);
}

static PyObject* Read_get_closed(ReadObject* r, void* unused) {
  return PyBool_FromLong(r->closed);
}

static PyObject* Read_get_active(ReadObject* r, void* unused) {
  return PyBool_FromLong(r->read != NULL);
}

static PyObject* Heap_read(HeapObject* h, PyObject* unused) {
  return (PyObject*)NewRead(h);
}

static PyObject* Heap_get_many(HeapObject* h, PyObject* keys) {
  ReadObject* r = NewRead(h);
  if (r == NULL) return NULL;
  PyObject* out = ReadGetMany(r, keys);
  r->closed = 1; /* the scope ends with the last array */
  if (r->arrays == 0) EndRead(r);
  Py_DECREF(r);
  return out;
}

/* ------------------------------------------------ collection, stats, fsck */

static PyObject* Report(const shmheap_gc_report* g) {
  return Py_BuildValue("{s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:d,s:d}", "ran",
                       g->ran ? Py_True : Py_False, "bytes_before",
                       (unsigned long long)g->bytes_before, "bytes_after",
                       (unsigned long long)g->bytes_after, "blobs_moved",
                       (unsigned long long)g->blobs_moved, "bytes_moved",
                       (unsigned long long)g->bytes_moved, "live_blobs",
                       (unsigned long long)g->live_blobs, "tombstones_cleared",
                       (unsigned long long)g->tombstones_cleared, "seconds",
                       g->seconds, "handshake_seconds", g->handshake_seconds);
}

/* kFailedPrecondition from collect means this process pins the heap: say
 * what pins it through this Heap and how to let go. */
static PyObject* RaiseCollect(HeapObject* h, int rc, const char* op) {
  if (rc != SHMHEAP_EPRECONDITION) return RaiseCode(rc, op);
  return RaiseMsg(
      rc,
      PyUnicode_FromFormat(
          "%s: %s. Through this Heap object, %zd array(s) from get, %zd "
          "array(s) from read scopes or get_many, %zd open read scope(s) and "
          "%zd reserved array(s) pin the heap in this process. An array pins "
          "while it or any view of it is alive: drop them (del; gc.collect() "
          "if they sit in a reference cycle), close the read scopes, or "
          "collect from another process",
          op, shmheap_last_error(), h->views, h->scope_arrays, h->scopes,
          h->builders));
}

static PyObject* Heap_collect(HeapObject* h, PyObject* args, PyObject* kw) {
  static char* kwlist[] = {"timeout", NULL};
  PyObject* timeout = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:collect", kwlist, &timeout)) {
    return NULL;
  }
  int64_t deadline_ms = 0;
  if (timeout != Py_None) {
    const double s = PyFloat_AsDouble(timeout);
    if (s == -1.0 && PyErr_Occurred()) return NULL;
    if (!(s > 0)) {
      return RaiseMsg(SHMHEAP_EINVALID,
                      PyUnicode_FromFormat("collect: timeout must be > 0 "
                                           "seconds or None, not %R",
                                           timeout));
    }
    deadline_ms = (int64_t)(s * 1000.0);
    if (deadline_ms < 1) deadline_ms = 1;
  }
  if (CheckOpen(h) < 0) return NULL;
  shmheap_gc_report g;
  int rc;
  h->busy++;
  PyThreadState* ts = PyEval_SaveThread();
  rc = shmheap_collect(h->heap, deadline_ms, &g);
  PyEval_RestoreThread(ts);
  h->busy--;
  MaybeFinishClose(h);
  if (rc != SHMHEAP_OK) return RaiseCollect(h, rc, "collect");
  return Report(&g);
}

static PyObject* Heap_maybe_collect(HeapObject* h, PyObject* args,
                                    PyObject* kw) {
  static char* kwlist[] = {"overhead", NULL};
  double overhead = 2.0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|d:maybe_collect", kwlist,
                                   &overhead)) {
    return NULL;
  }
  if (CheckOpen(h) < 0) return NULL;
  shmheap_gc_report g;
  memset(&g, 0, sizeof g);
  int rc;
  h->busy++;
  PyThreadState* ts = PyEval_SaveThread();
  rc = shmheap_maybe_collect(h->heap, overhead, &g);
  PyEval_RestoreThread(ts);
  h->busy--;
  MaybeFinishClose(h);
  if (rc != SHMHEAP_OK) return RaiseCollect(h, rc, "maybe_collect");
  return Report(&g);
}

static PyObject* Heap_stats_dict(HeapObject* h, PyObject* unused) {
  if (CheckOpen(h) < 0) return NULL;
  shmheap_stats s;
  shmheap_get_stats(h->heap, &s);
  return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}",
                       "table_slots", (unsigned long long)s.table_slots,
                       "table_used", (unsigned long long)s.table_used,
                       "table_tombstones",
                       (unsigned long long)s.table_tombstones, "live_blobs",
                       (unsigned long long)s.live_blobs, "heap_capacity",
                       (unsigned long long)s.heap_capacity, "heap_top",
                       (unsigned long long)s.heap_top, "live_bytes",
                       (unsigned long long)s.live_bytes, "dead_bytes",
                       (unsigned long long)s.dead_bytes, "sessions",
                       (unsigned long long)s.sessions, "collections",
                       (unsigned long long)s.collections);
}

static PyObject* Heap_verify(HeapObject* h, PyObject* unused) {
  if (CheckOpen(h) < 0) return NULL;
  int rc;
  h->busy++;
  PyThreadState* ts = PyEval_SaveThread();
  rc = shmheap_verify(h->heap);
  PyEval_RestoreThread(ts);
  h->busy--;
  MaybeFinishClose(h);
  if (rc != SHMHEAP_OK) return RaiseCode(rc, "verify");
  Py_RETURN_NONE;
}

static PyObject* Heap_mapping(HeapObject* h, PyObject* unused) {
  if (CheckOpen(h) < 0) return NULL;
  const void* base;
  size_t bytes;
  shmheap_mapping(h->heap, &base, &bytes);
  return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)base,
                       (unsigned long long)bytes);
}

static PyObject* Heap_get_closed(HeapObject* h, void* unused) {
  return PyBool_FromLong(h->closed);
}

static PyObject* Heap_get_name(HeapObject* h, void* unused) {
  PyObject* n = h->backing == kNamed ? h->name : Py_None;
  Py_INCREF(n);
  return n;
}

static PyObject* Heap_get_path(HeapObject* h, void* unused) {
  PyObject* n = h->backing == kFile ? h->name : Py_None;
  Py_INCREF(n);
  return n;
}

static PyObject* Heap_get_backing(HeapObject* h, void* unused) {
  static const char* const names[] = {"anonymous", "named", "file"};
  return PyUnicode_FromString(names[h->backing]);
}

static PyObject* Heap_repr(HeapObject* h) {
  static const char* const names[] = {"anonymous", "named", "file"};
  const char* state = h->closed ? " closed" : "";
  if (h->backing == kAnonymous) {
    return PyUnicode_FromFormat("<%s anonymous%s>", Py_TYPE(h)->tp_name, state);
  }
  return PyUnicode_FromFormat("<%s %s %R%s>", Py_TYPE(h)->tp_name,
                              names[h->backing], h->name, state);
}

/* -------------------------------------------------------- type tables */

#define DOC(name, text) PyDoc_STRVAR(name, text)

DOC(create_doc,
    "create(*, heap_bytes=1 GiB, slots_log2=20, max_sessions=256, "
    "chunk_bytes=1 MiB, min_available_bytes=64 MiB, seed=0, keep_keys=True, "
    "checksums=False) -> Heap\n\n"
    "An anonymous heap (memfd), shared with processes forked afterwards\n"
    "(os.fork, multiprocessing's fork start method).\n\n"
    "Raises: InvalidArgument (an option out of its range), ResourceExhausted\n"
    "(memory, max_sessions), FailedPrecondition.");
DOC(create_named_doc,
    "create_named(name, **options) -> Heap\n\n"
    "A heap in /dev/shm under `name` (mode 0600); other processes attach\n"
    "with open_named. Options as create.\n\n"
    "Raises: InvalidArgument (name, options), AlreadyExists (the name\n"
    "exists), PermissionDenied, ResourceExhausted.");
DOC(open_named_doc,
    "open_named(name) -> Heap\n\n"
    "Attaches to the heap named `name` (works from spawn workers).\n\n"
    "Raises: InvalidArgument (name), NotFound (no such heap, or one still\n"
    "being created), PermissionDenied (another uid's), FailedPrecondition\n"
    "(not a shmheap heap, another format), DataLoss, ResourceExhausted\n"
    "(max_sessions).");
DOC(unlink_named_doc,
    "unlink_named(name) -> None\n\n"
    "Removes the name; processes attached keep their heap until they close.\n\n"
    "Raises: InvalidArgument (name), NotFound.");
DOC(create_file_doc,
    "create_file(path, **options) -> Heap\n\n"
    "A heap over a new regular file (a persistent heap). Options as create.\n\n"
    "Raises: InvalidArgument, AlreadyExists (the path exists),\n"
    "FailedPrecondition (not a regular file), ResourceExhausted.");
DOC(open_file_doc,
    "open_file(path) -> Heap\n\n"
    "Maps a heap file back (nothing in it depends on its address).\n\n"
    "Raises: NotFound, PermissionDenied, FailedPrecondition (not a regular\n"
    "file, not a heap, another format), DataLoss.");
DOC(close_doc,
    "close() -> None\n\n"
    "Closes the heap: every later operation raises FailedPrecondition. Arrays\n"
    "still alive keep the mapping (and their pins) until they are dropped;\n"
    "the handle is closed with the last of them. Idempotent.\n\n"
    "Raises: nothing.");
DOC(add_doc,
    "add(key, array, *, kind=None, order=None) -> bool\n\n"
    "Write-once: copies `array` in under `key`; True if this call published,\n"
    "False if the key already had a value (left unchanged). `order` None\n"
    "keeps a Fortran-contiguous array in Fortran layout and stores anything\n"
    "else in C layout ('C' or 'F' force one; a copy is made when needed).\n"
    "`kind` 'int' or 'nativeint' stores int64 data as OCaml's int/nativeint,\n"
    "'char' one-byte data as char.\n\n"
    "Raises: TypeError (key type, a dtype shmheap does not store),\n"
    "InvalidArgument (more than 16 dims, kind, order), AlreadyExists (another\n"
    "key with the same 64-bit hash), ResourceExhausted (table or heap full),\n"
    "DataLoss, FailedPrecondition (closed).");
DOC(replace_doc,
    "replace(key, array, *, kind=None, order=None) -> bool\n\n"
    "Publishes unconditionally; True if it replaced a value. Arrays already\n"
    "read keep the old value. Arguments as add.\n\n"
    "Raises: as add.");
DOC(get_doc,
    "get(key, default=None) -> numpy.ndarray | default\n\n"
    "A read-only, zero-copy array over the stored value, or `default` when\n"
    "the key is absent. The array's base (a Pin) pins the heap: no collection\n"
    "moves the data while the array or any view of it lives. int and\n"
    "nativeint values read as int64, char as S1.\n\n"
    "Raises: TypeError (key type), DataLoss, ResourceExhausted\n"
    "(max_sessions), FailedPrecondition (closed).");
DOC(remove_doc,
    "remove(key) -> None\n\n"
    "The same as `del heap[key]`: unlinks the value (its bytes become dead;\n"
    "arrays already read keep it until they are dropped).\n\n"
    "Raises: NotFound (a KeyError), TypeError, FailedPrecondition (closed).");
DOC(move_doc,
    "move(src, dst) -> None\n\n"
    "Moves src's value to dst, which must be absent.\n\n"
    "Raises: NotFound (src), AlreadyExists (dst), Aborted (src changed under\n"
    "the move), ResourceExhausted, FailedPrecondition (closed).");
DOC(hash_doc,
    "hash(key) -> int\n\nThe heap's 64-bit hash of the key (never 0).\n\n"
    "Raises: TypeError, FailedPrecondition (closed).");
DOC(reserve_doc,
    "reserve(key, shape, dtype, order='C', *, kind=None) -> numpy.ndarray\n\n"
    "A writable array allocated in the heap: fill it in place, then\n"
    "heap.publish(array) (with the array itself, not a view of it). Dropping "
    "it unpublished discards it. It pins the\n"
    "heap until it is dropped.\n\n"
    "Raises: TypeError (dtype, key), InvalidArgument (shape, order, kind),\n"
    "ResourceExhausted (heap full), FailedPrecondition (closed).");
DOC(publish_doc,
    "publish(array) -> bool\n\n"
    "Publishes a reserved array under its key (True if this call published,\n"
    "False if the key already had a value) and makes the array read-only;\n"
    "it stays valid (pinned) while it lives. Views taken of it before\n"
    "publish stay writable: never write through them afterwards (a\n"
    "published value must not change).\n\n"
    "Raises: TypeError (not from reserve), FailedPrecondition (published\n"
    "already; closed), AlreadyExists (a colliding\n"
    "key), ResourceExhausted, InvalidArgument (another heap's array).");
DOC(read_doc,
    "read() -> Read\n\n"
    "A read scope: one pin for many lookups (`with heap.read() as r:\n"
    "r[key], r.get(key), key in r, r.get_many(keys)`). Its arrays are\n"
    "borrowed: the scope ends when it is closed and the last of them is "
    "gone.\n\n"
    "Raises: DataLoss, ResourceExhausted (max_sessions), FailedPrecondition\n"
    "(closed).");
DOC(get_many_doc,
    "get_many(keys) -> list[numpy.ndarray | None]\n\n"
    "One batched lookup (slots and blobs prefetched) in a scope of its own:\n"
    "an array or None for each key. The arrays pin the heap together until\n"
    "the last one is dropped.\n\n"
    "Raises: TypeError (a key), DataLoss, ResourceExhausted,\n"
    "FailedPrecondition (closed).");
DOC(collect_doc,
    "collect(timeout=None) -> dict\n\n"
    "Compacts the heap in place (stop-the-world by handshake), waiting at\n"
    "most `timeout` seconds (None: 10 s) for every other process to leave its\n"
    "scope. Returns the report's fields (GcReport in shmheap).\n\n"
    "Raises: FailedPrecondition (this process holds an array, read scope or\n"
    "reserved array: it would wait for itself; the message says which),\n"
    "DeadlineExceeded (another process stayed pinned; nothing changed),\n"
    "DataLoss, InvalidArgument (timeout).");
DOC(maybe_collect_doc,
    "maybe_collect(overhead=2.0) -> dict\n\n"
    "Collects when used bytes reach `overhead` x live bytes.\n\n"
    "Raises: as collect; InvalidArgument (overhead negative or NaN).");
DOC(stats_doc,
    "_stats() -> dict\n\nThe heap's counters.\n\n"
    "Raises: FailedPrecondition (closed).");
DOC(verify_doc,
    "verify() -> None\n\n"
    "Checks the whole heap (header, every slot and blob, the heap walk).\n\n"
    "Raises: DataLoss naming the first bad offset, FailedPrecondition.");
DOC(mapping_doc,
    "mapping() -> (address, size)\n\n"
    "Where this process maps the heap (to check that arrays are zero-copy).\n\n"
    "Raises: FailedPrecondition (closed).");
DOC(enter_doc, "__enter__() -> Heap\n\nRaises: FailedPrecondition (closed).");
DOC(exit_doc, "__exit__(*exc) -> None: close().\n\nRaises: nothing.");

static PyMethodDef kHeapMethods[] = {
    {"create", (PyCFunction)(void (*)(void))Heap_create,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS, create_doc},
    {"create_named", (PyCFunction)(void (*)(void))Heap_create_named,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS, create_named_doc},
    {"open_named", (PyCFunction)Heap_open_named, METH_VARARGS | METH_CLASS,
     open_named_doc},
    {"unlink_named", (PyCFunction)Heap_unlink_named, METH_VARARGS | METH_STATIC,
     unlink_named_doc},
    {"create_file", (PyCFunction)(void (*)(void))Heap_create_file,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS, create_file_doc},
    {"open_file", (PyCFunction)Heap_open_file, METH_VARARGS | METH_CLASS,
     open_file_doc},
    {"close", (PyCFunction)Heap_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)Heap_enter, METH_NOARGS, enter_doc},
    {"__exit__", (PyCFunction)Heap_exit, METH_VARARGS, exit_doc},
    {"__reduce__", (PyCFunction)Heap_reduce, METH_NOARGS,
     "Named and file heaps pickle as open_named/open_file of their name."},
    {"add", (PyCFunction)(void (*)(void))Heap_add, METH_VARARGS | METH_KEYWORDS,
     add_doc},
    {"replace", (PyCFunction)(void (*)(void))Heap_replace,
     METH_VARARGS | METH_KEYWORDS, replace_doc},
    {"get", (PyCFunction)Heap_get, METH_VARARGS, get_doc},
    {"remove", (PyCFunction)Heap_remove, METH_O, remove_doc},
    {"move", (PyCFunction)Heap_move, METH_VARARGS, move_doc},
    {"hash", (PyCFunction)Heap_hash, METH_O, hash_doc},
    {"reserve", (PyCFunction)(void (*)(void))Heap_reserve,
     METH_VARARGS | METH_KEYWORDS, reserve_doc},
    {"publish", (PyCFunction)Heap_publish, METH_O, publish_doc},
    {"read", (PyCFunction)Heap_read, METH_NOARGS, read_doc},
    {"get_many", (PyCFunction)Heap_get_many, METH_O, get_many_doc},
    {"_collect", (PyCFunction)(void (*)(void))Heap_collect,
     METH_VARARGS | METH_KEYWORDS, collect_doc},
    {"_maybe_collect", (PyCFunction)(void (*)(void))Heap_maybe_collect,
     METH_VARARGS | METH_KEYWORDS, maybe_collect_doc},
    {"_stats", (PyCFunction)Heap_stats_dict, METH_NOARGS, stats_doc},
    {"verify", (PyCFunction)Heap_verify, METH_NOARGS, verify_doc},
    {"mapping", (PyCFunction)Heap_mapping, METH_NOARGS, mapping_doc},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef kHeapGetSet[] = {
    {"closed", (getter)Heap_get_closed, NULL, "True after close().", NULL},
    {"name", (getter)Heap_get_name, NULL, "A named heap's name, else None.",
     NULL},
    {"path", (getter)Heap_get_path, NULL, "A file heap's path, else None.",
     NULL},
    {"backing", (getter)Heap_get_backing, NULL,
     "'anonymous', 'named' or 'file'.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMappingMethods kHeapMapping = {NULL, (binaryfunc)Heap_subscript,
                                        (objobjargproc)Heap_ass_subscript};
static PySequenceMethods kHeapSequence = {.sq_contains =
                                              (objobjproc)Heap_contains};

static PyTypeObject HeapType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmheap._shmheap.Heap",
    .tp_basicsize = sizeof(HeapObject),
    .tp_dealloc = (destructor)Heap_dealloc,
    .tp_repr = (reprfunc)Heap_repr,
    .tp_as_mapping = &kHeapMapping,
    .tp_as_sequence = &kHeapSequence,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A shared-memory heap of numpy arrays (see shmheap.Heap).",
    .tp_methods = kHeapMethods,
    .tp_getset = kHeapGetSet,
    .tp_new = Heap_new,
};

static PyMethodDef kReadMethods[] = {
    {"get", (PyCFunction)Read_get, METH_VARARGS,
     "get(key, default=None) -> numpy.ndarray | default\n\nA borrowed, "
     "read-only array, valid while it lives.\n\nRaises: TypeError, "
     "FailedPrecondition (the scope is closed)."},
    {"get_many", (PyCFunction)Read_get_many, METH_O,
     "get_many(keys) -> list[numpy.ndarray | None]\n\nRaises: TypeError, "
     "FailedPrecondition (closed)."},
    {"close", (PyCFunction)Read_close, METH_NOARGS,
     "close() -> None\n\nNo further lookups; the scope ends with the last "
     "array borrowed from it.\n\nRaises: nothing."},
    {"__enter__", (PyCFunction)Read_enter, METH_NOARGS,
     "Raises: FailedPrecondition (closed)."},
    {"__exit__", (PyCFunction)Read_exit, METH_VARARGS, "close()."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef kReadGetSet[] = {
    {"closed", (getter)Read_get_closed, NULL, "True after close().", NULL},
    {"active", (getter)Read_get_active, NULL,
     "True while the scope pins the heap (until closed and its last array "
     "is gone).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMappingMethods kReadMapping = {NULL, (binaryfunc)Read_subscript, NULL};
static PySequenceMethods kReadSequence = {.sq_contains =
                                              (objobjproc)Read_contains};

static PyTypeObject ReadType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmheap._shmheap.Read",
    .tp_basicsize = sizeof(ReadObject),
    .tp_dealloc = (destructor)Read_dealloc,
    .tp_as_mapping = &kReadMapping,
    .tp_as_sequence = &kReadSequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A read scope (Heap.read): one pin for many lookups.",
    .tp_methods = kReadMethods,
    .tp_getset = kReadGetSet,
};

static PyTypeObject PinType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmheap._shmheap.Pin",
    .tp_basicsize = sizeof(PinObject),
    .tp_dealloc = (destructor)Pin_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The base of an array from a lookup: holds its pin.",
};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmheap._shmheap.Builder",
    .tp_basicsize = sizeof(BuilderObject),
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The base of a reserved array (Heap.reserve).",
};

/* ------------------------------------------------------------- module */

static PyObject* SetErrors(PyObject* m, PyObject* args) {
  PyObject *base, *table;
  if (!PyArg_ParseTuple(args, "OO!:_set_errors", &base, &PyDict_Type, &table)) {
    return NULL;
  }
  Py_INCREF(base);
  Py_XSETREF(g_error_base, base);
  for (int code = 0; code < 16; ++code) {
    PyObject* key = PyLong_FromLong(code);
    if (key == NULL) return NULL;
    PyObject* c = PyDict_GetItemWithError(table, key);
    Py_DECREF(key);
    if (c == NULL && PyErr_Occurred()) return NULL;
    Py_XINCREF(c);
    Py_XSETREF(g_errors[code], c);
  }
  Py_RETURN_NONE;
}

static double NowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* For the benchmark: ns per shmheap_get + view_ref + view_release of `key`
 * through the C ABI, over n calls, with no Python in the loop. */
static PyObject* BenchCGet(PyObject* m, PyObject* args) {
  HeapObject* h;
  PyObject* key;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "O!On:_bench_c_get", &HeapType, &h, &key, &n)) {
    return NULL;
  }
  shmheap_key k;
  if (CheckOpen(h) < 0 || ParseKey(key, &k) < 0) return NULL;
  const double t0 = NowNs();
  for (Py_ssize_t i = 0; i < n; ++i) {
    shmheap_view* v;
    const int rc = shmheap_get(h->heap, &k, &v);
    if (rc != SHMHEAP_OK) return RaiseKey(rc, "_bench_c_get", key);
    shmheap_ref ref;
    shmheap_view_ref(v, &ref);
    if (ref.data == NULL && ref.bytes != 0) break;
    shmheap_view_release(v);
  }
  return PyFloat_FromDouble((NowNs() - t0) / (double)(n > 0 ? n : 1));
}

static PyMethodDef kModuleMethods[] = {
    {"_set_errors", SetErrors, METH_VARARGS,
     "_set_errors(base, {code: class}): the exceptions raised for codes."},
    {"_bench_c_get", BenchCGet, METH_VARARGS,
     "_bench_c_get(heap, key, n) -> float: ns per C ABI get+release."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT, "_shmheap",
    "The C extension under shmheap (see the shmheap package).", -1,
    kModuleMethods};

static int AddKindNames(PyObject* m) {
  PyObject* names = PyTuple_New(SHMHEAP_NUM_KINDS);
  if (names == NULL) return -1;
  for (int k = 0; k < SHMHEAP_NUM_KINDS; ++k) {
    PyObject* s = PyUnicode_FromString(kKindName[k]);
    if (s == NULL) {
      Py_DECREF(names);
      return -1;
    }
    PyTuple_SET_ITEM(names, k, s);
  }
  return PyModule_AddObject(m, "KIND_NAMES", names);
}

PyMODINIT_FUNC PyInit__shmheap(void) {
  import_array();
  if (InitDescrs() < 0) return NULL;
  PyTypeObject* types[] = {&HeapType, &ReadType, &PinType, &BuilderType};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i) {
    if (PyType_Ready(types[i]) < 0) return NULL;
  }
  PyObject* m = PyModule_Create(&kModule);
  if (m == NULL) return NULL;
  const char* names[] = {"Heap", "Read", "Pin", "Builder"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i) {
    Py_INCREF(types[i]);
    if (PyModule_AddObject(m, names[i], (PyObject*)types[i]) < 0) {
      Py_DECREF(types[i]);
      Py_DECREF(m);
      return NULL;
    }
  }
  if (PyModule_AddIntConstant(m, "MAX_DIMS", SHMHEAP_MAX_DIMS) < 0 ||
      AddKindNames(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
