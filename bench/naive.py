"""The baselines rcfd is measured against, written in the most obvious way.

NaiveFD is what most people write first: a threading.Condition per FD,
`with cond:` on entry and on exit, notify_all on every release, and a
weakref.finalize as the safety net. It is correct for the uncontended case
and for close-after-borrows, which is all the benchmark needs from it.

Floor is the least a lock-based borrow can cost: one acquire, the call, one
release. It is not correct (it serialises the borrows, and an exception from
fn leaves the lock held); it is a floor, not a peer. It is called the same
way as FD.do (a method taking fn) so that call overhead cancels out.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NaiveClosedError(OSError):
    """Borrow or close after close() began."""


class NaiveFD:
    """A reference-counted descriptor the way most people would write one."""

    def __init__(self, rawfd: int, close_func: Callable[[int], object] = os.close) -> None:
        self._cond = threading.Condition()
        self._rawfd = rawfd
        self._close_func = close_func
        self._count = 0
        self._closing = False
        self._finalizer = weakref.finalize(self, close_func, rawfd)

    def do(self, fn: Callable[[int], T]) -> T:
        with self._cond:
            if self._closing:
                raise NaiveClosedError("use of closed file descriptor")
            self._count += 1
        try:
            return fn(self._rawfd)
        finally:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._closing:
                raise NaiveClosedError("close of closed file descriptor")
            self._closing = True
            while self._count:
                self._cond.wait()
        self._finalizer.detach()
        self._close_func(self._rawfd)


class Floor:
    """One lock.acquire(); fn(rawfd); lock.release(): the floor of a locked borrow."""

    __slots__ = ("_lock", "_rawfd")

    def __init__(self, rawfd: int) -> None:
        self._lock = threading.Lock()
        self._rawfd = rawfd

    def do(self, fn: Callable[[int], object]) -> None:
        lock = self._lock
        lock.acquire()
        fn(self._rawfd)
        lock.release()


class EmptyContext:
    """A context manager class that does nothing: __enter__ returns the number.

    The least any `with` on a Python class costs (the two special-method
    lookups and calls), with no borrow at all: what `with fd.borrow()` pays
    on top of do() before it does any work of its own."""

    __slots__ = ("_rawfd",)

    def __init__(self, rawfd: int) -> None:
        self._rawfd = rawfd

    def __enter__(self) -> int:
        return self._rawfd

    def __exit__(self, *exc: object) -> None:
        return None
