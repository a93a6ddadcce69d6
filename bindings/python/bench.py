"""Issue 14's benchmark: get and add of 64 B, 64 KiB and 16 MiB float64
arrays through shmheap and through three peers.

get, for every peer, produces a numpy array that the caller reads; two
columns per peer: "get" checks the shape and reads the last element, "get +
sum" also sums every element (and checks the sum). The peers:

  shmheap        heap[key] (zero-copy, pinned), then the array is dropped;
                 "scope" is r[key] inside one read scope (heap.read())
  Manager        multiprocessing.Manager().dict()[key] (the manager process
                 pickles the array through a socket; the caller unpickles)
  Pipe           a forked writer sends the array pickled through a
                 multiprocessing.Pipe without pause; the caller recv()s it
  shared_memory  SharedMemory(name) of the key's segment (the name, shape and
                 dtype looked up in a dict), an ndarray over its buffer; then
                 the array is dropped and the segment closed

add: heap.add of a fresh key (between batches, untimed: remove + collect);
Manager d[key] = a; Pipe send to a reader that drains it; shared_memory
create + copy in (close and unlink untimed). The C ABI's own get (from C, in
this process, no Python in the loop) gives the binding's per-call overhead.

Each cell is the median over batches of ~20 ms (at least one operation),
peers interleaved batch by batch, so a burst of load hits them alike.
Ratios are from one run. Prints a markdown table and the load average.
"""

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import time
from multiprocessing import shared_memory

import numpy as np

import shmheap
from shmheap import _shmheap

SIZES = [("64 B", 8), ("64 KiB", 8192), ("16 MiB", 2 << 20)]


def fmt(s):
    if s < 1e-6:
        return "%.0f ns" % (s * 1e9)
    if s < 1e-3:
        return "%.2f µs" % (s * 1e6)
    if s < 1:
        return "%.2f ms" % (s * 1e3)
    return "%.2f s" % s


def timed_batches(ops, batches, starts=None, target=0.02):
    """ops: {name: op}; op() runs one operation; starts[name](n), if given,
    runs first inside each timed batch of n (the Pipe's request). Returns
    {name: median seconds per op}, interleaving names batch by batch."""
    starts = starts or {}
    nothing = lambda n: None

    def batch(name, n):
        start, op = starts.get(name, nothing), ops[name]
        t0 = time.perf_counter()
        start(n)
        for _ in range(n):
            op()
        return (time.perf_counter() - t0) / n

    reps = {}
    for name in ops:  # calibrate: ~target seconds a batch
        one = max(batch(name, 1), 1e-7)
        reps[name] = max(1, min(20000, int(target / one)))
    per_op = {name: [] for name in ops}
    for _ in range(batches):
        for name in ops:
            per_op[name].append(batch(name, reps[name]))
    return {name: statistics.median(v) for name, v in per_op.items()}


def pipe_writer(conn, arrays):
    """("get", size, n): sends arrays[size] n times without pause; ("add",
    n): receives n arrays and drops them; ("sync",): answers "done" (so the
    reader knows every earlier message was handled); None: stops."""
    while True:
        msg = conn.recv()
        if msg is None:
            return
        if msg[0] == "get":
            a = arrays[msg[1]]
            for _ in range(msg[2]):
                conn.send(a)
        elif msg[0] == "add":
            for _ in range(msg[1]):
                conn.recv()
        else:
            conn.send("done")


