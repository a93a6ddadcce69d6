"""A multiprocessing.Pool computes numpy arrays; the parent reads them in
place from a shmheap heap, against the same job returning them by pickling.

Each task computes an n x n float64 matrix. With shmheap the worker reserves
the matrix in the heap, computes straight into it, publishes it and returns
only its key; the parent reads every matrix in place (zero-copy). The
pickling way returns the matrix from the task, so multiprocessing pickles it
through a pipe and the parent unpickles a copy. Both sum every matrix and
the sums must agree, with each other and with a matrix recomputed here.

    ./bazelw run //examples/python:pool_arrays [-- --tasks 32 --n 512]
"""

import argparse
import multiprocessing as mp
import time

import numpy as np

import shmheap

heap = None  # inherited by the fork workers


def compute(task, n, out):
    x = np.linspace(0.0, 1.0, n)
    np.multiply.outer(np.sin(x * (task + 1)), np.cos(x * 3.0), out=out)
    out += task


def into_heap(args):
    task, n = args
    a = heap.reserve("m%d" % task, (n, n), np.float64)
    compute(task, n, a)
    heap.publish(a)
    return "m%d" % task


def by_pickle(args):
    task, n = args
    a = np.empty((n, n))
    compute(task, n, a)
    return a


def main():
    global heap
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()
    tasks = [(t, args.n) for t in range(args.tasks)]
    mib = args.tasks * args.n * args.n * 8 / 2**20
    print("%d workers, %d tasks, each a %dx%d float64 matrix (%.1f MiB in all)"
          % (args.workers, args.tasks, args.n, args.n, mib))

    heap = shmheap.Heap.create(heap_bytes=4 * args.tasks * args.n**2 * 8 +
                               (64 << 20))
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        pool.map(abs, range(args.workers))  # workers started before timing
        t0 = time.perf_counter()
        keys = pool.map(into_heap, tasks)
        in_place = True
        base, size = heap.mapping()
        sums_heap = []
        for k in keys:
            m = heap[k]  # zero-copy, read-only, pinned while m lives
            in_place &= base <= m.ctypes.data < base + size
            sums_heap.append(float(m.sum()))
        t_heap = time.perf_counter() - t0
        del m

        t0 = time.perf_counter()
        sums_pickle = [float(m.sum()) for m in pool.map(by_pickle, tasks)]
        t_pickle = time.perf_counter() - t0

    check = np.empty((args.n, args.n))
    compute(args.tasks - 1, args.n, check)
    ok = sums_heap == sums_pickle and sums_heap[-1] == float(check.sum())
    print("shmheap: workers computed into the heap, the parent summed in place "
          "in %.1f ms (in place: %s)" % (t_heap * 1e3, in_place))
    print("pickling: workers returned arrays, the parent unpickled and summed "
          "in %.1f ms" % (t_pickle * 1e3))
    print("sums agree: %s; pickling / shmheap: %.1fx"
          % (ok, t_pickle / t_heap))
    s = heap.stats()
    print("heap: %d arrays, %.1f MiB live" % (s.live_blobs,
                                              s.live_bytes / 2**20))
    heap.close()
    return 0 if ok and in_place else 1


if __name__ == "__main__":
    raise SystemExit(main())
