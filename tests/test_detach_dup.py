"""detach() (socket.detach, Rust's into_raw_fd) and dup() (F_DUPFD_CLOEXEC).

detach: waits like close(), then hands the number back instead of closing
it; the FD ends CLOSED, the finalizer is disarmed, the registry counts it as
detached (released, not leaked); on_closing runs as for close().
dup: under a borrow, a new independent OPEN FD on a duplicate, with the same
close_func and registry.
"""

from __future__ import annotations

import fcntl
import gc
import os
import platform
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import cast

import pytest

import rcfd
from tests.fdhelp import (
    SYSCALLS,
    WAIT,
    HeldBorrow,
    Recorder,
    eventfd,
    is_open,
    state,
    wait_in_syscall,
)


def waiting(fd: rcfd.FD, thread: threading.Thread) -> None:
    """Return once a close has begun on `fd` and `thread` is blocked in futex
    (its wait for CLOSED); skip where the syscall numbers are unknown."""
    if not wait_in_syscall(thread.native_id, "futex"):
        pytest.skip("system call numbers unknown on this architecture")
    assert state(fd) is not rcfd.State.OPEN


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


class Run:
    """A call run in a thread; its result or exception."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self._fn = fn
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


# -- detach ----------------------------------------------------------------


def test_detach_waits_for_borrows_then_hands_the_number_back() -> None:
    registry = rcfd.LifetimeRegistry()
    on_closing: list[int] = []
    raw = os.eventfd(0)
    rec = Recorder()
    fd = rcfd.FD(raw, rec, registry=registry, on_closing=on_closing.append)
    held = HeldBorrow(fd)
    detaching = Run(fd.detach)
    waiting(fd, detaching.thread)
    assert detaching.thread.is_alive()  # waits for the running borrow
    assert state(fd) is rcfd.State.CLOSING
    with pytest.raises(rcfd.ClosedFDError):
        fd.do(lambda n: n)  # new borrows refused, as in close()
    held.release()
    detaching.join()
    assert detaching.error is None
    assert detaching.result == raw
    assert rec.calls == []  # not closed...
    assert is_open(raw)  # ...the caller owns it now
    # on_closing ran once, as for close(), so that a blocked borrow returns
    # (the caller gets back a number whose borrows were woken).
    assert on_closing == [raw]
    assert state(fd) is rcfd.State.CLOSED
    stats = registry.fd_stats()
    assert (stats.initialized, stats.detached, stats.closed) == (1, 1, 0)
    assert stats.report() == ""  # released, not leaked
    # The finalizer is disarmed: dropping the FD neither warns nor closes.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del fd
        gc.collect()
    assert is_open(raw)
    assert registry.fd_stats().finalized == 0
    os.close(raw)


def test_detach_then_close_and_close_then_detach() -> None:
    fd, rec = eventfd()
    raw = fd.detach()
    with pytest.raises(rcfd.ClosedFDError):
        fd.close()
    assert is_open(raw) and rec.calls == []
    os.close(raw)

    fd, rec = eventfd()
    fd.close()
    with pytest.raises(rcfd.ClosedFDError):
        fd.detach()
    assert len(rec.calls) == 1


def test_a_closer_waiting_on_a_detach_gets_closed_error_and_the_number_stays_open() -> None:
    fd, rec = eventfd()
    held = HeldBorrow(fd)
    detaching = Run(fd.detach)
    waiting(fd, detaching.thread)
    closing = Run(fd.close)
    waiting(fd, closing.thread)
    held.release()
    detaching.join()
    closing.join()
    assert isinstance(closing.error, rcfd.ClosedFDError)
    raw = detaching.result
    assert isinstance(raw, int) and is_open(raw)
    assert rec.calls == []
    os.close(raw)


def test_detach_inside_a_borrow_is_refused() -> None:
    fd, rec = eventfd()
    with fd.borrow(), pytest.raises(rcfd.CloseInsideBorrowError):
        fd.detach()
    assert state(fd) is rcfd.State.OPEN
    fd.close()
    assert len(rec.calls) == 1


class Interrupted(Exception):
    pass


def test_interrupted_detach_becomes_a_close_not_an_orphan() -> None:
    # A signal handler raises in the main thread while detach() waits for a
    # borrow: the caller will never receive the number, so the last borrow
    # must close it rather than leave it open with no owner.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    if platform.machine() not in SYSCALLS:
        pytest.skip("system call numbers unknown on this architecture")
    fd, rec = eventfd()
    raw = fd.do(lambda n: n)
    held = HeldBorrow(fd)
    main = threading.main_thread()

    def interrupt() -> None:
        # Only once detach() waits: a CLOSING FD, the main thread in futex.
        deadline = time.monotonic() + WAIT
        while state(fd) is rcfd.State.OPEN and time.monotonic() < deadline:
            time.sleep(0.001)
        if not wait_in_syscall(main.native_id, "futex"):
            return
        signal.pthread_kill(cast(int, main.ident), signal.SIGUSR1)

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        sender = threading.Thread(target=interrupt, daemon=True)
        sender.start()
        with pytest.raises(Interrupted):
            fd.detach()
        sender.join(WAIT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert state(fd) is rcfd.State.CLOSING
    held.release()
    assert rec.calls == [raw]
    assert not is_open(raw)
    assert state(fd) is rcfd.State.CLOSED


# -- dup -------------------------------------------------------------------


def test_dup_is_an_independent_cloexec_fd_on_the_same_file() -> None:
    registry = rcfd.LifetimeRegistry()
    rec = Recorder()
    fd = rcfd.FD(os.eventfd(0), rec, registry=registry)
    raw = fd.do(lambda n: n)
    copy = fd.dup()
    copy_raw = copy.do(lambda n: n)
    assert copy_raw != raw
    assert state(copy) is rcfd.State.OPEN
    assert copy.do(lambda n: fcntl.fcntl(n, fcntl.F_GETFD)) & fcntl.FD_CLOEXEC
    # The same open file: a count written through one is read through the other.
    fd.do(lambda n: os.eventfd_write(n, 5))
    assert copy.do(os.eventfd_read) == 5
    # Independent lifetimes: closing the original leaves the copy usable.
    fd.close()
    assert rec.calls == [raw]
    copy.do(lambda n: os.eventfd_write(n, 1))
    # Same close_func, same registry.
    copy.close()
    assert rec.calls == [raw, copy_raw]
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed, stats.report()) == (2, 2, "")


def test_dup_runs_under_a_borrow() -> None:
    fd, rec = eventfd()
    seen: list[int] = []

    def dup_while_borrowed() -> rcfd.FD:
        seen.append(fd.borrow_count)
        return fd.dup()

    with fd.borrow():
        copy = dup_while_borrowed()  # nested borrow: fine
    # A close that began refuses the borrow dup needs.
    held = HeldBorrow(fd)
    closing = Run(fd.close)
    waiting(fd, closing.thread)
    before = open_fds()
    with pytest.raises(rcfd.ClosedFDError):
        fd.dup()
    assert open_fds() == before  # no descriptor was made
    held.release()
    closing.join()
    with pytest.raises(rcfd.ClosedFDError):
        fd.dup()
    copy.close()
    assert len(rec.calls) == 2
    assert seen == [1]


def test_dup_does_not_inherit_on_closing() -> None:
    # on_closing wakes the original's borrows (a shutdown acts on the socket
    # both numbers share): closing the copy must not run it.
    calls: list[str] = []
    fd, _ = eventfd(on_closing=lambda n: calls.append("original"))
    copy = fd.dup()
    copy.close()
    assert calls == []
    other = fd.dup(on_closing=lambda n: calls.append("copy"))
    other.close()
    assert calls == ["copy"]
    fd.close()
    assert calls == ["copy", "original"]


def test_dup_checks_on_closing_before_the_state() -> None:
    fd, _ = eventfd()
    fd.close()
    with pytest.raises(TypeError, match="dup: on_closing must be callable"):
        fd.dup(on_closing=cast(Callable[[int], object], 3))  # checked at run time


def test_dup_of_an_untracked_fd_joins_the_tracking_scope() -> None:
    fd, _ = eventfd()  # made outside any scope
    with rcfd.track_lifetimes() as registry:
        copy = fd.dup()
    assert registry.fd_stats().initialized == 1
    copy.close()
    fd.close()
    assert registry.fd_stats().report() == ""


def test_on_closing_error_turns_a_detach_into_a_close() -> None:
    # The detaching caller leaves by on_closing's exception, so it will never
    # receive the number: it is closed, never handed to nobody.
    fd, rec = eventfd(on_closing=lambda rawfd: 1 / 0)
    raw = fd.do(lambda n: n)
    held = HeldBorrow(fd)
    with pytest.raises(ZeroDivisionError):
        fd.detach()
    held.release()
    assert rec.calls == [raw]
    assert not is_open(raw)

    registry = rcfd.LifetimeRegistry()
    fd, rec = eventfd(on_closing=lambda rawfd: 1 / 0)  # no borrow running
    raw = fd.do(lambda n: n)
    with pytest.raises(ZeroDivisionError):
        fd.detach()
    assert rec.calls == [raw]
    assert state(fd) is rcfd.State.CLOSED
    # A close, not a hand-over that was then closed: the registry says so.
    tracked = rcfd.FD(registry=registry)
    tracked.init(os.eventfd(0), on_closing=lambda rawfd: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tracked.detach()
    stats = registry.fd_stats()
    assert (stats.closed, stats.detached) == (1, 0)
