"""The binding in one process: every kind, layout and rank round-trips zero
copy and read-only; every write and its errors; builders, read scopes and
the pins they hold; collect, stats, verify; named and file heaps; close;
pickling; the stubs and docstrings.

Every test compares every element with an independently computed array
(common.expected), so a binding that copied, reordered or reinterpreted
data, or dropped a pin, fails.
"""

import ast
import gc
import os
import pickle
import threading

import numpy as np
import pytest

import shmheap
from common import STORED, check_zero_copy, expected, unique_name


@pytest.fixture
def heap():
    with shmheap.Heap.create(heap_bytes=64 << 20, slots_log2=12) as h:
        yield h


def shapes():
    sixteen = [1] * 16
    sixteen[0], sixteen[7], sixteen[15] = 2, 3, 2
    return [(), (5,), (3, 4), (2, 3, 4), tuple(sixteen)]


@pytest.mark.parametrize("dtype,kind", STORED)
def test_every_kind_layout_and_rank_round_trips_in_place(heap, dtype, kind):
    for order in ("C", "F"):
        for shape in shapes():
            key = "%s/%s/%s/%d" % (dtype, kind, order, len(shape))
            want = expected(key, dtype, shape, order=order)
            assert heap.add(key, want, kind=kind, order=order) is True
            got = heap[key]
            read_as = "S1" if kind == "char" else dtype
            assert got.dtype == np.dtype(read_as), (key, got.dtype)
            assert got.shape == shape
            if kind == "char" and dtype != "S1":
                got_values = got.view(np.uint8)
            else:
                got_values = got
            np.testing.assert_array_equal(got_values, want)
            if len([d for d in shape if d > 1]) > 1:
                # the layout is kept: a Fortran value is Fortran-ordered
                assert got.flags.f_contiguous == (order == "F"), key
                assert got.flags.c_contiguous == (order == "C"), key
            check_zero_copy(heap, got)
            with pytest.raises(ValueError):
                got.flat[0] = got.flat[-1]
            with pytest.raises(ValueError):
                got.flags.writeable = True


def test_order_none_keeps_the_arrays_own_layout_and_copies_strided(heap):
    f = np.asfortranarray(expected("f", "float64", (3, 5)))
    heap["f"] = f
    assert heap["f"].flags.f_contiguous and not heap["f"].flags.c_contiguous
    strided = expected("s", "int32", (6, 8))[::2, 1::3]
    heap["s"] = strided
    np.testing.assert_array_equal(heap["s"], strided)
    assert heap["s"].flags.c_contiguous
    heap.add("list", [[1.5, 2.5], [3.5, 4.5]])
    np.testing.assert_array_equal(heap["list"], [[1.5, 2.5], [3.5, 4.5]])


@pytest.mark.parametrize(
    "dtype",
    [
        "bool",
        "uint32",
        "uint64",
        "float16",
        "longdouble",
        "object",
        "U1",
        "S2",
        ">f8",
        "datetime64[s]",
        [("a", "i4"), ("b", "f8")],
    ],
)
def test_other_dtypes_raise_type_error_naming_the_dtype(heap, dtype):
    dt = np.dtype(dtype)
    a = np.zeros(3, dtype=dt)
    with pytest.raises(TypeError) as e:
        heap["x"] = a
    assert repr(dt) in str(e.value)
    with pytest.raises(TypeError) as e:
        heap.reserve("x", (3,), dt)
    assert repr(dt) in str(e.value)
    assert "x" not in heap


def test_shape_and_kind_errors(heap):
    with pytest.raises(shmheap.InvalidArgument) as e:
        heap["d17"] = np.zeros([1] * 17)
    assert "17" in str(e.value)
    with pytest.raises(shmheap.InvalidArgument):
        heap.add("k", np.zeros(3), kind="int")  # float64 is not int
    with pytest.raises(shmheap.InvalidArgument):
        heap.add("k", np.zeros(3, np.int64), kind="bogus")
    with pytest.raises(shmheap.InvalidArgument):
        heap.add("k", np.zeros(3), order="K")
    with pytest.raises(TypeError):
        heap[3] = np.zeros(3)
    with pytest.raises(TypeError):
        heap.get(3.5)
    assert "k" not in heap


