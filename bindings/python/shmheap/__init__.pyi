# Type stubs for shmheap (the package and its C extension, _shmheap).
from __future__ import annotations

import dataclasses
from types import TracebackType
from typing import Literal, Optional, Sequence, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str
DTYPES: tuple[str, ...]
MAX_DIMS: int

Key = Union[str, bytes]
Kind = Optional[Literal["int", "nativeint", "char"]]
Order = Optional[Literal["C", "F"]]
_T = TypeVar("_T")
_H = TypeVar("_H", bound="Heap")

class ShmheapError(Exception):
    code: int

class InvalidArgument(ShmheapError, ValueError): ...
class DeadlineExceeded(ShmheapError, TimeoutError): ...
class NotFound(ShmheapError, KeyError): ...
class AlreadyExists(ShmheapError, KeyError): ...
class PermissionDenied(ShmheapError, PermissionError): ...
class ResourceExhausted(ShmheapError): ...
class FailedPrecondition(ShmheapError): ...
class Aborted(ShmheapError): ...
class InternalError(ShmheapError): ...
class Unavailable(ShmheapError): ...
class DataLoss(ShmheapError): ...

@dataclasses.dataclass(frozen=True)
class Stats:
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
    ran: bool
    bytes_before: int
    bytes_after: int
    blobs_moved: int
    bytes_moved: int
    live_blobs: int
    tombstones_cleared: int
    seconds: float
    handshake_seconds: float

class Pin:
    """The base of an array from a lookup; holds its pin."""

class Read:
    @property
    def closed(self) -> bool: ...
    @property
    def active(self) -> bool: ...
    def __getitem__(self, key: Key) -> np.ndarray: ...
    @overload
    def get(self, key: Key) -> Optional[np.ndarray]: ...
    @overload
    def get(self, key: Key, default: _T) -> Union[np.ndarray, _T]: ...
    def __contains__(self, key: Key) -> bool: ...
    def get_many(self, keys: Sequence[Key]) -> list[Optional[np.ndarray]]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Read: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class Heap:
    @classmethod
    def create(
        cls: type[_H],
        *,
        heap_bytes: int = ...,
        slots_log2: int = ...,
        max_sessions: int = ...,
        chunk_bytes: int = ...,
        min_available_bytes: int = ...,
        seed: int = ...,
        keep_keys: bool = ...,
        checksums: bool = ...,
    ) -> _H: ...
    @classmethod
    def create_named(
        cls: type[_H],
        name: str,
        *,
        heap_bytes: int = ...,
        slots_log2: int = ...,
        max_sessions: int = ...,
        chunk_bytes: int = ...,
        min_available_bytes: int = ...,
        seed: int = ...,
        keep_keys: bool = ...,
        checksums: bool = ...,
    ) -> _H: ...
    @classmethod
    def open_named(cls: type[_H], name: str) -> _H: ...
    @staticmethod
    def unlink_named(name: str) -> None: ...
    @classmethod
    def create_file(
        cls: type[_H],
        path: str,
        *,
        heap_bytes: int = ...,
        slots_log2: int = ...,
        max_sessions: int = ...,
        chunk_bytes: int = ...,
        min_available_bytes: int = ...,
        seed: int = ...,
        keep_keys: bool = ...,
        checksums: bool = ...,
    ) -> _H: ...
    @classmethod
    def open_file(cls: type[_H], path: Union[str, bytes]) -> _H: ...
    @property
    def closed(self) -> bool: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def path(self) -> Optional[str]: ...
    @property
    def backing(self) -> Literal["anonymous", "named", "file"]: ...
    def close(self) -> None: ...
    def __enter__(self: _H) -> _H: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...
    def add(
        self, key: Key, array: npt.ArrayLike, *, kind: Kind = None,
        order: Order = None
    ) -> bool: ...
    def replace(
        self, key: Key, array: npt.ArrayLike, *, kind: Kind = None,
        order: Order = None
    ) -> bool: ...
    def __setitem__(self, key: Key, array: npt.ArrayLike) -> None: ...
    def __getitem__(self, key: Key) -> np.ndarray: ...
    @overload
    def get(self, key: Key) -> Optional[np.ndarray]: ...
    @overload
    def get(self, key: Key, default: _T) -> Union[np.ndarray, _T]: ...
    def __contains__(self, key: Key) -> bool: ...
    def __delitem__(self, key: Key) -> None: ...
    def remove(self, key: Key) -> None: ...
    def move(self, src: Key, dst: Key) -> None: ...
    def hash(self, key: Key) -> int: ...
    def reserve(
        self,
        key: Key,
        shape: Union[int, Sequence[int]],
        dtype: npt.DTypeLike,
        order: Literal["C", "F"] = "C",
        *,
        kind: Kind = None,
    ) -> np.ndarray: ...
    def publish(self, array: np.ndarray) -> bool: ...
    def read(self) -> Read: ...
    def get_many(self, keys: Sequence[Key]) -> list[Optional[np.ndarray]]: ...
    def collect(self, timeout: Optional[float] = None) -> GcReport: ...
    def maybe_collect(self, overhead: float = 2.0) -> GcReport: ...
    def stats(self) -> Stats: ...
    def verify(self) -> None: ...
    def mapping(self) -> tuple[int, int]: ...
