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
from collections.abc import Callable, Generator, Iterable
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


class InterruptedAsItWaits(BorrowSlipsIn):
    """A borrow slips in, and the owner is interrupted where it would wait."""

    __slots__ = ()
    ends_before_the_owner_waits = False

    def until_finished(
        self,
        fd: rcfd.FD,
        call: str,
        waiter: threading.Lock,
        wake: Callable[[], None],
        timeout: float | None,
    ) -> int:
        raise Interrupted


@pytest.mark.parametrize("registered", [False, True])
def test_an_owner_interrupted_before_it_waits_leaves_the_error_to_a_warning(
    monkeypatch: pytest.MonkeyPatch, registered: bool
) -> None:
    # The owner is interrupted after its step, before it registers a waker
    # or after, before it waits: it must leave (as an interrupted close()
    # does), so that close_func's error, raised when the borrow ends, is
    # warned rather than lost.
    class InterruptedOwner(InterruptedAsItWaits):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []

        def _wait_as_owner(self, fd: rcfd.FD, timeout: float | None) -> None:
            if not registered:
                raise Interrupted
            super()._wait_as_owner(fd, timeout)

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


# -- interrupts and re-entry inside the uncontended close ----------------------
# Each test below stands for a check point where CPython may run a signal
# handler (a Python call's entry) or a finalizer, and was seen failing on
# the mutant of close_alone or _begin_alone that mutmut left alive there.


class InterruptedOnce:
    """Raises Interrupted the first time `strike()` is called, then nothing."""

    def __init__(self) -> None:
        self.struck = False

    def strike(self) -> None:
        if not self.struck:
            self.struck = True
            raise Interrupted


def test_an_interrupt_as_the_owner_s_run_finishes_is_resumed_and_the_fd_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At FINISH's entry, after close_func returned: the owner runs the rest
    # again (how is set, so close_func is not called twice), then raises.
    once = InterruptedOnce()

    class Record(Closing):
        __slots__ = ()

        def _finish(self, fd: rcfd.FD) -> None:
            once.strike()
            super()._finish(fd)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    closer = CountingClose()
    fd = an_fd(closer)
    with pytest.raises(Interrupted):
        fd.close()
    assert once.struck and fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
    with pytest.raises(rcfd.ClosedFDError):
        fd.close()


def test_an_interrupt_as_the_owner_s_release_begins_leaves_the_close_to_the_borrow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A borrow slipped in, so the owner's release after its step finds one
    # borrow: interrupted at its entry, it is made again (the zero check),
    # the owner leaves, and the borrow's end runs the close.
    once = InterruptedOnce()

    class Record(BorrowSlipsIn):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []
        ends_before_the_owner_waits = False

        def release(self, fd: rcfd.FD) -> None:
            if threading.current_thread() is threading.main_thread():
                once.strike()
            super().release(fd)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    closer = CountingClose()
    fd = an_fd(closer)
    with pytest.raises(Interrupted):
        fd.close()
    assert once.struck and state_of(fd) is rcfd.State.CLOSING and closer.calls == []
    Record.held[0].end()
    assert Record.held[0].valid_at_end and len(closer.calls) == 1
    assert fd.state is rcfd.State.CLOSED


class EndsInTheFreeze(list[memoryview]):
    """The freeze of a close during which a finalizer ends a borrow on the
    closing thread: the borrow meets the freeze, inside the FD's locked step."""

    ends: Callable[[], None]

    def extend(self, views: Iterable[memoryview], /) -> None:
        super().extend(views)
        self.ends()


def test_a_release_deferred_inside_the_step_is_settled_and_the_close_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two borrows slip in; a finalizer ends one of them on the owner's thread
    # while the owner's step freezes (its release is deferred: the step holds
    # the lock), the other still runs. The owner settles the deferred one,
    # finds a borrow, and waits for it.
    def borrowing(fd: rcfd.FD) -> Generator[int, None, None]:
        with fd.borrow() as rawfd:
            yield rawfd

    class Record(BorrowSlipsIn):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []
        ends_before_the_owner_waits = False

        def _begin_alone(self, fd: rcfd.FD, holders: array[int], me: int) -> bool:
            finalized = borrowing(fd)
            next(finalized)  # a borrow of this thread's, ended by its finalizer below
            self.freeze = freeze = EndsInTheFreeze()
            freeze.ends = finalized.close
            return super()._begin_alone(fd, holders, me)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    closer = CountingClose()
    fd = an_fd(closer)
    _, closed = in_thread(fd.close)
    assert not closed.done.wait(0.2), "close() returned with a borrow running"
    assert closer.calls == [] and state_of(fd) is rcfd.State.CLOSING
    Record.held[0].end()
    assert closed.done.wait(WAIT), "close() never returned"
    assert closed.error is None, closed.error
    assert Record.held[0].valid_at_end and len(closer.calls) == 1
    assert fd.state is rcfd.State.CLOSED


