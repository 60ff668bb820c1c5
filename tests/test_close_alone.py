"""The uncontended close (Closing.close_alone) and its one race.

close() of an OPEN FD with no borrow, no on_closing and no other close
makes BEGIN_CLOSE and ZERO in one locked step and runs the close itself,
with no waker. A borrow can still slip in after its check and before the
freeze (borrows take no lock): the close must then wait for it like any
close, and the owner must still be the one that receives close_func's
error. These tests put that borrow there through the test seam
(rcfd._fd.CloseRecord), and end it at each point the owner can be at.
specs/cpython.md, "The borrow takes no lock".
"""

from __future__ import annotations

import os
import threading
import warnings
from array import array
from collections.abc import Callable
from typing import ClassVar

import pytest

import rcfd
from rcfd import _fd
from rcfd._closing import Closing
from tests.support import WAIT, CountingClose, HeldBorrow, in_thread, state_of


class CloseFuncError(OSError):
    pass


class BorrowSlipsIn(Closing):
    """A close record whose locked step is preceded by a borrow that another
    thread begins after close_alone's check (kept in `held`); if
    `ends_before_the_owner_waits`, that borrow also ends (and so runs the
    close) before the owner registers its waker."""

    __slots__ = ()
    held: ClassVar[list[HeldBorrow]]
    ends_before_the_owner_waits: ClassVar[bool]

    def _begin_alone(self, fd: rcfd.FD, holders: array[int], me: int) -> bool:
        type(self).held.append(HeldBorrow(fd))
        return super()._begin_alone(fd, holders, me)

    def _wait_as_owner(self, fd: rcfd.FD, timeout: float | None) -> None:
        if self.ends_before_the_owner_waits:
            self.held[0].end()
        super()._wait_as_owner(fd, timeout)


def borrow_slips_in(ends_before_the_owner_waits: bool) -> type[BorrowSlipsIn]:
    class Record(BorrowSlipsIn):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []

    Record.ends_before_the_owner_waits = ends_before_the_owner_waits
    return Record


def an_fd(closer: CountingClose) -> rcfd.FD:
    fd = rcfd.FD(os.eventfd(0), closer)
    closer.fd = fd
    return fd


def test_the_uncontended_close_runs_close_func_itself() -> None:
    closer = CountingClose()
    fd = an_fd(closer)
    fd.close()
    assert closer.calls and closer.borrows_seen == [0]
    assert fd.state is rcfd.State.CLOSED


def test_a_borrow_that_slips_in_before_the_freeze_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = borrow_slips_in(False)
    monkeypatch.setattr(_fd, "CloseRecord", record)
    closer = CountingClose()
    fd = an_fd(closer)
    _, closed = in_thread(fd.close)
    assert not closed.done.wait(0.2), "close() returned with a borrow running"
    assert closer.calls == [] and state_of(fd) is rcfd.State.CLOSING
    record.held[0].end()
    assert closed.done.wait(WAIT), "close() never returned"
    assert closed.error is None, closed.error
    assert record.held[0].valid_at_end, "the number was closed under the borrow"
    assert closer.borrows_seen == [0] and fd.state is rcfd.State.CLOSED


@pytest.mark.parametrize("ends_before_the_owner_waits", [False, True])
def test_the_owner_receives_close_func_s_error_after_a_borrow_slipped_in(
    monkeypatch: pytest.MonkeyPatch, ends_before_the_owner_waits: bool
) -> None:
    record = borrow_slips_in(ends_before_the_owner_waits)
    monkeypatch.setattr(_fd, "CloseRecord", record)
    error = CloseFuncError(5, "close_func failed")
    closer = CountingClose(error=error)
    fd = an_fd(closer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error is the owner's: no warning
        _, closed = in_thread(fd.close)
        if not ends_before_the_owner_waits:
            assert not closed.done.wait(0.2), "close() returned with a borrow running"
            record.held[0].end()
        assert closed.done.wait(WAIT), "close() never returned"
    assert closed.error is error
    assert len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_a_deadline_after_a_borrow_slipped_in_leaves_the_close_to_the_borrow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = borrow_slips_in(False)
    monkeypatch.setattr(_fd, "CloseRecord", record)
    error = CloseFuncError(5, "close_func failed")
    closer = CountingClose(error=error)
    fd = an_fd(closer)
    timed_out = r"^rcfd: close\(\) timed out after 0\.05s with 1 borrow"
    with pytest.raises(TimeoutError, match=timed_out):
        fd.close(timeout=0.05)
    assert state_of(fd) is rcfd.State.CLOSING and closer.calls == []
    # The owner left: close_func's error, raised in the borrower's release,
    # is nobody's to receive, so it is warned.
    with pytest.warns(RuntimeWarning, match="after close\\(\\) stopped waiting"):
        record.held[0].end()
    assert len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


class Interrupted(KeyboardInterrupt):
    """An interrupt, as a SIGINT handler would raise it."""


@pytest.mark.parametrize("registered", [False, True])
def test_an_owner_interrupted_before_it_waits_leaves_the_error_to_a_warning(
    monkeypatch: pytest.MonkeyPatch, registered: bool
) -> None:
    # The owner is interrupted after its step, before it registers a waker
    # or after, before it waits: it must leave (as an interrupted close()
    # does), so that close_func's error, raised when the borrow ends, is
    # warned rather than lost.
    class InterruptedOwner(BorrowSlipsIn):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []
        ends_before_the_owner_waits = False

        def _wait_as_owner(self, fd: rcfd.FD, timeout: float | None) -> None:
            if not registered:
                raise Interrupted
            super()._wait_as_owner(fd, timeout)

        def until_finished(
            self,
            fd: rcfd.FD,
            call: str,
            waiter: threading.Lock,
            wake: Callable[[], None],
            timeout: float | None,
        ) -> int:
            raise Interrupted

    monkeypatch.setattr(_fd, "CloseRecord", InterruptedOwner)
    closer = CountingClose(error=CloseFuncError(5, "close_func failed"))
    fd = an_fd(closer)
    with pytest.raises(Interrupted):
        fd.close()
    assert state_of(fd) is rcfd.State.CLOSING and closer.calls == []
    with pytest.warns(RuntimeWarning, match="after close\\(\\) stopped waiting"):
        InterruptedOwner.held[0].end()
    assert len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_a_second_closer_during_the_uncontended_close_waits_for_it() -> None:
    release = threading.Event()
    closer = CountingClose()
    closer.release = release
    fd = an_fd(closer)
    _, first = in_thread(fd.close)
    assert closer.entered.wait(WAIT)
    _, second = in_thread(fd.close)
    assert not second.done.wait(0.1), "the second close() did not wait for close_func"
    release.set()
    assert first.done.wait(WAIT) and second.done.wait(WAIT)
    assert first.error is None
    assert isinstance(second.error, rcfd.ClosedFDError)
    assert len(closer.calls) == 1
