"""The borrow where no GIL makes a C call atomic.

On a free-threaded build running without the GIL (or anywhere with
RCFD_NOGIL=1, the switch that runs this path on a GIL build for testing), a
borrow cannot be one unsplittable `holders.insert`, because nothing promises
that two threads' calls into one array do not interleave. So every step the
GIL path takes as one C call (the insert, the remove, the tombstone) is taken
here under the FD's lock, which init() makes for every FD on this path. The
structures are the GIL path's (an array of thread idents that a close
freezes, tombstones on the close), so everything from the freeze on
(rcfd._closing) is shared; only the entry and the release differ, and
rcfd._fd picks them once, at import (`ENABLED`).

Signals rule on this path. A lock taken with `with` gives CPython a check
point as its __enter__ returns (from 3.14), before the step under it, so a
step's position cannot tell whether an interrupt came before or after it.
Instead each step records itself in the same C call that takes it:
`done.extend(map(holders.insert, ...))` inserts and appends to `done`, or
raises having done neither. The caller's handler reads `done`: a borrow
interrupted with `done` set is given back, a release interrupted with
`done` empty is taken again (give_back_again), and neither happens twice.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import sys
import threading
from array import array
from collections.abc import Callable
from types import CoroutineType, TracebackType
from typing import TYPE_CHECKING, NoReturn, TypeVar, cast

from rcfd._checks import check_callable
from rcfd._errors import borrow_entered_twice

if TYPE_CHECKING:
    from rcfd._fd import FD, Borrow

T = TypeVar("T")
_get_ident = threading.get_ident
_start_new_thread = _thread.start_new_thread

ENABLED = os.environ.get("RCFD_NOGIL") == "1" or not getattr(
    sys, "_is_gil_enabled", lambda: True
)()
"""True if this process runs the locked borrow: the interpreter runs without
the GIL, or RCFD_NOGIL=1 asked for it. Read once, at import."""

_AT_FRONT = (0,)  # insert at the front, as the GIL path does


def take(fd: FD, holders: array[int], tid: int, done: list[object], borrow: Borrow | None) -> None:
    """BORROW under the FD's lock: insert `tid` and record it in `done`, in one
    C call; BufferError (nothing recorded) if the holders are frozen (a close
    began) or the FD is UNINIT. A `borrow` (Borrow.__enter__) is checked
    and marked entered in the same locked step: without the GIL, two threads
    entering one Borrow would otherwise both pass the check."""
    lock = fd._lock
    if lock is None:  # UNINIT: init makes the lock before it publishes the holders
        raise BufferError
    with lock:
        if borrow is not None and borrow._tid:
            raise borrow_entered_twice()
        done.extend(map(holders.insert, _AT_FRONT, (tid,)))
        if borrow is not None:
            borrow._tid = tid


def give_back(fd: FD, holders: array[int], tid: int, done: list[object]) -> None:
    """RELEASE: drop `tid`'s borrow (recorded in `done`), then, once a close
    began, let it decide whether this was the last one. Up to the decision
    this reaches no deeper into the stack than `take` did: a borrow taken at
    the recursion limit is given back there too (specs/cpython.md). (Both are
    called with every argument given: on 3.13 a call that fills in a default
    needs more room at the limit than one that does not.)"""
    lock = fd._lock
    assert lock is not None  # a borrow was taken: the FD is initialized
    with lock:
        try:
            done.extend(map(holders.remove, (tid,)))  # OPEN: remove the entry
        except BufferError:
            closing = fd._closer  # frozen: a tombstone, `released += (tid,)` as on the GIL path
            assert closing is not None
            done.extend(map(closing.released.__iadd__, ((tid,),)))
    if fd._closer is not None:  # (no close, nothing to decide: no call)
        _decide(fd)


def give_back_again(fd: FD, holders: array[int], tid: int, done: list[object]) -> None:
    """After an interrupt in give_back: drop the borrow if it was not dropped
    (`done` empty), and decide in any case (idempotent)."""
    if not done:
        give_back(fd, holders, tid, done)
        return
    try:
        _decide(fd)
    except RecursionError:  # (the recursion limit) see Closing.rescue
        if fd._closer is not None:
            _start_new_thread(fd._closer.rescue, (fd,))
        raise


def _decide(fd: FD) -> None:
    closing = fd._closer
    if closing is not None and closing.freeze:
        try:
            closing.release(fd)
        except BaseException:  # (Signals rule) resume once after an interrupt
            closing.release(fd)
            raise


# -- the three calls that differ from the GIL path (rcfd._fd binds them) -------


def do(self: FD, fn: Callable[[int], T], /) -> T:
    """Call fn(rawfd) under a borrow and return what it returns (FD.do, on
    the path without the GIL: the borrow's entry and release take the lock)."""
    tid = _get_ident()
    holders = self._holders
    done: list[object] = []
    try:
        take(self, holders, tid, done, None)  # (no default: see give_back)
    except BufferError:
        check_callable("do", "fn", fn)  # a bad fn is reported first
        raise self._refused(holders, "do") from None
    except BaseException:
        if done:  # (Signals rule) counted, and interrupted: give it back
            give_back(self, holders, tid, [])
        raise
    try:
        result = fn(self._rawfd)
    except TypeError:
        check_callable("do", "fn", fn)
        raise
    finally:
        fd = self
        # -- release (no-GIL copy "do"; specs/cpython.md, "Signals") --
        released: list[object] = []
        try:
            give_back(fd, holders, tid, released)
        except BaseException:
            give_back_again(fd, holders, tid, released)
            raise
        # -- end release --
    refuse_coroutine(result)
    return result


def borrow_enter(self: Borrow) -> int:
    """Borrow.__enter__ on the path without the GIL."""
    fd = self._fd
    tid = _get_ident()
    holders = fd._holders
    done: list[object] = []
    try:
        take(fd, holders, tid, done, self)
    except BufferError:
        raise fd._refused(holders, "borrow") from None
    except BaseException:
        if done:  # (Signals rule) counted, and no __exit__ will come
            self._tid = 0
            give_back(fd, holders, tid, [])
        raise
    return fd._rawfd


def borrow_exit(
    self: Borrow,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> None:
    """Borrow.__exit__ on the path without the GIL."""
    fd = self._fd
    tid = self._tid
    if not tid:
        return  # not entered, left already, or dropped by the fork hook
    self._tid = 0  # left
    holders = fd._holders
    # -- release (no-GIL copy "Borrow"; specs/cpython.md, "Signals") --
    released: list[object] = []
    try:
        give_back(fd, holders, tid, released)
    except BaseException:
        give_back_again(fd, holders, tid, released)
        raise
    # -- end release --


def refuse_coroutine(result: object) -> None:
    """`await fd.do(async_fn)` would run async_fn's body after the borrow
    ended, on a number that may be closed by then (specs/ecosystem.md)."""
    if type(result) is CoroutineType:
        refuse(
            result,
            "do: fn returned a coroutine, which would run after the borrow "
            "ended; call a blocking fn (in a thread: asyncio.to_thread(fd.do, fn))",
        )


def refuse(coroutine: object, message: str) -> NoReturn:
    """Close a coroutine rcfd will not run (so it never warns "never
    awaited"), then raise TypeError(message). Also for close_func's and
    on_closing's (rcfd._closing.refuse_async)."""
    with contextlib.suppress(RuntimeError):  # (one that ignores GeneratorExit)
        cast("CoroutineType[object, object, object]", coroutine).close()
    raise TypeError(message)
