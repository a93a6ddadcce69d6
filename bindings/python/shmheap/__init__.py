"""shmheap: a shared, lock-free dict of numpy arrays across processes.

A heap is a hash table of typed arrays in shared memory. One process writes
an array under a key; every process that shares the heap reads it **in
place**: ``heap[key]`` is a read-only numpy array straight over the shared
pages, with no copy and no pickling.

    >>> import numpy as np, shmheap
    >>> with shmheap.Heap.create(heap_bytes=1 << 26) as heap:
    ...     heap["m"] = np.arange(6.0).reshape(2, 3)
    ...     a = heap["m"]                      # zero-copy, read-only
    ...     print(a.sum(), a.flags.writeable)
    ...     del a                              # unpins
    15.0 False

Sharing: ``Heap.create`` is anonymous and reaches the children forked after
it (``os.fork``, multiprocessing's ``fork`` start method), which use the same
``Heap`` object; ``Heap.create_named`` / ``Heap.open_named`` attach unrelated
processes (``spawn`` workers) by name; ``create_file`` / ``open_file`` keep a
heap in a file.

Pins: an array returned by a lookup pins the heap (its ``base`` is a
``Pin``): no collection moves the data while the array, or any slice or view
of it, is alive. ``collect`` in a process that holds one raises
``FailedPrecondition`` (it would wait for itself); from another process it
waits for the pin, up to its timeout, and then raises ``DeadlineExceeded``
having changed nothing.

Threads: a Heap may be used from any thread (calls hold the GIL; collect,
verify, create/open and copies of 1 MiB or more release it). A process's
threads share one session, so ``collect`` from one thread while another holds
an array is ``FailedPrecondition``.

Errors: every failure of the library is a ``ShmheapError`` subclass named
after its code (``NotFound``, ``AlreadyExists``, ...), carrying the library's
message; a dtype the heap does not store is a ``TypeError`` naming it.

Built over the C ABI (``capi/shmheap_c.h``) by the C extension
``shmheap._shmheap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from . import _shmheap

__all__ = [
    "Heap",
    "Read",
    "Pin",
    "Stats",
    "GcReport",
    "DTYPES",
    "MAX_DIMS",
    "ShmheapError",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "InternalError",
    "Unavailable",
    "DataLoss",
]

__version__ = "0.1.0"

#: The numpy dtypes the heap stores (OCaml's int and nativeint read as int64,
#: char as S1).
DTYPES = (
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "complex64",
    "complex128",
    "S1",
)

#: The most dimensions an array may have.
MAX_DIMS: int = _shmheap.MAX_DIMS

Read = _shmheap.Read
Pin = _shmheap.Pin


class ShmheapError(Exception):
    """A failure the library reported: ``code`` is the C ABI's code (an
    absl::StatusCode value), ``str(e)`` its message."""

    code: int = -1

    def __str__(self) -> str:
        # KeyError's __str__ would quote the message.
        return str(self.args[0]) if self.args else ""


class InvalidArgument(ShmheapError, ValueError):
    """Bad dims, kind, order, name or option (SHMHEAP_EINVALID)."""

    code = 3


class DeadlineExceeded(ShmheapError, TimeoutError):
    """collect could not stop the world in time; nothing changed."""

    code = 4


class NotFound(ShmheapError, KeyError):
    """No such key, heap name or file (SHMHEAP_ENOTFOUND)."""

    code = 5


class AlreadyExists(ShmheapError, KeyError):
    """The key already has a value (``heap[key] = a``), another key has the
    same 64-bit hash, a move's target exists, or a name to create exists."""

    code = 6


class PermissionDenied(ShmheapError, PermissionError):
    """The heap belongs to another uid."""

    code = 7


class ResourceExhausted(ShmheapError):
    """Table, heap or backing store full, memory floor, max_sessions."""

    code = 8


class FailedPrecondition(ShmheapError):
    """Not a heap or another format; collect while this process pins the
    heap; the heap or read scope is closed; publish of a published array."""

    code = 9


class Aborted(ShmheapError):
    """A move's source changed under it."""

    code = 10


class InternalError(ShmheapError):
    """A bug, or memory for a handle ran out."""

    code = 13


class Unavailable(ShmheapError):
    """A named heap is still being created."""

    code = 14


class DataLoss(ShmheapError):
    """The heap is damaged (verify names the first bad offset)."""

    code = 15


_shmheap._set_errors(
    ShmheapError,
    {
        c.code: c
        for c in (
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            InternalError,
            Unavailable,
            DataLoss,
        )
    },
)


@dataclasses.dataclass(frozen=True)
class Stats:
    """Heap.stats(): the table, the heap's bytes, sessions, collections."""

    table_slots: int
    table_used: int
    table_tombstones: int
    live_blobs: int
    heap_capacity: int
    heap_top: int
    live_bytes: int
    dead_bytes: int
    sessions: int
    collections: int


@dataclasses.dataclass(frozen=True)
class GcReport:
    """What a collection did (``ran`` False: another process's collection
    ran, or there was nothing to do)."""

    ran: bool
    bytes_before: int
    bytes_after: int
    blobs_moved: int
    bytes_moved: int
    live_blobs: int
    tombstones_cleared: int
    seconds: float
    handshake_seconds: float


class Heap(_shmheap.Heap):
    """A shared-memory heap: a mapping of str/bytes keys to numpy arrays.

    Create with ``Heap.create`` (anonymous, shared by fork),
    ``Heap.create_named`` / ``Heap.open_named``, or ``Heap.create_file`` /
    ``Heap.open_file``; use as a context manager or call ``close()``.

    ``heap[key] = a`` (write-once; a second add raises AlreadyExists),
    ``heap.add(key, a) -> bool``, ``heap.replace(key, a)``, ``heap[key]`` /
    ``heap.get(key, default)`` (read-only, zero-copy; the array's base pins),
    ``key in heap``, ``del heap[key]``, ``heap.move(src, dst)``,
    ``heap.reserve(key, shape, dtype, order)`` + ``heap.publish(a)``,
    ``heap.read()`` (a read scope), ``heap.get_many(keys)``,
    ``heap.collect()``, ``heap.stats()``, ``heap.verify()``.
    """

    __slots__ = ()

    def stats(self) -> Stats:
        """The heap's counters as a Stats.

        Raises: FailedPrecondition (the heap is closed).
        """
        return Stats(**self._stats())

    def collect(self, timeout: Optional[float] = None) -> GcReport:
        """Compacts the heap in place, waiting at most ``timeout`` seconds
        (None: 10 s) for the other processes to leave their scopes.

        Raises: FailedPrecondition (this process holds an array from get,
        get_many or a read scope, an open read scope or a reserved array: it
        would wait for itself; the message counts them), DeadlineExceeded
        (another process stayed pinned; nothing changed), DataLoss,
        InvalidArgument (timeout not > 0).
        """
        return GcReport(**self._collect(timeout))

    def maybe_collect(self, overhead: float = 2.0) -> GcReport:
        """Collects when the used heap reaches ``overhead`` x live bytes
        (2.0 is hh_shared's gentle policy, 1.2 its aggressive one).

        Raises: as collect; InvalidArgument (overhead negative or NaN).
        """
        return GcReport(**self._maybe_collect(overhead))

    def __iter__(self) -> Any:
        # Without this, Python would iterate by calling __getitem__(0), ...
        raise TypeError(
            "a Heap cannot be iterated: its table holds key hashes, not keys"
        )

