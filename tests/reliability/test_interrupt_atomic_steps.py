"""An interrupt that lands right after one of the FD's single-call steps.

The borrow entry (`holders.insert(0, tid)`) and the freeze that begins a close
(`freeze.extend(map(memoryview, (holders,)))`) are each one C call that takes effect,
and each is the last call of its `try` block. CPython checks for signals at
the end of a call, so a KeyboardInterrupt can land after the step took effect
but before the next line: the handler that covers the call must then treat
the step as done. test_interrupt_points.py cannot raise at exactly that point
(its trace function raises at the next instruction, which a different handler
covers), so these tests make the step itself raise after taking effect: the
holders are an array whose insert inserts and then raises, and the close's
freeze is a list whose extend stores the view and then raises (or raises
before it makes one). specs/cpython.md, "Signals".
"""

from __future__ import annotations

import gc
import os
import threading
from array import array
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

import rcfd
from rcfd import _fd, _nogil
from rcfd._closing import Closing
from tests.support import WAIT, CountingClose, HeldBorrow, open_fd, state_of, wait_until


class Injected(KeyboardInterrupt):
    """The interrupt, as CPython would raise it from a SIGINT handler."""


if TYPE_CHECKING:
    IntArray = array[int]
else:
    IntArray = array  # array[int] is subscriptable at run time only from 3.12


class InsertThenInterrupt(IntArray):
    """Holders whose next insert takes effect, then raises Injected."""

    armed = True

    def insert(self, index: int, tid: int, /) -> None:
        super().insert(index, tid)
        if self.armed:
            self.armed = False
            raise Injected


def interrupting_holders(fd: rcfd.FD) -> InsertThenInterrupt:
    holders = InsertThenInterrupt("L", fd._holders)
    fd._holders = holders  # OPEN and unshared: nothing to carry over but the entries
    return holders


# The lock-free insert is the GIL path's (rcfd/_fd.py); without the GIL the
# borrow takes the lock and records itself (tests/reliability/test_interrupt_nogil_steps.py,
# which runs on every build).
gil_path_only = pytest.mark.skipif(
    _nogil.ENABLED, reason="the lock-free borrow is not used on the no-GIL path"
)


@gil_path_only
def test_do_interrupted_as_the_borrow_is_counted_gives_it_back() -> None:
    fd, closer = open_fd()
    interrupting_holders(fd)
    calls: list[int] = []
    with pytest.raises(Injected):
        fd.do(calls.append)
    assert calls == [], "fn ran although the borrow was interrupted"
    assert fd.borrow_count == 0, "the interrupted borrow stayed counted"
    fd.close(timeout=WAIT)  # would time out if the count were left at 1
    assert closer.calls and fd.state is rcfd.State.CLOSED


@gil_path_only
def test_with_borrow_interrupted_as_the_borrow_is_counted_gives_it_back() -> None:
    fd, closer = open_fd()
    interrupting_holders(fd)
    with pytest.raises(Injected), fd.borrow():
        pytest.fail("the block ran although the borrow was interrupted")
    assert fd.borrow_count == 0, "the interrupted borrow stayed counted"
    fd.close(timeout=WAIT)
    assert closer.calls and fd.state is rcfd.State.CLOSED


class FreezeThenInterrupt(list[memoryview]):
    """A close's freeze whose extend stores the view, then raises Injected,
    as if the interrupt landed when extend() returned."""

    def extend(self, views: Iterable[memoryview], /) -> None:
        super().extend(views)
        raise Injected


class InterruptBeforeFreeze(list[memoryview]):
    """A close's freeze whose extend raises before it makes the view."""

    def extend(self, views: Iterable[memoryview], /) -> None:
        raise Injected


def closes_freezing_with(freeze: type[list[memoryview]]) -> type[Closing]:
    """The close record class (rcfd._fd.CloseRecord) whose freeze is `freeze`."""

    class Record(Closing):
        __slots__ = ()

        def __init__(self, detach: bool, owner_waker: Callable[[], None] | None) -> None:
            super().__init__(detach, owner_waker)
            self.freeze = freeze()

    return Record


def test_close_interrupted_after_the_freeze_still_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    fd, closer = open_fd()
    held = HeldBorrow(fd)
    monkeypatch.setattr(_fd, "CloseRecord", closes_freezing_with(FreezeThenInterrupt))
    with pytest.raises(Injected):
        fd.close()
    monkeypatch.undo()
    # The close began: borrows are refused at once, and it completes when the
    # running borrow returns (an interrupted close behaves as a timed-out one).
    assert fd.state is rcfd.State.CLOSING
    with pytest.raises(rcfd.ClosedFDError):
        fd.do(os.fstat)
    assert closer.calls == []
    held.end()
    assert closer.finished.wait(WAIT), "the interrupted close never happened"
    assert state_of(fd) is rcfd.State.CLOSED and len(closer.calls) == 1


def test_close_interrupted_before_the_freeze_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fd, closer = open_fd()
    monkeypatch.setattr(_fd, "CloseRecord", closes_freezing_with(InterruptBeforeFreeze))
    with pytest.raises(Injected):
        fd.close()
    monkeypatch.undo()
    assert fd.state is rcfd.State.OPEN and fd.borrow_count == 0
    assert fd.do(lambda rawfd: rawfd) >= 0  # borrows are still accepted
    fd.close(timeout=WAIT)
    assert state_of(fd) is rcfd.State.CLOSED and len(closer.calls) == 1


def test_an_fd_whose_close_was_interrupted_before_the_freeze_is_still_finalized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The close left nothing behind: dropped, the FD is the OPEN FD it was,
    # which its finalizer closes (with a ResourceWarning).
    closer = CountingClose()  # (not open_fd's, which keeps the FD alive)
    fd = rcfd.FD(os.eventfd(0), closer)
    monkeypatch.setattr(_fd, "CloseRecord", closes_freezing_with(InterruptBeforeFreeze))
    try:  # (not pytest.raises: its record of the traceback would keep fd alive)
        fd.close()
    except Injected:
        pass
    else:
        pytest.fail("the interrupt did not reach close()'s caller")
    monkeypatch.undo()
    with pytest.warns(ResourceWarning, match="unclosed <rcfd.FD OPEN"):
        del fd
        gc.collect()
    assert len(closer.calls) == 1


def test_borrow_refused_while_a_close_freezes_reports_the_closing_state() -> None:
    # A borrow whose insert meets the freeze reads the state under the lock,
    # after the close has written it: never "OPEN", never a wrong error.
    fd, closer = open_fd()
    held = HeldBorrow(fd)
    closing = threading.Thread(target=fd.close, daemon=True)
    closing.start()
    try:
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() to begin")
        with pytest.raises(rcfd.ClosedFDError) as refused:
            fd.do(os.fstat)
        assert "CLOSING" in str(refused.value), str(refused.value)
    finally:
        held.end()
        closing.join(WAIT)
    assert isinstance(closer, CountingClose) and len(closer.calls) == 1
