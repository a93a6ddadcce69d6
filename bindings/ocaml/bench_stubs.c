/* bench.ml's baseline inside its own process: the C ABI's get (the
 * binding's floor: shmheap_get, shmheap_view_ref, the same four-accumulator
 * sum, shmheap_view_release), timed in batches that bench.ml interleaves
 * with its OCaml batches, so that both see the same machine load. The heap
 * is a C ABI heap of its own. */

#define CAML_NAME_SPACE
#include <caml/alloc.h>
#include <caml/fail.h>
#include <caml/mlvalues.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "capi/shmheap_c.h"

static shmheap_heap* g_heap = NULL;

static shmheap_key Key(char* buffer, size_t size, long n) {
  shmheap_key k;
  k.len = (size_t)snprintf(buffer, size, "c:%ld", n);
  k.bytes = buffer;
  k.hash = 0;
  k.hashed = 0;
  return k;
}

/* Publishes "c:<n>", n float64 (i mod 1000), creating the heap first. */
CAMLprim value bench_c_setup(value vn) {
  const long n = Long_val(vn);
  if (g_heap == NULL) {
    shmheap_options o;
    shmheap_options_default(&o);
    o.heap_bytes = (uint64_t)1 << 30;
    o.table_slots_log2 = 8;
    if (shmheap_create(&o, &g_heap) != SHMHEAP_OK) {
      caml_failwith(shmheap_last_error());
    }
  }
  double* v = malloc((size_t)n * sizeof(double));
  if (v == NULL) caml_raise_out_of_memory();
  for (long i = 0; i < n; ++i) v[i] = (double)(i % 1000);
  char buffer[32];
  const shmheap_key k = Key(buffer, sizeof(buffer), n);
  const int64_t dims[1] = {n};
  int published;
  int rc = shmheap_add(g_heap, &k, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims,
                       v, (size_t)n * sizeof(double), &published);
  free(v);
  if (rc != SHMHEAP_OK) caml_failwith(shmheap_last_error());
  return Val_unit;
}

static double Sum(const double* a, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[i];
    s1 += a[i + 1];
    s2 += a[i + 2];
    s3 += a[i + 3];
  }
  for (; i < n; ++i) s0 += a[i];
  return s0 + s1 + s2 + s3;
}

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Seconds for `calls` gets of "c:<n>", each reading every element. */
CAMLprim value bench_c_get(value vn, value vcalls) {
  const long n = Long_val(vn);
  const long calls = Long_val(vcalls);
  char buffer[32];
  const shmheap_key k = Key(buffer, sizeof(buffer), n);
  volatile double sink = 0;
  const double t0 = Now();
  for (long c = 0; c < calls; ++c) {
    shmheap_view* view;
    if (shmheap_get(g_heap, &k, &view) != SHMHEAP_OK) {
      caml_failwith(shmheap_last_error());
    }
    shmheap_ref r;
    shmheap_view_ref(view, &r);
    sink = sink + Sum(r.data, r.bytes / sizeof(double));
    shmheap_view_release(view);
  }
  return caml_copy_double(Now() - t0);
}