def test_mapping_interface(heap):
    a = expected("a", "float64", (4, 4))
    heap["a"] = a
    with pytest.raises(shmheap.AlreadyExists) as e:
        heap["a"] = a + 1
    assert isinstance(e.value, KeyError)
    assert "already has a value" in str(e.value)
    assert heap.add("a", a + 1) is False
    np.testing.assert_array_equal(heap["a"], a)  # unchanged
    assert "a" in heap and b"a" in heap and "b" not in heap
    assert heap.get("b") is None
    assert heap.get("b", 7) == 7
    with pytest.raises(shmheap.NotFound) as e:
        heap["b"]
    assert isinstance(e.value, KeyError) and "b" in str(e.value)

    old = heap["a"]
    assert heap.replace("b", a) is False  # no value to replace
    assert heap.replace("a", a * 2) is True
    np.testing.assert_array_equal(heap["a"], a * 2)
    np.testing.assert_array_equal(old, a)  # the old value stays pinned

    heap.move("a", "c")
    assert "a" not in heap
    np.testing.assert_array_equal(heap["c"], a * 2)
    with pytest.raises(shmheap.AlreadyExists):
        heap.move("b", "c")
    with pytest.raises(shmheap.NotFound):
        heap.move("nope", "d")

    del heap["c"]
    assert "c" not in heap
    with pytest.raises(shmheap.NotFound):
        del heap["c"]
    heap.remove("b")
    assert "b" not in heap
    assert heap.hash("x") == heap.hash(b"x") != 0
    with pytest.raises(TypeError):
        iter(heap)


def test_reserve_then_publish(heap):
    for order in ("C", "F"):
        key = "r" + order
        want = expected(key, "int16", (3, 7), order=order)
        r = heap.reserve(key, (3, 7), np.int16, order)
        assert r.flags.writeable and r.base is not None
        assert key not in heap  # nothing published yet
        r[...] = want
        assert heap.publish(r) is True
        assert not r.flags.writeable  # a published value never changes
        with pytest.raises(ValueError):
            r[0, 0] = 1
        np.testing.assert_array_equal(heap[key], want)
        np.testing.assert_array_equal(r, want)  # still valid, still pinned
        assert heap[key].flags.f_contiguous == (order == "F")
        with pytest.raises(shmheap.FailedPrecondition):
            heap.publish(r)

    # a second writer of the key loses; the first value stays
    r2 = heap.reserve("rC", (3, 7), "int16")
    r2.fill(-1)
    assert heap.publish(r2) is False
    np.testing.assert_array_equal(heap["rC"], expected("rC", "int16", (3, 7)))

    del r, r2  # published arrays pin until dropped

    # a view taken before publish keeps the data pinned after it
    r3 = heap.reserve("r3", 10, "float32")
    r3[:] = 0
    v = r3[2:5]
    v[:] = 1
    assert heap.publish(r3) is True
    del r3
    with pytest.raises(shmheap.FailedPrecondition):
        heap.collect()
    np.testing.assert_array_equal(v, [1, 1, 1])
    del v
    heap.collect()
    np.testing.assert_array_equal(heap["r3"], [0, 0, 1, 1, 1, 0, 0, 0, 0, 0])

    # publish through a view finds the builder only through the array
    r5 = heap.reserve("r5", 4, "float64")
    with pytest.raises(TypeError):
        heap.publish(r5[1:])
    del r5

    # dropped unpublished: discarded
    r4 = heap.reserve("r4", (2, 2), "complex128")
    r4[...] = 1j
    del r4
    gc.collect()
    assert "r4" not in heap
    with pytest.raises(TypeError):
        heap.publish(np.zeros(3))
    with pytest.raises(shmheap.InvalidArgument):
        heap.reserve("neg", (-1,), "float64")


