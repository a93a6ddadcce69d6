"""Helpers shared by the tests and their worker processes.

Every value a test stores is a pure function of (key, version), so any
process can check every element of what it reads without being told.
"""

import os
import uuid

import numpy as np

import shmheap

# (dtype, kind keyword) for every kind the heap stores.
STORED = [
    ("float32", None),
    ("float64", None),
    ("int8", None),
    ("int16", None),
    ("int32", None),
    ("int64", None),
    ("uint8", None),
    ("uint16", None),
    ("complex64", None),
    ("complex128", None),
    ("S1", None),
    ("int64", "int"),
    ("int64", "nativeint"),
    ("uint8", "char"),
]


def seed_of(key, version=0):
    return (sum(key.encode()) * 131 + version * 7919) % 100003


def expected(key, dtype, shape, version=0, order="C"):
    """The array stored under `key` at `version`: distinct per element."""
    n = int(np.prod(shape, dtype=np.int64))
    base = np.arange(n, dtype=np.int64) * 3 + seed_of(key, version)
    dt = np.dtype(dtype)
    if dt.kind == "S":
        flat = (base % 26 + ord("a")).astype(np.uint8).view("S1")
    elif dt.kind == "c":
        flat = (base % 1000).astype(dt) + 1j * (base % 7).astype(dt)
    elif dt.kind == "f":
        flat = (base % 4096).astype(dt) / 4
    else:
        info = np.iinfo(dt)
        flat = (base % (int(info.max) + 1)).astype(dt)
    return flat.reshape(shape, order=order)


def unique_name(tag):
    return "/shmheap-pytest-%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:8])


def check_zero_copy(heap, a):
    """a's data lies inside heap's mapping and a pins it (base is a Pin)."""
    base, size = heap.mapping()
    p = a.__array_interface__["data"][0]
    assert base <= p and p + a.nbytes <= base + size, (hex(p), hex(base), size)
    assert isinstance(a.base, shmheap.Pin), type(a.base)
    assert not a.flags.writeable
