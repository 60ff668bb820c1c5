"""on_closing: wake a borrow blocked in a system call when close() begins.

The scenario the feature exists for: a thread is blocked in a real recv(2)
on one end of a socket pair, under a borrow. Without on_closing, close()
waits for that borrow forever (or until its timeout); with
`on_closing=shutdown`, close() returns promptly, the blocked recv() sees
end-of-file, and it never runs on a reused descriptor because close_func
runs only after it returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import socket
import threading
import time
import warnings
from collections.abc import Callable
from typing import cast

import pytest

import rcfd
from tests.fdhelp import WAIT, HeldBorrow, Recorder, eventfd, is_open, state, wait_in_syscall

_libc = ctypes.CDLL(None, use_errno=True)
_libc.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.recv.restype = ctypes.c_ssize_t
_libc.shutdown.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.shutdown.restype = ctypes.c_int

def raw_recv(rawfd: int, size: int = 64) -> bytes:
    """recv(2) on the raw number (ctypes releases the GIL while it blocks)."""
    buf = ctypes.create_string_buffer(size)
    n = _libc.recv(rawfd, buf, size, 0)
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buf.raw[:n]


def raw_shutdown(rawfd: int) -> None:
    """shutdown(2) on the raw number, without a socket object that owns it."""
    if _libc.shutdown(rawfd, socket.SHUT_RDWR) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Pair:
    """A socket pair whose first end's number belongs to an FD."""

    def __init__(self, on_closing: bool) -> None:
        a, self.peer = socket.socketpair()
        self.raw = a.detach()  # the FD owns the number now; no socket object does
        self.events: list[str] = []
        self.rec = Recorder()
        self.fd = rcfd.FD(
            self.raw, self._close, on_closing=self._on_closing if on_closing else None
        )
        self.rec.fd = self.fd
        self.on_closing_seen: list[tuple[int, rcfd.State, int, int]] = []

    def _on_closing(self, rawfd: int) -> None:
        self.on_closing_seen.append(
            (rawfd, self.fd.state, self.fd.borrow_count, threading.get_ident())
        )
        raw_shutdown(rawfd)

    def _close(self, rawfd: int) -> None:
        self.events.append("close_func")
        self.rec(rawfd)

    def recv_under_borrow(self) -> HeldBorrow:
        def fn(rawfd: int) -> bytes:
            data = raw_recv(rawfd)
            self.events.append(f"recv returned {data!r}")
            return data

        held = HeldBorrow(self.fd, fn)
        if not wait_in_syscall(held.thread.native_id, "recvfrom"):
            pytest.skip(f"system call numbers unknown on {platform.machine()}")
        return held


def test_close_wakes_a_borrow_blocked_in_recv() -> None:
    pair = Pair(on_closing=True)
    held = pair.recv_under_borrow()
    start = time.monotonic()
    pair.fd.close(timeout=WAIT)  # returns, does not time out
    elapsed = time.monotonic() - start
    held.join()
    assert held.error is None
    assert held.result == b""  # end-of-file: the peer's data never came
    # The blocked recv() returned before the number was closed: it cannot
    # have run on a descriptor the kernel gave to someone else.
    assert pair.events == ["recv returned b''", "close_func"]
    assert pair.rec.calls == [pair.raw]
    assert pair.rec.borrows_seen == [0]
    # on_closing ran once, in the closing thread, on the valid number, under
    # the closer's own borrow (count 2: the closer's and the blocked one).
    assert pair.on_closing_seen == [
        (pair.raw, rcfd.State.CLOSING, 2, threading.get_ident())
    ]
    assert elapsed < WAIT
    pair.peer.close()


def test_the_number_reused_after_close_is_never_reached_through_the_fd() -> None:
    pair = Pair(on_closing=True)
    held = pair.recv_under_borrow()
    pair.fd.close(timeout=WAIT)
    held.join()
    r, w = os.pipe()  # the lowest free number: usually the one just closed
    try:
        os.write(w, b"someone else's data")
        with pytest.raises(rcfd.ClosedFDError):
            pair.fd.do(raw_recv)
        assert os.read(r, 100) == b"someone else's data"  # nothing consumed it
    finally:
        os.close(r)
        os.close(w)
        pair.peer.close()


