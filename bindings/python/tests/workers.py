"""Worker functions for test_processes.py (a module of their own, so that
spawn workers import them without importing the tests)."""

import numpy as np

import shmheap
from common import expected

WORKERS = 8
PER_WORKER = 6
# Shapes and dtypes each worker publishes: C and Fortran, 1 to 3 dims.
VALUES = [
    ("float64", (64, 33), "C"),
    ("int32", (17, 9, 5), "F"),
    ("complex128", (40,), "C"),
    ("uint16", (128, 3), "F"),
    ("S1", (50,), "C"),
    ("float32", (256, 64), "C"),
]

_heap = None


def attach(heap_or_name):
    """Pool initializer: the inherited heap (fork), or open it by name."""
    global _heap
    if isinstance(heap_or_name, str):
        _heap = shmheap.Heap.open_named(heap_or_name)
    else:
        _heap = heap_or_name


def key_of(w, j):
    return "w%d:%d" % (w, j)


def publish(w):
    """Worker w publishes its values (half by add, half by reserve)."""
    published = 0
    for j, (dtype, shape, order) in enumerate(VALUES[:PER_WORKER]):
        k = key_of(w, j)
        want = expected(k, dtype, shape, order=order)
        if j % 2 == 0:
            published += _heap.add(k, want)
        else:
            r = _heap.reserve(k, shape, dtype, order)
            r[...] = want
            published += _heap.publish(r)
            del r
    return published


def check_all(workers):
    """Reads every worker's values and checks every element; returns the
    number of elements checked."""
    checked = 0
    for w in range(workers):
        for j, (dtype, shape, order) in enumerate(VALUES[:PER_WORKER]):
            k = key_of(w, j)
            got = _heap[k]
            want = expected(k, dtype, shape, order=order)
            if got.dtype != want.dtype or got.shape != want.shape:
                raise AssertionError("%s: %s %s" % (k, got.dtype, got.shape))
            if not np.array_equal(got, want):
                raise AssertionError("%s: elements differ" % k)
            if order == "F" and not got.flags.f_contiguous:
                raise AssertionError("%s: layout lost" % k)
            checked += got.size
    return checked
