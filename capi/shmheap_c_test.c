/* The C ABI (capi/shmheap_c.h) used from C, as a binding would.
 *
 * What it proves: every function works from a C11 translation unit; errors
 * come back as the documented codes with a message; a view and a read-scope
 * ref are zero-copy (their data lies inside the heap's mapping) and hold
 * every element written; 8 forked children each publish arrays of all 13
 * kinds and the parent reads every element of every one back; a view pins
 * the heap (collect from the same process is refused while it lives); a
 * builder fills in place; a batched add reports each item's outcome and
 * forked children's overlapping batches publish every key once; collect,
 * stats, verify, named heaps and files work; wait_for returns, times out
 * and is woken across fork. A failed check prints its line and
 * exits 1. */

/* nanosleep, in strict C11. */
#define _POSIX_C_SOURCE 200809L

#include "capi/shmheap_c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, \
              __LINE__, #cond, shmheap_last_error());                        \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

static shmheap_key Key(const char* s) {
  shmheap_key k;
  k.bytes = s;
  k.len = strlen(s);
  k.hash = 0;
  k.hashed = 0;
  return k;
}

/* Element j of the array of (worker, kind) as one byte pattern. */
static unsigned char Byte(int worker, int kind, size_t j) {
  return (unsigned char)(worker * 31 + kind * 7 + j * 13 + 1);
}

static int InsideMapping(const shmheap_heap* heap, const void* p, size_t n) {
  const void* base;
  size_t bytes;
  shmheap_mapping(heap, &base, &bytes);
  const char* b = (const char*)base;
  return (const char*)p >= b && (const char*)p + n <= b + bytes;
}

static void TestErrors(void) {
  shmheap_options o;
  shmheap_options_default(&o);
  o.table_slots_log2 = 99;
  shmheap_heap* heap = NULL;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_EINVALID);
  CHECK(heap == NULL);
  CHECK(strstr(shmheap_last_error(), "table_slots_log2") != NULL);
  CHECK(shmheap_open_named("shmheap-c-test-no-such-heap", &heap) ==
        SHMHEAP_ENOTFOUND);
  CHECK(shmheap_element_size(SHMHEAP_COMPLEX64) == 16);
  CHECK(shmheap_element_size(99) == 0);
}

/* An anonymous heap of `heap_bytes` with 2^slots_log2 slots, the other
 * options default; NULL (a failed CHECK) if it cannot be created. */
static shmheap_heap* NewHeap(uint64_t heap_bytes, uint32_t slots_log2) {
  shmheap_options o;
  shmheap_options_default(&o);
  o.heap_bytes = heap_bytes;
  o.table_slots_log2 = slots_log2;
  shmheap_heap* heap = NULL;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_OK);
  return heap;
}

