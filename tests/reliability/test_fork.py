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
import signal
import threading
import time
import warnings
from collections.abc import Generator
from typing import cast

import pytest

import rcfd
from rcfd._locks import OwnedLock
from tests.reliability import kinds
from tests.support import (
    CountingClose,
    HeldBorrow,
    Outcome,
    in_child,
    in_thread,
    reap,
    wait_until,
)

WAIT = 10.0

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns that forking a multi-threaded process may deadlock:
    # that is exactly the situation under test.
    "ignore:.*fork.*:DeprecationWarning"
)


class LockHolder:
    """A thread holding an FD's (or a registry's, or the shared) lock until stop()."""

    def __init__(self, lock: threading.Lock | threading.RLock | OwnedLock) -> None:
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


# -- a fork inside the close's own callbacks --------------------------------------


@pytest.mark.parametrize(
    ("where", "call"),
    [
        ("on_closing", "close"),
        ("on_closing", "detach"),
        ("close_func", "close"),  # with an on_closing: close() registers its waker
        ("close_func", "close_alone"),  # no on_closing: the uncontended close
        ("close_func", "release"),  # close_func run by a borrow's release, not the owner
    ],
)
def test_a_fork_inside_the_closes_callbacks_leaves_the_child_a_close_that_returns(
    where: str, call: str
) -> None:
    """The caller that began the close (or the release that runs it) forks in
    on_closing or close_func: in the child that thread goes on, so its close
    must finish there and its call return, as in the parent, with no
    warning; a close_func running in the child keeps the FD CLOSING."""
    rawfd, parent = os.eventfd(0), os.getpid()
    forked: list[int] = []
    seen_in_close_func: list[str] = []

    def fork_once() -> None:
        pid = os.fork()
        if pid == 0:
            signal.alarm(int(WAIT))  # a hang ends the child
        forked.append(pid)

    def close_func(number: int) -> None:
        if where == "close_func":
            fork_once()
            seen_in_close_func.append(fd.state.name)
        os.close(number)

    def on_closing(number: int) -> None:
        if where == "on_closing":
            fork_once()

    with_on_closing = where == "on_closing" or call == "close"
    fd = rcfd.FD(rawfd, close_func, on_closing=on_closing if with_on_closing else None)
    result: object = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning in either process fails it
        warnings.filterwarnings("ignore", ".*fork.*", DeprecationWarning)
        if call == "detach":
            result = fd.detach()
        elif call == "release":
            closes: list[Outcome] = []

            def until_closing(number: int) -> None:
                closes.append(in_thread(fd.close)[1])  # waits for this borrow
                pause, deadline = threading.Event(), time.monotonic() + WAIT
                while fd.state is not rcfd.State.CLOSING:
                    assert time.monotonic() < deadline, "the other thread's close never began"
                    pause.wait(0.001)

            fd.do(until_closing)  # its release runs close_func, which forks
        else:
            fd.close()
    if os.getpid() != parent:  # the child: check, and never return into pytest
        code = 1
        try:
            assert fd.state is rcfd.State.CLOSED and fd.borrow_count == 0, fd
            if where == "close_func":
                assert seen_in_close_func == ["CLOSING"], seen_in_close_func
            assert result == (rawfd if call == "detach" else None), result
            code = 0
        except BaseException as exc:
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    reap(forked[0])
    if call == "release":
        assert closes[0].done.wait(WAIT) and closes[0].error is None, closes[0].error
    assert fd.state is rcfd.State.CLOSED
    if call == "detach":
        os.close(rawfd)


def test_a_joiner_that_forks_from_a_signal_handler_is_woken_in_the_child() -> None:
    """The main thread joins another thread's close (a third holds the last
    borrow), and a signal handler forks while it waits. In the child the
    hook finishes the close (the borrowing and owning threads are gone); the
    joiner's waker is kept, so its close() returns there (ClosedFDError, as
    for any joiner) instead of waiting for good, deadline or not."""
    fd, closer = open_fd()
    held = HeldBorrow(fd)
    _, owner = in_thread(fd.close)  # the owner: waits for `held`
    wait_until(lambda: fd._closer is not None and fd._closer.waiting_closers() == 1, "owner")
    parent, children = os.getpid(), []

    def fork_in_handler(signum: int, frame: object) -> None:
        pid = os.fork()
        if pid == 0:
            signal.alarm(int(WAIT))  # a hang ends the child
        children.append(pid)

    main = threading.get_ident()

    def signal_main_once_it_waits() -> None:
        wait_until(lambda: fd._closer is not None and fd._closer.waiting_closers() == 2, "join")
        signal.pthread_kill(main, signal.SIGUSR1)
        wait_until(lambda: bool(children), "the fork")
        held.let_go()  # in the parent the borrow ends, and the close with it

    previous = signal.signal(signal.SIGUSR1, fork_in_handler)
    try:
        in_thread(signal_main_once_it_waits)
        try:
            fd.close(timeout=WAIT)  # the joiner; in the child it returns there too
            result = "returned"
        except BaseException as exc:
            result = type(exc).__name__
        if os.getpid() != parent:  # the child: never return into pytest
            os._exit(0 if result == "ClosedFDError" and fd.state is rcfd.State.CLOSED else 1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result == "ClosedFDError", result
    reap(children[0])
    assert owner.done.wait(WAIT) and owner.error is None, owner.error
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
