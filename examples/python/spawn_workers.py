"""Unrelated processes sharing one heap by name: spawn workers (fresh
interpreters, nothing inherited) attach with Heap.open_named, each publishes
its results, and the parent and every worker read everyone's in place.

    ./bazelw run //examples/python:spawn_workers [-- --workers 8]
"""

import argparse
import multiprocessing as mp
import os

import numpy as np

import shmheap

heap = None


def attach(name):
    global heap
    heap = shmheap.Heap.open_named(name)


def result(w, n):
    return (np.arange(n * n, dtype=np.int64).reshape(n, n) * (w + 1)) % 1009


def work(args):
    w, n = args
    heap["r%d" % w] = result(w, n)
    return os.getpid()


def read_all(args):
    workers, n = args
    return all(np.array_equal(heap["r%d" % w], result(w, n))
               for w in range(workers))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args()
    name = "/shmheap-example-spawn-%d" % os.getpid()
    with shmheap.Heap.create_named(name, heap_bytes=256 << 20) as heap:
        try:
            ctx = mp.get_context("spawn")
            with ctx.Pool(args.workers, initializer=attach,
                          initargs=(name,)) as pool:
                pids = pool.map(work, [(w, args.n) for w in range(args.workers)])
                everyone = pool.map(read_all,
                                    [(args.workers, args.n)] * args.workers)
                sessions = heap.stats().sessions
            mine = [heap["r%d" % w] for w in range(args.workers)]
            ok = all(np.array_equal(m, result(w, args.n))
                     for w, m in enumerate(mine))
            print("%d spawn workers attached to %s; %d of them ran the %d "
                  "tasks; %d sessions" % (args.workers, name, len(set(pids)),
                                          args.workers, sessions))
            print("each published a %dx%d int64 array; every worker read all %d "
                  "correctly: %s; the parent too: %s"
                  % (args.n, args.n, args.workers, all(everyone), ok))
            total = sum(int(m.sum()) for m in mine)
            print("sum of everything: %d" % total)
            del mine
        finally:
            shmheap.Heap.unlink_named(name)
    return 0 if ok and all(everyone) else 1


if __name__ == "__main__":
    raise SystemExit(main())