def test_collect_in_a_pinned_process_raises_and_says_why(heap):
    for i in range(20):
        heap["k%d" % i] = expected("k%d" % i, "float64", (128,))
    for i in range(19):
        del heap["k%d" % i]
    a = heap["k19"]
    before = a.__array_interface__["data"][0]
    with pytest.raises(shmheap.FailedPrecondition) as e:
        heap.collect()
    assert "1 array(s) from get" in str(e.value)
    assert "would wait for itself" in str(e.value)
    view = a[10:20]  # a view holds the same pin
    del a
    with pytest.raises(shmheap.FailedPrecondition):
        heap.collect()
    assert view.__array_interface__["data"][0] == before + 10 * 8
    del view
    report = heap.collect()
    assert isinstance(report, shmheap.GcReport) and report.ran
    assert report.blobs_moved == 1 and report.bytes_after < report.bytes_before
    moved = heap["k19"]
    assert moved.__array_interface__["data"][0] != before
    np.testing.assert_array_equal(moved, expected("k19", "float64", (128,)))
    s = heap.stats()
    assert isinstance(s, shmheap.Stats)
    assert s.live_blobs == 1 and s.dead_bytes == 0 and s.collections == 1
    assert heap.verify() is None
    with pytest.raises(shmheap.InvalidArgument):
        heap.collect(timeout=0)
    del moved
    assert heap.maybe_collect(2.0).ran is False  # nothing to reclaim


def test_read_scope_pins_until_its_last_array_is_gone(heap):
    keys = ["r%d" % i for i in range(50)]
    for k in keys:
        heap[k] = expected(k, "uint16", (7, 3))
    with heap.read() as r:
        got = [r[k] for k in keys]
        assert r.get("absent") is None and r.get("absent", 1) == 1
        assert "r3" in r and "absent" not in r
        with pytest.raises(shmheap.NotFound):
            r["absent"]
        many = r.get_many(keys + ["absent"])
    assert many[-1] is None
    assert r.closed and r.active  # arrays borrowed from it are alive
    with pytest.raises(shmheap.FailedPrecondition):
        r["r1"]
    for k, a, b in zip(keys, got, many):
        want = expected(k, "uint16", (7, 3))
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)
        check_zero_copy(heap, a)
    del heap["r0"]
    with pytest.raises(shmheap.FailedPrecondition) as e:
        heap.collect()
    assert "100 array(s) from read scopes" in str(e.value)
    del got, many, a, b
    assert not r.active
    assert heap.collect().ran

    arrays = heap.get_many(keys[1:] + ["absent"])
    assert arrays[-1] is None
    for k, a in zip(keys[1:], arrays):
        np.testing.assert_array_equal(a, expected(k, "uint16", (7, 3)))
    with pytest.raises(shmheap.FailedPrecondition):
        heap.collect()
    del arrays, a
    heap.collect()


def test_errors_carry_the_library_message():
    with pytest.raises(shmheap.InvalidArgument) as e:
        shmheap.Heap.create(slots_log2=99)
    assert "table_slots_log2" in str(e.value) and e.value.code == 3
    with pytest.raises(shmheap.InvalidArgument):
        shmheap.Heap.create(heap_bytes=-1)
    with pytest.raises(shmheap.NotFound) as e:
        shmheap.Heap.open_named("shmheap-pytest-no-such-heap")
    assert "no heap named" in str(e.value)
    with pytest.raises(shmheap.InvalidArgument):
        shmheap.Heap.open_named("a/b")
    with shmheap.Heap.create(heap_bytes=1 << 20, chunk_bytes=1 << 16) as h:
        with pytest.raises(shmheap.ResourceExhausted):
            h["big"] = np.zeros(1 << 18)  # 2 MiB into a 1 MiB heap
        h["small"] = np.ones(8)  # still usable
        np.testing.assert_array_equal(h["small"], np.ones(8))
    with pytest.raises(TypeError):
        shmheap.Heap()


