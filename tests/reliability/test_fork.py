"""fork() while other threads hold a borrow, hold an FD's lock, or close: the
child (a real process) must neither deadlock nor wait for threads it does not
have. Descriptors: eventfds and pipes. Every wait on the child is bounded:
the child arms SIGALRM (a hang kills it) and the parent polls waitpid with a
deadline, then kills it.

The lock held "at the fork" is taken directly (fd._guard().acquire() in a helper
thread): that is the state a thread preempted inside one of the FD's short
locked sections leaves, made deterministic.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from typing import cast

import pytest

import rcfd
from tests.reliability import kinds
from tests.support import CountingClose, HeldBorrow, in_child

WAIT = 10.0

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns that forking a multi-threaded process may deadlock:
    # that is exactly the situation under test.
    "ignore:.*fork.*:DeprecationWarning"
)


class LockHolder:
    """A thread holding an FD's (or a registry's, or the shared) lock until stop()."""

    def __init__(self, lock: threading.Lock | threading.RLock) -> None:
        self.lock = lock
        self.held = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.held.wait(WAIT)

    def _run(self) -> None:
        with self.lock:
            self.held.set()
            self.done.wait(WAIT)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(WAIT)


def open_fd(kind: str = "eventfd") -> tuple[rcfd.FD, CountingClose]:
    closer = CountingClose()
    fd = rcfd.FD(kinds.make(kind), closer)
    closer.fd = fd
    return fd, closer


@pytest.mark.parametrize("kind", ["eventfd", "pipe"])
def test_child_can_use_and_close_an_fd_borrowed_and_locked_by_parent_threads(kind: str) -> None:
    fd, closer = open_fd(kind)
    held = HeldBorrow(fd)  # a borrow of another thread: absent in the child
    holder = LockHolder(cast(threading.RLock, fd._guard()))  # held by another thread

    def child() -> None:
        assert fd.borrow_count == 0  # the other thread's borrow is not the child's
        st = fd.do(os.fstat)  # the lock is usable
        assert st.st_ino == os.fstat(held.rawfd).st_ino
        fd.close()  # nothing to wait for
        assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
        with pytest.raises(OSError):
            os.fstat(held.rawfd)  # closed in the child

    try:
        in_child(child)
    finally:
        holder.stop()
        held.end()
    # The parent is untouched: its borrow ran to the end on a valid number.
    assert held.valid_at_end and fd.state is rcfd.State.OPEN
    fd.close(timeout=WAIT)
    assert len(closer.calls) == 1


def test_a_never_initialized_fd_alive_at_the_fork_does_not_stop_the_repair() -> None:
    # FD() interrupted at its entry leaves an object with no field set, kept
    # alive by the exception's traceback (FD.__new__ alone makes the same).
    # The hook must pass over it and still repair the FDs after it.
    half = rcfd.FD.__new__(rcfd.FD)
    fd, closer = open_fd()
    held = HeldBorrow(fd)

    def child() -> None:
        assert fd.borrow_count == 0  # the other thread's borrow was dropped
        fd.close()  # nothing to wait for
        assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1

    try:
        in_child(child)
    finally:
        held.end()
    del half
    fd.close(timeout=WAIT)


def test_child_finishes_a_close_that_waited_for_a_parent_thread() -> None:
    fd, closer = open_fd()
    held = HeldBorrow(fd)
    with pytest.raises(TimeoutError):
        fd.close(timeout=0)  # CLOSING: the close waits for `held`
    rawfd = held.rawfd

    def child() -> None:
        # The borrow it waited for does not exist here: the hook closed it.
        assert fd.state is rcfd.State.CLOSED and fd.borrow_count == 0
        assert len(closer.calls) == 1
        with pytest.raises(OSError):
            os.fstat(rawfd)
        with pytest.raises(rcfd.ClosedFDError):
            fd.close()  # at once, not a wait

    try:
        in_child(child)
    finally:
        held.end()
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1  # the parent's own close


def test_child_of_a_fork_inside_a_borrow_keeps_that_borrow() -> None:
    fd, closer = open_fd()
    other = HeldBorrow(fd)

    def child() -> None:
        assert fd.borrow_count == 1  # its own (the do() below), not `other`'s
        with pytest.raises(rcfd.CloseInsideBorrowError):
            fd.close()

    def fork_here(rawfd: int) -> None:
        assert fd.borrow_count == 2
        in_child(child)

    try:
        fd.do(fork_here)
    finally:
        other.end()
    fd.close(timeout=WAIT)
    assert len(closer.calls) == 1


def test_child_can_track_lifetimes_while_a_parent_thread_holds_the_registry_lock() -> None:
    registry = rcfd.LifetimeRegistry()
    holder = LockHolder(registry._lock)

    def child() -> None:
        fd = rcfd.FD(kinds.make("memfd"), registry=registry)
        fd.close()
        assert registry.fd_stats().report() == ""

    try:
        in_child(child)
    finally:
        holder.stop()


def test_child_can_init_and_close_while_a_parent_thread_held_the_shared_lock() -> None:
    from rcfd import _fd

    holder = LockHolder(_fd._SHARED_LOCK)  # a parent thread inside init() or FD._guard

    def child() -> None:
        fd, closer = open_fd("memfd")  # no lock yet: the close makes it
        fd.close()
        assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
        late = rcfd.FD()
        late.init(kinds.make("memfd"))  # init takes the shared lock
        late.close()
        assert late.state is rcfd.State.CLOSED

    try:
        in_child(child)
    finally:
        holder.stop()


def _cut_close(fd: rcfd.FD, *, frozen: bool) -> None:
    """Leave `fd` as a close in another thread leaves it when the fork cuts
    its locked section: the closer's borrow counted and the closer attached,
    then (frozen=True) the holders frozen, but CLOSING not yet written."""
    from array import array

    from rcfd._closing import Closing

    closer = Closing(False, lambda: None)
    fd._holders += array("L", [threading.get_ident() + 1])  # a thread the child lacks
    fd._closer = closer
    if frozen:
        closer.freeze.append(memoryview(fd._holders))


@pytest.mark.parametrize("frozen", [True, False], ids=["after-freeze", "before-freeze"])
def test_child_settles_a_close_the_fork_cut_inside_its_locked_section(frozen: bool) -> None:
    # The state is built by hand in the child, then the at-fork hook runs on
    # it again: no thread can be stopped between two of those stores at will.
    def child() -> None:
        from rcfd import _fork

        fd, closer = open_fd("memfd")
        raw = fd.do(lambda rawfd: rawfd)
        _cut_close(fd, frozen=frozen)
        _fork._after_fork_in_child()
        if frozen:
            # The freeze is where CLOSING begins: the close had begun, and
            # with its owner gone, the child finishes it.
            assert fd.state is rcfd.State.CLOSED and closer.calls == [raw]
        else:
            # Nothing was frozen: the close never began, and the FD is usable.
            assert fd.state is rcfd.State.OPEN and fd._closer is None
            assert fd.borrow_count == 0 and fd.do(lambda rawfd: rawfd) == raw
            fd.close()
            assert closer.calls == [raw]

    in_child(child)


@pytest.mark.parametrize("closing", [False, True], ids=["open", "closing"])
def test_child_resumes_a_generator_that_a_vanished_thread_suspended_in_a_borrow(
    closing: bool,
) -> None:
    """A generator suspended inside `with fd.borrow()` by another thread: the
    hook drops that borrow in the child, and resuming the generator there must
    release nothing (no ValueError, an exact count), in OPEN and in CLOSING."""
    fd, closer = open_fd()
    entered = threading.Event()

    def holder() -> Generator[int, None, None]:
        with fd.borrow() as rawfd:
            yield rawfd

    gen = holder()
    vanished: list[int] = []

    def enter() -> None:
        vanished.append(threading.get_ident())
        next(gen)
        entered.set()

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    assert entered.wait(WAIT)
    thread.join(WAIT)
    if closing:
        with pytest.raises(TimeoutError):
            fd.close(timeout=0)  # CLOSING: waits for the generator's borrow

    def child() -> None:
        # Closed by the hook when CLOSING (no borrow left), usable when OPEN.
        assert fd.borrow_count == 0
        if not closing:
            # A child thread may be given the vanished thread's ident: its
            # borrow must survive the generator's exit.
            from rcfd import _fd

            real = _fd._get_ident
            _fd._get_ident = lambda: vanished[0]
            try:
                reused = fd.borrow()
                reused.__enter__()
            finally:
                _fd._get_ident = real
            assert fd.borrow_count == 1
        with pytest.raises(StopIteration):
            next(gen)  # the generator's exit: releases nothing
        if not closing:
            assert fd.borrow_count == 1, "the generator released the child's borrow"
            reused.__exit__(None, None, None)
        assert fd.borrow_count == 0
        if closing:
            assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
        else:
            with fd.borrow():
                assert fd.borrow_count == 1
            fd.close(timeout=WAIT)
            assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1

    in_child(child)
    with pytest.raises(StopIteration):
        next(gen)  # the parent: the borrow ends here, and the close follows
    if not closing:
        fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
