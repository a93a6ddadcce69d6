"""Many processes, one heap.

What this proves:
- 8 fork workers (multiprocessing Pool, fork start method, the heap
  inherited) and 8 spawn workers (attached with Heap.open_named) each
  publish values of several dtypes and layouts by add and by reserve +
  publish; then every worker and the parent read every value and check
  every element.
- A child created by os.fork uses the parent's Heap object.
- Concurrent collection: 8 forked readers check every element of every
  value they read, many times, while the parent replaces and removes values
  and collects; no reader ever sees torn or moved data, and collections run.
- A live array pins its data: a collector in another process waits for it
  (DeadlineExceeded with nothing changed, then success after the pin is
  dropped), and the array's data pointer and contents never change while it
  lives; with the pin dropped the same collection moves the value.
"""

import multiprocessing as mp
import os
import time

import numpy as np
import pytest

import shmheap
import workers
from common import expected, unique_name

N = workers.WORKERS


def test_fork_pool_workers_publish_and_everyone_reads_everything():
    with shmheap.Heap.create(heap_bytes=256 << 20, slots_log2=12) as heap:
        ctx = mp.get_context("fork")
        with ctx.Pool(N, initializer=workers.attach, initargs=(heap,)) as pool:
            published = pool.map(workers.publish, range(N))
            assert published == [workers.PER_WORKER] * N
            checked = pool.map(workers.check_all, [N] * N)
        workers.attach(heap)
        mine = workers.check_all(N)
        assert checked == [mine] * N and mine > 0
        assert heap.stats().live_blobs == N * workers.PER_WORKER
        heap.verify()


def test_spawn_workers_attach_by_name():
    name = unique_name("spawn")
    heap = shmheap.Heap.create_named(name, heap_bytes=256 << 20, slots_log2=12)
    try:
        ctx = mp.get_context("spawn")
        with ctx.Pool(N, initializer=workers.attach, initargs=(name,)) as pool:
            published = pool.map(workers.publish, range(N))
            assert published == [workers.PER_WORKER] * N
            checked = pool.map(workers.check_all, [N] * N)
            # the heap object itself pickles as open_named: a task can take it
            assert pool.apply(_sessions_seen_by, (heap,)) >= 2
        workers.attach(heap)
        mine = workers.check_all(N)
        assert checked == [mine] * N and mine > 0
    finally:
        heap.close()
        shmheap.Heap.unlink_named(name)


def _sessions_seen_by(heap):
    return heap.stats().sessions


def test_os_fork_child_uses_the_same_heap_object():
    with shmheap.Heap.create(heap_bytes=64 << 20) as heap:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                heap["child"] = expected("child", "int64", (10, 10))
                code = 0 if heap.add("child", np.zeros(1)) is False else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        np.testing.assert_array_equal(heap["child"],
                                      expected("child", "int64", (10, 10)))


KEYS = ["c%d" % i for i in range(24)]
SHAPE = (32, 32)


def _value(key, version):
    """Element 0 is the version, the rest a function of (key, version)."""
    a = expected(key, "float64", SHAPE, version).copy()
    a.flat[0] = version
    return a


def _reader(heap, seconds, results):
    checks = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for k in KEYS:
                a = heap.get(k)
                if a is None:
                    continue
                v = int(a.flat[0])
                if not np.array_equal(a, _value(k, v)):
                    results.put(("torn", k, v))
                    return
                checks += 1
                del a
        results.put(("ok", checks))
    except Exception as e:  # reported, not swallowed
        results.put(("error", repr(e)))


def test_readers_check_every_element_while_the_master_collects():
    with shmheap.Heap.create(heap_bytes=256 << 20, slots_log2=12) as heap:
        for k in KEYS:
            heap[k] = _value(k, 0)
        ctx = mp.get_context("fork")
        results = ctx.Queue()
        readers = [ctx.Process(target=_reader, args=(heap, 4.0, results))
                   for _ in range(N)]
        for p in readers:
            p.start()
        collections, timeouts, version = 0, 0, 0
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            version += 1
            for i, k in enumerate(KEYS):
                if (i + version) % 5 == 0:
                    heap.remove(k) if k in heap else None
                else:
                    heap.replace(k, _value(k, version))
            try:
                if heap.collect(timeout=2.0).ran:
                    collections += 1
            except shmheap.DeadlineExceeded:
                timeouts += 1
        got = [results.get(timeout=30) for _ in readers]
        for p in readers:
            p.join(30)
            assert p.exitcode == 0
        assert all(r[0] == "ok" for r in got), got
        assert all(r[1] > 0 for r in got), got
        assert collections >= 3, (collections, timeouts)
        heap.verify()


def _collect_child(heap, timeout, out):
    try:
        r = heap.collect(timeout=timeout)
        out.put(("ran", r.ran, r.blobs_moved))
    except shmheap.DeadlineExceeded as e:
        out.put(("deadline", str(e)))
    except Exception as e:
        out.put(("error", repr(e)))


def test_a_live_array_pins_its_data_against_another_processs_collect():
    with shmheap.Heap.create(heap_bytes=64 << 20, slots_log2=10) as heap:
        for i in range(40):
            heap["p%d" % i] = expected("p%d" % i, "float64", (8192,))
        a = heap["p39"]  # the last value: compaction would move it down
        ptr = a.__array_interface__["data"][0]
        for i in range(39):
            del heap["p%d" % i]
        dead = heap.stats().dead_bytes
        assert dead > 0

        ctx = mp.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_collect_child, args=(heap, 0.5, out))
        child.start()
        # while the child's collector waits, the array stays where it was
        for _ in range(20):
            assert a.__array_interface__["data"][0] == ptr
            np.testing.assert_array_equal(a, expected("p39", "float64",
                                                      (8192,)))
            time.sleep(0.01)
        result = out.get(timeout=30)
        child.join(30)
        assert result[0] == "deadline", result
        assert heap.stats().dead_bytes == dead  # nothing changed
        np.testing.assert_array_equal(a, expected("p39", "float64", (8192,)))

        # a collector that waits: the pin is dropped while it waits
        child = ctx.Process(target=_collect_child, args=(heap, 20.0, out))
        child.start()
        time.sleep(0.3)
        assert a.__array_interface__["data"][0] == ptr
        np.testing.assert_array_equal(a, expected("p39", "float64", (8192,)))
        del a
        result = out.get(timeout=30)
        child.join(30)
        assert result == ("ran", True, 1), result
        moved = heap["p39"]
        assert moved.__array_interface__["data"][0] != ptr
        np.testing.assert_array_equal(moved,
                                      expected("p39", "float64", (8192,)))
        assert heap.stats().dead_bytes == 0
