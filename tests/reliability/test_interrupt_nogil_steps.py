"""The no-GIL borrow (rcfd/_nogil.py) under an interrupt at each of its check
points, on any build: its functions are called directly, on FDs that have
their lock, as they are on a free-threaded build (or with RCFD_NOGIL=1).

Each step takes the FD's lock with `with`, then records itself in the C call
that takes it (`done.extend(map(...))`). CPython may run a signal handler as
the lock's __enter__ returns (from 3.14), before the step, or as the with
ends, after it; a C call itself is never split. The doubles below make each
of those two points raise, once: holders whose insert/remove raises before
acting (the interrupt before the step), and a lock whose __exit__ raises once
released (the interrupt after it). specs/cpython.md, "Signals".
"""

from __future__ import annotations

import linecache
import sys
import threading
from array import array
from types import FrameType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from _typeshed import TraceFunction

import pytest

import rcfd
from rcfd import _nogil
from tests.support import WAIT, CountingClose, HeldBorrow, open_fd


class Injected(KeyboardInterrupt):
    """The interrupt, as CPython would raise it from a SIGINT handler."""


if TYPE_CHECKING:
    IntArray = array[int]
else:
    IntArray = array  # array[int] is subscriptable at run time only from 3.12


class RaisesBefore(IntArray):
    """Holders whose next insert or remove raises Injected before acting."""

    armed = True

    def insert(self, index: int, tid: int, /) -> None:
        self._fire()
        super().insert(index, tid)

    def remove(self, tid: int, /) -> None:
        self._fire()
        super().remove(tid)

    def _fire(self) -> None:
        if self.armed:
            self.armed = False
            raise Injected


class RaisesAfterUnlock:
    """The FD's lock, whose next with-exit releases it and then raises."""

    def __init__(self, inner: threading.RLock) -> None:
        self.inner = inner
        self.armed = False

    def __enter__(self) -> bool:
        return self.inner.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()
        if self.armed:
            self.armed = False
            raise Injected

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.inner.acquire(blocking, timeout)

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return bool(getattr(self.inner, "_is_owned")())  # noqa: B009  (CPython's RLock)


def locked_fd(holders: IntArray | None = None) -> tuple[rcfd.FD, CountingClose, RaisesAfterUnlock]:
    """An OPEN FD as the no-GIL path has it (its lock made at init)."""
    fd, closer = open_fd()
    lock = RaisesAfterUnlock(cast(threading.RLock, fd._guard()))
    object.__setattr__(fd, "_lock", lock)
    if holders is not None:
        object.__setattr__(fd, "_holders", holders)  # OPEN, unshared: no entries to carry
    return fd, closer, lock


def borrow_with(fd: rcfd.FD, form: str) -> None:
    if form == "do":
        _nogil.do(fd, lambda rawfd: pytest.fail("fn ran after an interrupted borrow"))
    else:
        borrow = fd.borrow()
        _nogil.borrow_enter(borrow)
        pytest.fail("the block ran after an interrupted borrow")


@pytest.mark.parametrize("form", ["do", "borrow"])
def test_a_borrow_interrupted_before_its_insert_takes_nothing(form: str) -> None:
    fd, closer, _ = locked_fd(RaisesBefore("L"))
    with pytest.raises(Injected):
        borrow_with(fd, form)
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


@pytest.mark.parametrize("form", ["do", "borrow"])
def test_a_borrow_interrupted_after_its_insert_gives_it_back(form: str) -> None:
    fd, closer, lock = locked_fd()
    lock.armed = True
    with pytest.raises(Injected):
        borrow_with(fd, form)
    assert fd.borrow_count == 0, "the interrupted borrow stayed counted"
    fd.close(timeout=WAIT)  # would time out if the count were left at 1
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