def test_close_and_context_manager():
    h = shmheap.Heap.create(heap_bytes=1 << 24)
    h["a"] = expected("a", "int32", (100,))
    a = h["a"]
    h.close()
    assert h.closed
    h.close()  # idempotent
    for op in (lambda: h["a"], lambda: h.add("b", np.ones(1)),
               lambda: "a" in h, lambda: h.collect(), lambda: h.read(),
               lambda: h.stats()):
        with pytest.raises(shmheap.FailedPrecondition):
            op()
    # the live array keeps the mapping until it is dropped
    np.testing.assert_array_equal(a, expected("a", "int32", (100,)))
    del a
    with shmheap.Heap.create(heap_bytes=1 << 24) as h2:
        assert not h2.closed and h2.backing == "anonymous"
    assert h2.closed
    assert "closed" in repr(h2)


def test_named_heaps_and_pickling():
    name = unique_name("named")
    with shmheap.Heap.create_named(name, heap_bytes=1 << 24) as h:
        assert h.name == name and h.backing == "named" and h.path is None
        with pytest.raises(shmheap.AlreadyExists):
            shmheap.Heap.create_named(name)
        h["x"] = expected("x", "complex64", (4, 4))
        with shmheap.Heap.open_named(name) as other:
            np.testing.assert_array_equal(
                other["x"], expected("x", "complex64", (4, 4)))
        again = pickle.loads(pickle.dumps(h))
        assert isinstance(again, shmheap.Heap) and again.name == name
        np.testing.assert_array_equal(again["x"], h["x"])
        again.close()
        shmheap.Heap.unlink_named(name)
        with pytest.raises(shmheap.NotFound):
            shmheap.Heap.unlink_named(name)
        np.testing.assert_array_equal(  # attached processes keep it
            h["x"], expected("x", "complex64", (4, 4)))
    with shmheap.Heap.create() as anon:
        with pytest.raises(TypeError):
            pickle.dumps(anon)


def test_file_heaps_persist(tmp_path):
    path = str(tmp_path / "heap.shm")
    with shmheap.Heap.create_file(path, heap_bytes=1 << 24) as h:
        assert h.path == path and h.backing == "file"
        h["f"] = np.asfortranarray(expected("f", "float32", (6, 5)))
    with pytest.raises(shmheap.AlreadyExists):
        shmheap.Heap.create_file(path)
    with shmheap.Heap.open_file(path) as h:
        got = h["f"]
        assert got.flags.f_contiguous
        np.testing.assert_array_equal(got, expected("f", "float32", (6, 5)))
        h.verify()
        del got
    with pytest.raises(shmheap.NotFound):
        shmheap.Heap.open_file(str(tmp_path / "absent"))


def test_threads_share_a_heap(heap):
    """4 reader threads read every value while a writer thread adds more:
    each value read is complete (every element checked)."""
    errors = []
    done = threading.Event()

    def writer():
        for i in range(300):
            k = "t%d" % i
            heap[k] = expected(k, "int32", (64,))
        done.set()

    def reader():
        seen = 0
        while not done.is_set() or seen < 300:
            seen = 0
            for i in range(300):
                k = "t%d" % i
                a = heap.get(k)
                if a is None:
                    continue
                if not np.array_equal(a, expected(k, "int32", (64,))):
                    errors.append(k)
                seen += 1
        return seen

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert heap.stats().live_blobs == 300


def test_docstrings_list_what_they_raise():
    public = [getattr(shmheap.Heap, n) for n in dir(shmheap.Heap)
              if not n.startswith("_")]
    public += [getattr(shmheap.Read, n) for n in ("get", "get_many", "close")]
    for f in public:
        if callable(f):
            assert f.__doc__ and "Raises" in f.__doc__, f


def test_stubs_name_the_whole_public_api():
    here = os.path.dirname(shmheap.__file__)
    tree = ast.parse(open(os.path.join(here, "__init__.pyi")).read())
    top = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            top[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            top[node.target.id] = node
    for name in shmheap.__all__:
        assert name in top, name
    for cls in ("Heap", "Read"):
        stub = {n.name for n in top[cls].body
                if isinstance(n, ast.FunctionDef)}
        real = {n for n in dir(getattr(shmheap, cls))
                if not n.startswith("_") or n in (
                    "__getitem__", "__setitem__", "__delitem__",
                    "__contains__", "__enter__", "__exit__")}
        assert real - stub == set(), (cls, real - stub)