def test_without_on_closing_close_waits_for_the_blocked_recv() -> None:
    # The counterpart: the same blocked borrow, no on_closing. close() cannot
    # return, so its timeout strikes; the close then happens when the recv
    # returns on its own (the peer sends a byte).
    pair = Pair(on_closing=False)
    held = pair.recv_under_borrow()
    with pytest.raises(TimeoutError):
        pair.fd.close(timeout=0.1)
    assert state(pair.fd) is rcfd.State.CLOSING
    assert is_open(pair.raw)
    pair.peer.send(b"x")
    held.join()
    assert held.result == b"x"
    assert pair.events == ["recv returned b'x'", "close_func"]
    assert state(pair.fd) is rcfd.State.CLOSED
    pair.peer.close()


def test_on_closing_runs_once_for_concurrent_closers() -> None:
    calls: list[int] = []
    release = threading.Event()

    def on_closing(rawfd: int) -> None:
        calls.append(rawfd)
        release.set()

    fd, rec = eventfd(on_closing=on_closing)
    held = HeldBorrow(fd)
    closers = [threading.Thread(target=_close_quietly, args=(fd,), daemon=True) for _ in range(4)]
    for t in closers:
        t.start()
    assert release.wait(WAIT)
    held.release()
    for t in closers:
        t.join(WAIT)
    assert len(calls) == 1
    assert len(rec.calls) == 1


def _close_quietly(fd: rcfd.FD) -> None:
    # ClosedFDError: another closer began first, and it has finished.
    with contextlib.suppress(rcfd.ClosedFDError):
        fd.close(timeout=WAIT)


def test_on_closing_error_reaches_the_closer_and_the_close_still_happens() -> None:
    fd, rec = eventfd(on_closing=lambda rawfd: 1 / 0)
    held = HeldBorrow(fd)
    with pytest.raises(ZeroDivisionError):
        fd.close()
    assert state(fd) is rcfd.State.CLOSING  # new borrows refused; close pending
    with pytest.raises(rcfd.ClosedFDError):
        fd.do(lambda n: n)
    held.release()
    assert held.error is None
    assert len(rec.calls) == 1
    assert state(fd) is rcfd.State.CLOSED


def test_on_closing_error_without_borrows_closes_at_once() -> None:
    fd, rec = eventfd(on_closing=lambda rawfd: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fd.close()
    assert len(rec.calls) == 1
    assert state(fd) is rcfd.State.CLOSED


def test_close_func_error_after_on_closing_error_is_warned_not_lost() -> None:
    # The closer left with on_closing's error; close_func's own error later
    # has nobody to reach, so the thread that ran it warns.
    fd, rec = eventfd(error=OSError(5, "EIO on close"), on_closing=lambda rawfd: 1 / 0)
    held = HeldBorrow(fd)
    with pytest.raises(ZeroDivisionError):
        fd.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held.release()
    assert held.error is None
    assert [w.category for w in caught] == [RuntimeWarning]
    assert len(rec.calls) == 1


def test_close_func_error_after_on_closing_error_with_no_borrow_is_warned_not_lost() -> None:
    # No borrow runs: the closer's own release runs close_func, on its way out
    # with on_closing's error. It left before that release, so close_func's
    # error has nobody to reach and is warned there, not dropped.
    fd, rec = eventfd(error=OSError(5, "EIO on close"), on_closing=lambda rawfd: 1 / 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ZeroDivisionError):
            fd.close()
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "EIO on close" in str(caught[0].message)
    assert len(rec.calls) == 1 and fd.state is rcfd.State.CLOSED


def test_on_closing_must_be_callable_and_needs_a_number() -> None:
    raw = os.eventfd(0)
    try:
        with pytest.raises(TypeError, match="on_closing must be callable"):
            rcfd.FD(raw, on_closing=cast(Callable[[int], object], 3))  # checked at run time
        with pytest.raises(TypeError, match="on_closing needs a rawfd"):
            rcfd.FD(on_closing=print)
        assert is_open(raw)  # the refused FD never owned it
    finally:
        os.close(raw)