@pytest.mark.parametrize("closing", [False, True], ids=["open", "closing"])
@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("form", ["do", "borrow"])
def test_a_release_interrupted_on_either_side_of_its_step_happens_once(
    form: str, where: str, closing: bool
) -> None:
    holders = RaisesBefore("L")
    holders.armed = False
    fd, closer, lock = locked_fd(holders)
    other = HeldBorrow(fd) if closing else None  # keeps the close waiting
    entered = threading.Event()
    leave = threading.Event()

    def body(rawfd: int) -> None:
        entered.set()
        assert leave.wait(WAIT)
        # Arm the interrupt for this borrow's own release.
        if where == "before":
            holders.armed = True
        else:
            lock.armed = True

    def borrow() -> None:
        if form == "do":
            _nogil.do(fd, body)
        else:
            b = fd.borrow()
            _nogil.borrow_enter(b)
            try:
                body(0)
            finally:
                _nogil.borrow_exit(b, None, None, None)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            borrow()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert entered.wait(WAIT)
    if other is not None:
        with pytest.raises(TimeoutError):
            fd.close(timeout=0)  # CLOSING: the releases below are tombstones
        other.end()  # so that the interrupted release is the last: it must close
    leave.set()
    t.join(WAIT)
    assert [type(e) for e in errors] == [Injected]
    assert fd.borrow_count == 0
    if other is None:
        fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
    assert closer.borrows_seen in ([], [0])


def test_a_borrow_interrupted_after_its_insert_is_left_not_entered() -> None:
    # The interrupt lands as the lock's with ends, after the insert and after
    # the Borrow was marked entered: the borrow is given back, and the Borrow,
    # whose __exit__ will never come, must not stay marked (a later exit
    # would release a borrow it does not hold; a later entry would be refused).
    fd, closer, lock = locked_fd()
    borrow = fd.borrow()
    lock.armed = True
    with pytest.raises(Injected):
        _nogil.borrow_enter(borrow)
    assert fd.borrow_count == 0
    with fd.borrow():  # another borrow of this thread, still running below
        _nogil.borrow_exit(borrow, None, None, None)  # releases nothing
        assert fd.borrow_count == 1
        _nogil.borrow_enter(borrow)  # and it can be entered again
        assert fd.borrow_count == 2
        _nogil.borrow_exit(borrow, None, None, None)
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


def test_two_threads_entering_one_borrow_at_once_take_one_borrow() -> None:
    # Without the GIL nothing orders two threads' entries of one Borrow: the
    # check that it is not entered and the mark must be one locked step. The
    # first thread is held between the two (its trace function pauses it on
    # the line that marks the Borrow entered); the second must then be
    # refused with RuntimeError, not count a second borrow.
    fd, closer, _ = locked_fd()
    borrow = fd.borrow()
    paused, go = threading.Event(), threading.Event()

    def tracer(frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        def local(frame: FrameType, event: str, arg: object) -> TraceFunction:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            if event == "line" and line.strip().endswith("._tid = tid"):
                paused.set()
                assert go.wait(WAIT)
            return local

        return local if frame.f_code.co_filename == _nogil.__file__ else None

    errors: list[BaseException] = []

    def enter(traced: bool) -> None:
        if traced:
            sys.settrace(tracer)
        try:
            _nogil.borrow_enter(borrow)
        except BaseException as exc:
            errors.append(exc)
        finally:
            sys.settrace(None)

    first = threading.Thread(target=enter, args=(True,), daemon=True)
    first.start()
    assert paused.wait(WAIT)
    second = threading.Thread(target=enter, args=(False,), daemon=True)
    second.start()
    # With the check and the mark under the FD's lock, the second entry waits
    # for the first to let go of it, so it cannot end yet; without, it ends at
    # once, entered. Either way the outcome below is the same check.
    second.join(0.5)
    go.set()
    first.join(WAIT)
    second.join(WAIT)
    assert [type(e) for e in errors] == [RuntimeError], errors
    assert fd.borrow_count == 1, "two entries of one Borrow counted two borrows"
    _nogil.borrow_exit(borrow, None, None, None)
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
