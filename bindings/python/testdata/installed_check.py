"""Run by install_test.sh with the venv's interpreter, outside the source
tree: the installed package works (a forked worker publishes, the parent
reads in place) and is the installed copy, not the source tree's."""

import os
import sys

import numpy as np

import shmheap

assert "site-packages" in shmheap.__file__, shmheap.__file__
here = os.path.dirname(shmheap.__file__)
assert os.path.isfile(os.path.join(here, "__init__.pyi")), os.listdir(here)

with shmheap.Heap.create(heap_bytes=64 << 20) as heap:
    pid = os.fork()
    if pid == 0:
        r = heap.reserve("m", (100, 10), "float64")
        r[...] = np.arange(1000.0).reshape(100, 10)
        os._exit(0 if heap.publish(r) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    m = heap["m"]
    base, size = heap.mapping()
    in_place = base <= m.ctypes.data < base + size
    assert np.array_equal(m, np.arange(1000.0).reshape(100, 10))
    print("matrix %dx%d from the worker: sum %d, read in place: %s"
          % (m.shape[0], m.shape[1], m.sum(), in_place))
    del m
sys.exit(0)