static void TestForkedWriters(void) {
  shmheap_heap* heap = NewHeap(64 << 20, 12);
  if (heap == NULL) return;
  enum { kWorkers = 8 };
  for (int w = 0; w < kWorkers; ++w) {
    if (fork() == 0) {
      int bad = 0;
      for (int kind = 0; kind < SHMHEAP_NUM_KINDS; ++kind) {
        const int64_t dims[2] = {3, 5 + w};
        const size_t n =
            (size_t)(dims[0] * dims[1]) * shmheap_element_size(kind);
        unsigned char* data = malloc(n);
        for (size_t j = 0; j < n; ++j) data[j] = Byte(w, kind, j);
        char key[64];
        snprintf(key, sizeof key, "w%d:k%d", w, kind);
        const shmheap_key k = Key(key);
        int published = 0;
        bad |= shmheap_add(heap, &k, kind, kind % 2, 2, dims, data, n,
                           &published) != SHMHEAP_OK ||
               !published;
        free(data);
      }
      _exit(bad);
    }
  }
  int status;
  for (int w = 0; w < kWorkers; ++w) {
    CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* Every element of every array, through views and through a scope. */
  for (int w = 0; w < kWorkers; ++w) {
    for (int kind = 0; kind < SHMHEAP_NUM_KINDS; ++kind) {
      char key[64];
      snprintf(key, sizeof key, "w%d:k%d", w, kind);
      const shmheap_key k = Key(key);
      shmheap_view* view = NULL;
      CHECK(shmheap_get(heap, &k, &view) == SHMHEAP_OK);
      if (view == NULL) continue;
      shmheap_ref r;
      shmheap_view_ref(view, &r);
      CHECK(r.kind == kind && r.layout == kind % 2 && r.ndims == 2);
      CHECK(r.dims[0] == 3 && r.dims[1] == 5 + w);
      CHECK(r.bytes == (size_t)(3 * (5 + w)) * shmheap_element_size(kind));
      CHECK(InsideMapping(heap, r.data, r.bytes));
      for (size_t j = 0; j < r.bytes; ++j) {
        if (((const unsigned char*)r.data)[j] != Byte(w, kind, j)) {
          CHECK(!"element differs");
          break;
        }
      }
      /* A live view pins: collect from this process is refused. */
      CHECK(shmheap_collect(heap, 100, NULL) == SHMHEAP_EPRECONDITION);
      shmheap_view_release(view);
    }
  }
  shmheap_read* read = NULL;
  CHECK(shmheap_read_begin(heap, &read) == SHMHEAP_OK);
  if (read != NULL) {
    shmheap_key keys[kWorkers + 1];
    char names[kWorkers + 1][32];
    for (int w = 0; w < kWorkers; ++w) {
      snprintf(names[w], sizeof names[w], "w%d:k%d", w, SHMHEAP_FLOAT64);
      keys[w] = Key(names[w]);
    }
    keys[kWorkers] = Key("absent");
    shmheap_ref refs[kWorkers + 1];
    int found[kWorkers + 1];
    CHECK(shmheap_read_find_many(read, keys, kWorkers + 1, refs, found) ==
          kWorkers);
    CHECK(!found[kWorkers]);
    for (int w = 0; w < kWorkers; ++w) {
      CHECK(found[w] && refs[w].kind == SHMHEAP_FLOAT64);
      CHECK(InsideMapping(heap, refs[w].data, refs[w].bytes));
      CHECK(((const unsigned char*)refs[w].data)[0] ==
            Byte(w, SHMHEAP_FLOAT64, 0));
    }
    shmheap_ref one;
    CHECK(shmheap_read_find(read, &keys[kWorkers], &one) == SHMHEAP_ENOTFOUND);
    CHECK(shmheap_read_find(read, &keys[0], &one) == SHMHEAP_OK);
    CHECK(one.data == refs[0].data);
    shmheap_read_end(read);
  }
  shmheap_stats s;
  shmheap_get_stats(heap, &s);
  CHECK(s.live_blobs == kWorkers * SHMHEAP_NUM_KINDS);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  shmheap_close(heap);
}

static void TestWritesAndCollect(void) {
  shmheap_options o;
  shmheap_options_default(&o);
  o.heap_bytes = 16 << 20;
  o.table_slots_log2 = 8;
  o.checksums = 1;
  shmheap_heap* heap = NULL;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_OK);
  if (heap == NULL) return;
  const double v[4] = {1, 2, 3, 4};
  const int64_t dims[1] = {4};
  const shmheap_key a = Key("a");
  const shmheap_key b = Key("b");
  int done = -1;
  CHECK(shmheap_add(heap, &a, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_add(heap, &a, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 0);
  CHECK(shmheap_add(heap, &b, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v, 7,
                    &done) == SHMHEAP_EINVALID);
  CHECK(shmheap_replace(heap, &a, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v,
                        sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_contains(heap, &a) == 1 && shmheap_contains(heap, &b) == 0);
  CHECK(shmheap_move(heap, &a, &b) == SHMHEAP_OK);
  CHECK(shmheap_contains(heap, &a) == 0 && shmheap_contains(heap, &b) == 1);
  CHECK(shmheap_remove(heap, &a) == SHMHEAP_ENOTFOUND);
  /* A hashed key, and a builder filled in place. */
  shmheap_key h;
  h.bytes = "given";
  h.len = 5;
  h.hash = 0x1234;
  h.hashed = 1;
  shmheap_builder* builder = NULL;
  const int64_t bdims[2] = {2, 2};
  CHECK(shmheap_reserve(heap, &h, SHMHEAP_INT32, SHMHEAP_FORTRAN_LAYOUT, 2,
                        bdims, &builder) == SHMHEAP_OK);
  if (builder != NULL) {
    CHECK(shmheap_builder_bytes(builder) == 16);
    int* out = shmheap_builder_data(builder);
    for (int i = 0; i < 4; ++i) out[i] = 10 + i;
    CHECK(shmheap_publish(builder, &done) == SHMHEAP_OK && done == 1);
  }
  shmheap_view* view = NULL;
  CHECK(shmheap_get(heap, &h, &view) == SHMHEAP_OK);
  if (view != NULL) {
    shmheap_ref r;
    shmheap_view_ref(view, &r);
    CHECK(((const int*)r.data)[3] == 13 && r.layout == SHMHEAP_FORTRAN_LAYOUT);
    shmheap_view_release(view);
  }
  shmheap_gc_report report;
  CHECK(shmheap_collect(heap, 0, &report) == SHMHEAP_OK && report.ran);
  CHECK(report.bytes_after < report.bytes_before);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  shmheap_close(heap);
}

/* Clear empties the heap in place: keys and counters go, the heap works on
 * with the same handle, a second clear finds nothing; refused while this
 * process holds a view. */
static void TestClear(void) {
  shmheap_options o;
  shmheap_options_default(&o);
  o.heap_bytes = 16 << 20;
  o.table_slots_log2 = 8;
  shmheap_heap* heap = NULL;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_OK);
  if (heap == NULL) return;
  const double v[4] = {1, 2, 3, 4};
  const int64_t dims[1] = {4};
  const shmheap_key a = Key("a");
  const shmheap_key c = Key("counter");
  int done = -1;
  int64_t before = -1;
  CHECK(shmheap_add(heap, &a, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_fetch_add(heap, &c, 5, &before) == SHMHEAP_OK && before == 0);
  shmheap_view* view = NULL;
  CHECK(shmheap_get(heap, &a, &view) == SHMHEAP_OK);
  CHECK(shmheap_clear(heap, 100, NULL) == SHMHEAP_EPRECONDITION);
  if (view != NULL) shmheap_view_release(view);
  CHECK(shmheap_contains(heap, &a) == 1);
  shmheap_gc_report report;
  CHECK(shmheap_clear(heap, 0, &report) == SHMHEAP_OK && report.ran);
  CHECK(report.bytes_before > 0 && report.bytes_after == 0);
  CHECK(shmheap_contains(heap, &a) == 0 && shmheap_contains(heap, &c) == 0);
  CHECK(shmheap_get(heap, &a, &view) == SHMHEAP_ENOTFOUND);
  shmheap_stats s;
  shmheap_get_stats(heap, &s);
  CHECK(s.live_blobs == 0 && s.heap_top == 0 && s.table_used == 0);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  CHECK(shmheap_fetch_add(heap, &c, 1, &before) == SHMHEAP_OK && before == 0);
  CHECK(shmheap_add(heap, &a, SHMHEAP_FLOAT64, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_get(heap, &a, &view) == SHMHEAP_OK);
  if (view != NULL) {
    shmheap_ref r;
    shmheap_view_ref(view, &r);
    CHECK(((const double*)r.data)[3] == 4);
    shmheap_view_release(view);
  }
  CHECK(shmheap_clear(heap, 0, &report) == SHMHEAP_OK);
  CHECK(shmheap_clear(heap, 0, &report) == SHMHEAP_OK &&
        report.bytes_before == 0);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  shmheap_close(heap);
}

static shmheap_add_item Item(shmheap_key key, const int64_t* dims,
                             const float* data, size_t bytes) {
  shmheap_add_item it;
  it.key = key;
  it.kind = SHMHEAP_FLOAT32;
  it.layout = SHMHEAP_C_LAYOUT;
  it.ndims = 1;
  it.dims = dims;
  it.data = data;
  it.data_bytes = bytes;
  return it;
}

/* Whether `key` holds exactly floats[0, n). */
static int Holds(shmheap_heap* heap, const shmheap_key* key,
                 const float* floats, size_t n) {
  shmheap_view* view = NULL;
  if (shmheap_get(heap, key, &view) != SHMHEAP_OK) return 0;
  shmheap_ref r;
  shmheap_view_ref(view, &r);
  const int same = r.kind == SHMHEAP_FLOAT32 && r.bytes == n * sizeof(float) &&
                   memcmp(r.data, floats, r.bytes) == 0;
  shmheap_view_release(view);
  return same;
}

/* shmheap_add_many: each item's outcome (published, present, its own
 * error) in its results slot, the batch going on past failures, the values
 * read back element by element, then 4 forked children adding overlapping
 * batches with every value checked by the parent and the counters exact. */
static void TestAddMany(void) {
  shmheap_heap* heap = NewHeap(16 << 20, 10);
  if (heap == NULL) return;
  const float va[3] = {1, 2, 3}, vb[3] = {4, 5, 6}, vc[3] = {7, 8, 9};
  const int64_t dims[1] = {3};
  shmheap_key h1, h2;
  h1.bytes = "one";
  h1.len = 3;
  h1.hash = 0x77;
  h1.hashed = 1;
  h2 = h1;
  h2.bytes = "two"; /* the same hash, another key: a collision */
  shmheap_add_item items[7];
  items[0] = Item(Key("a"), dims, va, sizeof va);
  items[1] = Item(Key("b"), dims, vb, sizeof vb);
  items[2] = Item(Key("a"), dims, vc, sizeof vc); /* a again: present */
  items[3] = Item(Key("c"), dims, vc, 5);         /* wrong size */
  items[4] = Item(Key("d"), NULL, vc, sizeof vc); /* no dims */
  items[5] = Item(h1, dims, vc, sizeof vc);
  items[6] = Item(h2, dims, va, sizeof va); /* collides with items[5] */
  int results[7];
  size_t published = 99;
  CHECK(shmheap_add_many(heap, items, 7, results, &published) == SHMHEAP_OK);
  CHECK(published == 3);
  CHECK(results[0] == SHMHEAP_ADD_PUBLISHED);
  CHECK(results[1] == SHMHEAP_ADD_PUBLISHED);
  CHECK(results[2] == SHMHEAP_ADD_PRESENT);
  CHECK(results[3] == -SHMHEAP_EINVALID);
  CHECK(results[4] == -SHMHEAP_EINVALID);
  CHECK(results[5] == SHMHEAP_ADD_PUBLISHED);
  CHECK(results[6] == -SHMHEAP_EEXISTS);
  CHECK(strstr(shmheap_last_error(), "item 3") != NULL);
  const shmheap_key a = Key("a"), b = Key("b"), c = Key("c");
  CHECK(Holds(heap, &a, va, 3)); /* the first of the two a's */
  CHECK(Holds(heap, &b, vb, 3));
  CHECK(Holds(heap, &h1, vc, 3));
  CHECK(shmheap_contains(heap, &c) == 0);
  /* Again: every key is present now; the bad items fail the same way. */
  CHECK(shmheap_add_many(heap, items, 7, results, NULL) == SHMHEAP_OK);
  CHECK(results[0] == SHMHEAP_ADD_PRESENT && results[1] == SHMHEAP_ADD_PRESENT);
  CHECK(results[5] == SHMHEAP_ADD_PRESENT && results[6] == -SHMHEAP_EEXISTS);
  CHECK(shmheap_add_many(heap, NULL, 2, results, NULL) == SHMHEAP_EINVALID);
  CHECK(shmheap_add_many(heap, NULL, 0, NULL, &published) == SHMHEAP_OK &&
        published == 0);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);

  /* 4 children, each adding 64 keys of which 32 are shared with the next
   * child: every key is published exactly once, by whichever child came
   * first, and its value is the same whoever did. */
  enum { kChildren = 4, kPerChild = 64, kFloats = 8 };
  pid_t pids[kChildren];
  for (int w = 0; w < kChildren; ++w) {
    pids[w] = fork();
    if (pids[w] == 0) {
      char names[kPerChild][16];
      float values[kPerChild][kFloats];
      const int64_t d[1] = {kFloats};
      shmheap_add_item batch[kPerChild];
      for (int i = 0; i < kPerChild; ++i) {
        const int id = w * (kPerChild / 2) + i;
        snprintf(names[i], sizeof names[i], "k%d", id);
        for (int j = 0; j < kFloats; ++j) values[i][j] = (float)(id * 100 + j);
        batch[i] = Item(Key(names[i]), d, values[i], sizeof values[i]);
      }
      int r[kPerChild];
      int bad = shmheap_add_many(heap, batch, kPerChild, r, NULL) != SHMHEAP_OK;
      for (int i = 0; i < kPerChild; ++i) {
        bad |= r[i] != SHMHEAP_ADD_PUBLISHED && r[i] != SHMHEAP_ADD_PRESENT;
      }
      _exit(bad);
    }
  }
  for (int w = 0; w < kChildren; ++w) {
    int status = 0;
    CHECK(waitpid(pids[w], &status, 0) == pids[w]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const int keys = (kChildren + 1) * (kPerChild / 2);
  for (int id = 0; id < keys; ++id) {
    char name[16];
    snprintf(name, sizeof name, "k%d", id);
    float expect[kFloats];
    for (int j = 0; j < kFloats; ++j) expect[j] = (float)(id * 100 + j);
    const shmheap_key k = Key(name);
    CHECK(Holds(heap, &k, expect, kFloats));
  }
  shmheap_stats st;
  shmheap_get_stats(heap, &st);
  CHECK(st.live_blobs == (uint64_t)keys + 3);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  shmheap_close(heap);
}

/* remove_many: present keys are unlinked once, absent ones skipped; and
 * fetch_add. */
static void TestRemoveMany(void) {
  shmheap_heap* heap = NewHeap(16 << 20, 8);
  if (heap == NULL) return;
  const float v[2] = {5, 6};
  const int64_t dims[1] = {2};
  const shmheap_key a = Key("a"), b = Key("b"), c = Key("c"), d = Key("d");
  int done = 0;
  CHECK(shmheap_add(heap, &a, SHMHEAP_FLOAT32, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_add(heap, &b, SHMHEAP_FLOAT32, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  CHECK(shmheap_add(heap, &d, SHMHEAP_FLOAT32, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, &done) == SHMHEAP_OK &&
        done == 1);
  const shmheap_key gone[3] = {a, b, c};
  size_t removed = 99;
  CHECK(shmheap_remove_many(heap, gone, 3, &removed) == SHMHEAP_OK &&
        removed == 2);
  CHECK(shmheap_contains(heap, &a) == 0 && shmheap_contains(heap, &b) == 0);
  CHECK(Holds(heap, &d, v, 2));
  CHECK(shmheap_remove_many(heap, gone, 3, &removed) == SHMHEAP_OK &&
        removed == 0);
  CHECK(shmheap_remove_many(heap, NULL, 0, NULL) == SHMHEAP_OK);
  shmheap_stats st;
  shmheap_get_stats(heap, &st);
  CHECK(st.live_blobs == 1);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  /* fetch_add: a counter created at 0, distinct values; not on floats. */
  const shmheap_key n = Key("n");
  int64_t before = -1;
  CHECK(shmheap_fetch_add(heap, &n, 1, &before) == SHMHEAP_OK && before == 0);
  CHECK(shmheap_fetch_add(heap, &n, 5, &before) == SHMHEAP_OK && before == 1);
  CHECK(shmheap_fetch_add(heap, &n, 0, &before) == SHMHEAP_OK && before == 6);
  CHECK(shmheap_fetch_add(heap, &d, 1, NULL) == SHMHEAP_EINVALID);
  CHECK(shmheap_stop_requested(heap) == 0);
  shmheap_request_stop(heap);
  CHECK(shmheap_stop_requested(heap) == 1);
  shmheap_clear_stop(heap);
  CHECK(shmheap_stop_requested(heap) == 0);
  shmheap_close(heap);
}

/* wait_for: a present key at once; an absent one times out; a bad timeout
 * is refused; forked children, one with a timeout and one with none (-1),
 * are woken by the parent's add and read the value. A child that is never
 * woken is ended by alarm() and fails its check instead of hanging. */
static void TestWaitFor(void) {
  shmheap_heap* heap = NewHeap(16 << 20, 8);
  if (heap == NULL) return;
  const float v[3] = {1.5f, 2.5f, 3.5f};
  const int64_t dims[1] = {3};
  const shmheap_key here = Key("here"), absent = Key("absent");
  CHECK(shmheap_add(heap, &here, SHMHEAP_FLOAT32, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, NULL) == SHMHEAP_OK);
  CHECK(shmheap_wait_for(heap, &here, 0) == SHMHEAP_OK);
  CHECK(shmheap_wait_for(heap, &here, -1) == SHMHEAP_OK);
  CHECK(shmheap_wait_for(heap, &absent, 0) == SHMHEAP_EDEADLINE);
  CHECK(shmheap_wait_for(heap, &absent, 20 * 1000 * 1000) == SHMHEAP_EDEADLINE);
  CHECK(strstr(shmheap_last_error(), "absent") != NULL);
  CHECK(shmheap_wait_for(heap, &absent, -2) == SHMHEAP_EINVALID);
  const shmheap_key later = Key("later");
  pid_t kids[2];
  for (int c = 0; c < 2; ++c) {
    kids[c] = fork();
    if (kids[c] == 0) {
      alarm(30);
      const int64_t timeout = c == 0 ? (int64_t)6 * 1000 * 1000 * 1000 : -1;
      if (shmheap_wait_for(heap, &later, timeout) != SHMHEAP_OK) _exit(2);
      _exit(Holds(heap, &later, v, 3) ? 0 : 3);
    }
  }
  /* Most likely both sleep by now; tests/wait_test proves the wake of a
   * waiter known to sleep. */
  const struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  CHECK(shmheap_add(heap, &later, SHMHEAP_FLOAT32, SHMHEAP_C_LAYOUT, 1, dims, v,
                    sizeof v, NULL) == SHMHEAP_OK);
  for (int c = 0; c < 2; ++c) {
    int status = 0;
    CHECK(waitpid(kids[c], &status, 0) == kids[c]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  shmheap_close(heap);
}

/* The dependency table: idempotent adds, the snprintf-style get (size
 * query, short buffer, full buffer), removal, stats, and the errors. */
static void TestDeps(void) {
  shmheap_heap* heap = NewHeap(16 << 20, 8);
  if (heap == NULL) return;
  int added = -1;
  CHECK(shmheap_add_dep(heap, 7, 70, &added) == SHMHEAP_OK && added == 1);
  CHECK(shmheap_add_dep(heap, 7, 70, &added) == SHMHEAP_OK && added == 0);
  CHECK(shmheap_add_dep(heap, 7, 71, NULL) == SHMHEAP_OK);
  CHECK(shmheap_add_dep(heap, 7, 72, &added) == SHMHEAP_OK && added == 1);
  size_t count = 0;
  CHECK(shmheap_get_deps(heap, 7, NULL, &count) == SHMHEAP_OK && count == 3);
  uint32_t values[8] = {0};
  count = 2;
  CHECK(shmheap_get_deps(heap, 7, values, &count) == SHMHEAP_OK && count == 3);
  CHECK(values[0] >= 70 && values[0] <= 72 && values[1] >= 70 &&
        values[1] <= 72 && values[0] != values[1] && values[2] == 0);
  count = 8;
  CHECK(shmheap_get_deps(heap, 7, values, &count) == SHMHEAP_OK && count == 3);
  CHECK(values[0] + values[1] + values[2] == 70 + 71 + 72);
  count = 8;
  CHECK(shmheap_get_deps(heap, 8, values, &count) == SHMHEAP_OK && count == 0);
  shmheap_stats st;
  shmheap_get_stats(heap, &st);
  CHECK(st.dep_slots == (uint64_t)1 << 17 && st.dep_used == 3 &&
        st.dep_removed == 0);
  size_t removed = 99;
  CHECK(shmheap_remove_deps(heap, 7, &removed) == SHMHEAP_OK && removed == 3);
  CHECK(shmheap_remove_deps(heap, 7, NULL) == SHMHEAP_OK);
  count = 8;
  CHECK(shmheap_get_deps(heap, 7, values, &count) == SHMHEAP_OK && count == 0);
  shmheap_get_stats(heap, &st);
  CHECK(st.dep_used == 3 && st.dep_removed == 3);
  /* Errors. */
  CHECK(shmheap_add_dep(heap, 1u << 31, 1, &added) == SHMHEAP_EINVALID &&
        added == 0);
  CHECK(strstr(shmheap_last_error(), "key 2147483648") != NULL);
  CHECK(shmheap_add_dep(heap, 1, 0xffffffffu, NULL) == SHMHEAP_EINVALID);
  count = 1;
  CHECK(shmheap_get_deps(heap, 7, NULL, &count) == SHMHEAP_EINVALID);
  CHECK(shmheap_get_deps(heap, 7, values, NULL) == SHMHEAP_EINVALID);
  CHECK(shmheap_verify(heap) == SHMHEAP_OK);
  shmheap_close(heap);

  shmheap_options o;
  shmheap_options_default(&o);
  CHECK(o.dep_table_slots_log2 == 17);
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 6;
  o.dep_table_slots_log2 = 0;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_OK);
  if (heap == NULL) return;
  CHECK(shmheap_add_dep(heap, 1, 2, NULL) == SHMHEAP_EPRECONDITION);
  CHECK(strstr(shmheap_last_error(), "no dependency table") != NULL);
  count = 0;
  CHECK(shmheap_get_deps(heap, 1, NULL, &count) == SHMHEAP_EPRECONDITION);
  CHECK(shmheap_remove_deps(heap, 1, NULL) == SHMHEAP_EPRECONDITION);
  shmheap_close(heap);
  o.dep_table_slots_log2 = 2;
  CHECK(shmheap_create(&o, &heap) == SHMHEAP_EINVALID);
}

static void TestNamedAndFile(void) {
  char name[64], path[256];
  snprintf(name, sizeof name, "shmheap-c-test-%d", (int)getpid());
  const char* dir = getenv("TEST_TMPDIR");
  snprintf(path, sizeof path, "%s/c-test-%d", dir ? dir : "/tmp",
           (int)getpid());
  shmheap_options o;
  shmheap_options_default(&o);
  o.heap_bytes = 4 << 20;
  o.table_slots_log2 = 6;
  shmheap_heap* a = NULL;
  shmheap_heap* b = NULL;
  CHECK(shmheap_create_named(name, &o, &a) == SHMHEAP_OK);
  CHECK(shmheap_create_named(name, &o, &b) == SHMHEAP_EEXISTS);
  CHECK(shmheap_open_named(name, &b) == SHMHEAP_OK);
  const char c[3] = {'x', 'y', 'z'};
  const int64_t dims[1] = {3};
  const shmheap_key k = Key("chars");
  CHECK(shmheap_add(a, &k, SHMHEAP_CHAR, SHMHEAP_C_LAYOUT, 1, dims, c, 3,
                    NULL) == SHMHEAP_OK);
  CHECK(shmheap_contains(b, &k) == 1);
  shmheap_close(b);
  shmheap_close(a);
  CHECK(shmheap_unlink_named(name) == SHMHEAP_OK);
  CHECK(shmheap_unlink_named(name) == SHMHEAP_ENOTFOUND);
  CHECK(shmheap_create_file(path, &o, &a) == SHMHEAP_OK);
  CHECK(shmheap_add(a, &k, SHMHEAP_CHAR, SHMHEAP_C_LAYOUT, 1, dims, c, 3,
                    NULL) == SHMHEAP_OK);
  shmheap_close(a);
  CHECK(shmheap_open_file(path, &a) == SHMHEAP_OK);
  CHECK(shmheap_contains(a, &k) == 1);
  CHECK(shmheap_hash(a, "chars", 5) != 0);
  shmheap_close(a);
  unlink(path);
}

int main(void) {
  void (*const tests[])(void) = {
      TestErrors,  TestForkedWriters, TestWritesAndCollect,
      TestAddMany, TestRemoveMany,    TestWaitFor,
      TestDeps,    TestNamedAndFile,  TestClear};
  const int n = (int)(sizeof tests / sizeof tests[0]);
  int passed = 0;
  for (int i = 0; i < n; ++i) {
    const int before = failures;
    tests[i]();
    passed += failures == before;
  }
  printf("shmheap_c_test: %d passed, %d failed\n", passed, n - passed);
  return passed == n ? 0 : 1;
}