def test_close_func_s_error_delivered_to_the_owner_is_not_also_warned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A borrow slipped in and its end ran close_func, which failed: the owner
    # receives the error, so the borrow's thread, which checks after the owner
    # returned, finds the error received and warns nothing.
    caught: list[warnings.WarningMessage] = []
    owner_returned, frozen = threading.Event(), threading.Event()

    class Record(BorrowSlipsIn):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []
        ends_before_the_owner_waits = False

        def _begin_alone(self, fd: rcfd.FD, holders: array[int], me: int) -> bool:
            began = super()._begin_alone(fd, holders, me)
            frozen.set()
            return began

        def _report_unreceived(self, fd: rcfd.FD) -> None:
            assert owner_returned.wait(WAIT), "the owner never returned"
            with warnings.catch_warnings(record=True) as seen:  # this thread's
                warnings.simplefilter("always")
                super()._report_unreceived(fd)
            caught.extend(seen)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    error = CloseFuncError(5, "close_func failed")
    closer = CountingClose(error=error)
    fd = an_fd(closer)

    def close_then_say_so() -> None:
        try:
            fd.close()
        finally:
            owner_returned.set()

    _, closed = in_thread(close_then_say_so)
    assert frozen.wait(WAIT), "the owner's step never ran"
    Record.held[0].end()
    assert closed.done.wait(WAIT), "close() never returned"
    assert closed.error is error
    assert [str(w.message) for w in caught] == []
    assert len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_an_owner_interrupted_while_close_func_runs_leaves_the_error_to_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A borrow slipped in and ended, and its thread now runs close_func; the
    # owner is interrupted as it waits. It must leave (an interrupt is no
    # deadline, which would keep it waiting for close_func), so that
    # close_func's error is warned rather than lost.
    closer = CountingClose(error=CloseFuncError(5, "close_func failed"))
    closer.release = threading.Event()

    class Record(InterruptedAsItWaits):
        __slots__ = ()
        held: ClassVar[list[HeldBorrow]] = []

        def _wait_as_owner(self, fd: rcfd.FD, timeout: float | None) -> None:
            self.held[0].let_go()
            assert closer.entered.wait(WAIT), "close_func never ran"
            super()._wait_as_owner(fd, timeout)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    fd = an_fd(closer)
    with pytest.raises(Interrupted):
        fd.close()
    with pytest.warns(RuntimeWarning, match="after close\\(\\) stopped waiting"):
        closer.release.set()
        assert Record.held[0].outcome.done.wait(WAIT), "the borrow never returned"
    assert len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_a_close_that_comes_first_after_the_check_is_joined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread's close begins (and here finishes) between the owner's
    # check and its locked step: the step must find it and leave the FD to
    # wait(), which refuses; close_func is called once.
    class Record(Closing):
        __slots__ = ()
        raced = False

        def _begin_alone(self, fd: rcfd.FD, holders: array[int], me: int) -> bool:
            if not Record.raced:
                Record.raced = True
                thread, first = in_thread(fd.close)
                thread.join(WAIT)
                assert first.done.is_set() and first.error is None, first.error
            return super()._begin_alone(fd, holders, me)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    closer = CountingClose()
    fd = an_fd(closer)
    with pytest.raises(rcfd.ClosedFDError):
        fd.close()
    assert Record.raced and len(closer.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_a_signal_handler_s_close_inside_a_detach_s_locked_step_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # detach() holds the FD's lock and has not frozen yet (no borrow, no
    # close attached: what close_alone checks), when a signal handler on its
    # thread calls close(): refused at once, as inside any of the FD's locked
    # steps, and the detach goes on.
    refused: list[BaseException] = []

    class Record(Closing):
        __slots__ = ()

        def _freeze(self, fd: rcfd.FD) -> None:
            if not refused:
                try:
                    fd.close()  # what the handler does
                except BaseException as exc:
                    refused.append(exc)
            super()._freeze(fd)

    monkeypatch.setattr(_fd, "CloseRecord", Record)
    closer = CountingClose()
    fd = an_fd(closer)
    _, detached = in_thread(fd.detach)
    assert detached.done.wait(WAIT), "the detach waited for its own step"
    assert [type(e) for e in refused] == [rcfd.CloseInsideCloseFuncError]
    assert isinstance(detached.value, int) and detached.value >= 0, detached.error
    assert closer.calls == [] and fd.state is rcfd.State.CLOSED
    os.close(detached.value)