class PipePeer:
    """A forked writer that streams arrays through a Pipe on request."""

    def __init__(self, arrays):
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=pipe_writer, args=(child, arrays))
        self.proc.start()

    def request(self, size_index, n):
        self.conn.send(("get", size_index, n))

    def close(self):
        self.conn.send(None)
        self.proc.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, default=9)
    p.add_argument("--sizes", default="0,1,2")
    args = p.parse_args()
    sizes = [SIZES[int(i)] for i in args.sizes.split(",")]
    load0 = os.getloadavg()

    arrays = [np.arange(n, dtype=np.float64) * 0.5 for _, n in SIZES]
    heap = shmheap.Heap.create(heap_bytes=4 << 30, slots_log2=16)
    manager = mp.Manager()
    mdict = manager.dict()
    shms, names = [], {}
    for s, a in enumerate(arrays):
        heap["k%d" % s] = a
        mdict["k%d" % s] = a
        shm = shared_memory.SharedMemory(create=True, size=a.nbytes)
        np.ndarray(a.shape, a.dtype, buffer=shm.buf)[...] = a
        shms.append(shm)
        names["k%d" % s] = (shm.name, a.shape, a.dtype)
    pipe = PipePeer(arrays)

    rows = []
    for label, n in sizes:
        s = SIZES.index((label, n))
        key = "k%d" % s
        last = arrays[s][-1]
        total = float(arrays[s].sum())

        def check(a, full):
            if a.shape != (n,) or a[-1] != last:
                raise AssertionError("bad array")
            if full and float(a.sum()) != total:
                raise AssertionError("bad sum")

        def shm_get(full):
            name, shape, dtype = names[key]
            m = shared_memory.SharedMemory(name=name)
            a = np.ndarray(shape, dtype, buffer=m.buf)
            check(a, full)
            del a
            m.close()

        read = heap.read()
        results = {}
        for full in (False, True):
            ops = {
                "shmheap": lambda f=full: check(heap[key], f),
                "scope": lambda f=full: check(read[key], f),
                "Manager": lambda f=full: check(mdict[key], f),
                "Pipe": lambda f=full: check(pipe.conn.recv(), f),
                "shared_memory": lambda f=full: shm_get(f),
            }
            results[full] = timed_batches(
                ops, args.batches, {"Pipe": lambda k: pipe.request(s, k)})
        read.close()
        c_get = statistics.median(
            _shmheap._bench_c_get(heap, key, 20000 if n < 1 << 20 else 2000)
            for _ in range(args.batches)) * 1e-9

        # add: fresh keys; the heap is emptied between batches (untimed)
        counter = [0]
        created = []

        def heap_add():
            counter[0] += 1
            heap.add("a%d" % counter[0], arrays[s])

        def manager_add():
            mdict["a"] = arrays[s]

        def pipe_add():
            pipe.conn.send(arrays[s])

        def shm_add():
            m = shared_memory.SharedMemory(create=True, size=arrays[s].nbytes)
            np.ndarray((n,), np.float64, buffer=m.buf)[...] = arrays[s]
            created.append(m)

        def pipe_add_start(k):
            pipe.conn.send(("add", k))

        adds = {}
        for _ in range(args.batches):
            one = timed_batches(
                {"shmheap": heap_add, "Manager": manager_add,
                 "Pipe": pipe_add, "shared_memory": shm_add}, 1,
                {"Pipe": pipe_add_start})
            for name, v in one.items():
                adds.setdefault(name, []).append(v)
            pipe.conn.send(("sync",))  # untimed: the writer drained them
            assert pipe.conn.recv() == "done"
            for i in range(1, counter[0] + 1):  # untimed cleaning
                heap.remove("a%d" % i)
            counter[0] = 0
            heap.collect()
            for m in created:
                m.close()
                m.unlink()
            created.clear()
        adds = {name: statistics.median(v) for name, v in adds.items()}
        rows.append((label, results, c_get, adds))

    pipe.close()
    for shm in shms:
        shm.close()
        shm.unlink()
    manager.shutdown()
    load1 = os.getloadavg()

    print("machine: %s, %d cores, Python %s, numpy %s; load average %.2f at "
          "the start, %.2f at the end" % (platform.node(), os.cpu_count(),
                                          platform.python_version(),
                                          np.__version__, load0[0], load1[0]))
    print()
    print("| size | shmheap get | scope get | Manager get | Pipe get | "
          "shared_memory get | Manager ÷ shmheap | Pipe ÷ shmheap | "
          "shared_memory ÷ shmheap | C ABI get | Python − C ABI |")
    print("|---|" + "---|" * 10)
    for label, r, c_get, _ in rows:
        g = r[False]
        print("| %s | %s | %s | %s | %s | %s | %.0f× | %.0f× | %.1f× | %s | "
              "+%s |" % (label, fmt(g["shmheap"]), fmt(g["scope"]),
                         fmt(g["Manager"]), fmt(g["Pipe"]),
                         fmt(g["shared_memory"]),
                         g["Manager"] / g["shmheap"],
                         g["Pipe"] / g["shmheap"],
                         g["shared_memory"] / g["shmheap"], fmt(c_get),
                         fmt(max(g["shmheap"] - c_get, 0))))
    print()
    print("| size | shmheap get + sum | scope | Manager | Pipe | shared_memory "
          "| Manager ÷ shmheap | Pipe ÷ shmheap | shared_memory ÷ shmheap |")
    print("|---|" + "---|" * 8)
    for label, r, _, _ in rows:
        g = r[True]
        print("| %s | %s | %s | %s | %s | %s | %.1f× | %.1f× | %.2f× |" % (
            label, fmt(g["shmheap"]), fmt(g["scope"]), fmt(g["Manager"]),
            fmt(g["Pipe"]), fmt(g["shared_memory"]),
            g["Manager"] / g["shmheap"], g["Pipe"] / g["shmheap"],
            g["shared_memory"] / g["shmheap"]))
    print()
    print("| size | shmheap add | Manager add | Pipe send | shared_memory "
          "create + copy | shmheap GB/s |")
    print("|---|" + "---|" * 5)
    for label, _, _, a in rows:
        n = dict(SIZES)[label] * 8
        print("| %s | %s | %s | %s | %s | %.2f |" % (
            label, fmt(a["shmheap"]), fmt(a["Manager"]), fmt(a["Pipe"]),
            fmt(a["shared_memory"]), n / a["shmheap"] / 1e9))
    heap.close()


if __name__ == "__main__":
    main()
