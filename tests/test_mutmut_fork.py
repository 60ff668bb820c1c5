"""Survivors of the mutmut run in the fork repair of an FD and its close
(FD._after_fork, FD._finish_after_fork, Closing.after_fork), killed here in
real forked children.

mutmut records which tests reach a function in its own process, so it finds
no test for code that runs only in a forked child ("no tests" in its report);
the mutants below were applied by hand to a scratch copy of the tree, each
seen failing here and passing on the real code. tests/reliability/test_fork.py
kills the others of these functions the same way; this file adds the cases it
does not have: a fork inside a borrow that a close waits for, a close with
tombstones, a detach whose owner is gone, an FD closed before the fork, and a
close_func that calls back into its FD in the child.

Every wait on the child is bounded: it arms SIGALRM (a hang ends it) and the
parent polls waitpid with a deadline, then kills it.
"""

from __future__ import annotations

import os
import sys

import pytest

import rcfd
from tests.support import (
    WAIT,
    CountingClose,
    HeldBorrow,
    in_child,
    in_thread,
    state_of,
    wait_until,
)

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns that forking a multi-threaded process may deadlock:
    # that is the situation under test.
    "ignore:.*fork.*:DeprecationWarning"
)


def _waiting(fd: rcfd.FD) -> int:
    closing = fd._closer
    return 0 if closing is None else closing.waiting_closers()


def test_a_fork_inside_a_borrow_that_a_close_waits_for_keeps_it_in_the_child() -> None:
    # Kills _fd.xǁFDǁ_after_fork__mutmut_30 and _closing.xǁClosingǁafter_fork__mutmut_4:
    # the forking thread's own borrow is not dropped with the vanished
    # threads' (specs/rcfd.md, "Fork"): in the child the close still waits
    # for it, and its release there runs close_func, never while it runs.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    mine = fd.borrow()
    rawfd = mine.__enter__()
    thread, closed = in_thread(fd.close)  # waits for `mine`; its thread is gone in the child
    wait_until(lambda: _waiting(fd) == 1, "the close waits")

    def child() -> None:
        assert (fd.state, fd.borrow_count, closer.calls) == (rcfd.State.CLOSING, 1, [])
        os.fstat(rawfd)  # still open under the borrow
        mine.__exit__(None, None, None)  # the last borrow: runs close_func
        assert (fd.state, fd.borrow_count, closer.calls) == (rcfd.State.CLOSED, 0, [rawfd])

    try:
        in_child(child)
    finally:
        mine.__exit__(None, None, None)
    assert closed.done.wait(WAIT)
    thread.join(WAIT)
    assert closed.error is None and closer.calls == [rawfd]


def test_a_close_with_a_released_borrow_and_a_vanished_one_finishes_in_the_child() -> None:
    # Kills _closing.xǁClosingǁafter_fork__mutmut_3 (the tombstones not
    # subtracted: the count goes negative) and _8 (the tombstones replaced,
    # not added to: a released borrow counts again). Two threads borrowed, a
    # close froze both, one released since (a tombstone): in the child the
    # other is gone too, so nothing runs, and the close finishes there.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    first, second = HeldBorrow(fd), HeldBorrow(fd)
    with pytest.raises(TimeoutError):
        fd.close(timeout=0)  # CLOSING, waiting for both
    second.end()  # its release after the freeze: a tombstone
    assert fd.borrow_count == 1

    def child() -> None:
        assert (fd.state, fd.borrow_count) == (rcfd.State.CLOSED, 0)
        assert closer.calls == [first.rawfd]

    try:
        in_child(child)
    finally:
        first.end()
    assert (state_of(fd), closer.calls) == (rcfd.State.CLOSED, [first.rawfd])


def test_an_fd_closed_before_the_fork_is_not_released_again_in_the_child() -> None:
    # Kills _closing.xǁClosingǁafter_fork__mutmut_12 (a finished close handed
    # on to be finished again): the child's registry would count the FD
    # closed twice.
    registry = rcfd.LifetimeRegistry()
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer, registry=registry)
    fd.close()

    def child() -> None:
        stats = registry.fd_stats()
        assert (stats.initialized, stats.closed, stats.report()) == (1, 1, "")
        assert (fd.state, len(closer.calls)) == (rcfd.State.CLOSED, 1)

    in_child(child)


def test_a_detach_whose_owner_is_gone_closes_the_number_in_the_child() -> None:
    # Kills _closing.xǁClosingǁafter_fork__mutmut_13 (the vanished owner
    # forgotten as "" instead of None: the number is handed over to nobody).
    # In the child the thread that waits in detach() does not exist: the
    # detach becomes a close, and the number is closed, once.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    held = HeldBorrow(fd)
    thread, detached = in_thread(fd.detach)
    wait_until(lambda: _waiting(fd) == 1, "the detach waits")

    def child() -> None:
        assert (fd.state, closer.calls) == (rcfd.State.CLOSED, [held.rawfd])

    try:
        in_child(child)
    finally:
        held.end()
    assert detached.done.wait(WAIT)
    thread.join(WAIT)
    assert detached.value == held.rawfd and closer.calls == []  # the parent's owner got it
    os.close(held.rawfd)


def test_close_func_run_by_the_child_refuses_a_close_of_its_own_fd() -> None:
    # Kills _fd.xǁFDǁ_finish_after_fork__mutmut_4 (the child's claim made for
    # thread None): the close the child finishes runs close_func on the
    # forking thread, which is then the one inside close_func, so a close
    # from there is refused at once (CloseInsideCloseFuncError), not a wait
    # for itself.
    parent = os.getpid()
    refused: list[BaseException] = []

    def close_func(rawfd: int) -> None:
        if os.getpid() != parent:
            try:
                fd.close()
            except BaseException as exc:
                refused.append(exc)
        os.close(rawfd)

    fd = rcfd.FD(os.eventfd(0), close_func)
    held = HeldBorrow(fd)
    with pytest.raises(TimeoutError):
        fd.close(timeout=0)

    def child() -> None:
        assert fd.state is rcfd.State.CLOSED
        assert [type(e) for e in refused] == [rcfd.CloseInsideCloseFuncError]

    try:
        in_child(child)
    finally:
        held.end()
    assert state_of(fd) is rcfd.State.CLOSED and refused == []


def test_the_fork_hook_reports_no_error_in_a_child_with_borrow_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _fd.xǁBorrowǁ_after_fork__mutmut_12 (a Borrow reported as a close
    # left to finish) and _fd.xǁFDǁ_after_fork__mutmut_8 (the same of a
    # never-initialized FD, FD() cut at its entry or FD.__new__ alone): the
    # hook then reads what the object lacks, in the child, where CPython
    # swallows the error as unraisable, and the FDs after it in the hook's
    # list are never finished.
    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)  # the child inherits it
    half = rcfd.FD.__new__(rcfd.FD)
    fd = rcfd.FD(os.eventfd(0), CountingClose())
    idle = fd.borrow()  # never entered

    def child() -> None:
        assert seen == [], seen
        assert fd.borrow_count == 1  # this thread's borrow, kept
        assert idle._tid == 0

    with fd.borrow():
        in_child(child)
    fd.close()
    del half
