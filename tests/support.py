"""Test doubles shared by the tests: a close_func that counts, a borrow held by a thread.

Every wait here is bounded (WAIT seconds) so that a broken FD fails a test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING

import pytest

import rcfd
from rcfd import _nogil

WAIT = 10.0  # seconds; generous, because a loaded CI box is slow, never a timing assumption


class CountingClose:
    """A close_func that records each call (and whether a borrow was running) then
    really closes the number."""

    def __init__(self, fd: rcfd.FD | None = None, error: BaseException | None = None) -> None:
        self.calls: list[int] = []
        self.borrows_seen: list[int] = []  # fd.borrow_count at each call (must be 0)
        self.fd = fd
        self.error = error
        self.entered = threading.Event()
        self.finished = threading.Event()  # set when the call returns or raises
        self.release: threading.Event | None = None  # if set, block until it is set

    def __call__(self, rawfd: int) -> None:
        self.calls.append(rawfd)
        if self.fd is not None:
            self.borrows_seen.append(self.fd.borrow_count)
        self.entered.set()
        try:
            if self.release is not None:
                assert self.release.wait(WAIT), "test never released close_func"
            os.close(rawfd)
            if self.error is not None:
                raise self.error
        finally:
            self.finished.set()


def open_fd(**kwargs: object) -> tuple[rcfd.FD, CountingClose]:
    """An OPEN FD on a fresh eventfd, with a CountingClose."""
    closer = CountingClose()
    fd = rcfd.FD()
    closer.fd = fd
    registry = kwargs.get("registry")
    if isinstance(registry, rcfd.LifetimeRegistry):
        fd.track_lifetime(registry)
    fd.init(os.eventfd(0), closer)
    return fd, closer


class Outcome:
    """What a call run in a thread returned or raised."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: object = None
        self.error: BaseException | None = None


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, Outcome]:
    """Start `call` in a daemon thread; its Outcome's `done` is set when it ends."""
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.value = call()
        except BaseException as exc:
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


class HeldBorrow:
    """A borrow of `fd` running in another thread until `end()` (or the with-block ends).

    `form` is "do" (fd.do(fn)) or "borrow" (with fd.borrow()). `rawfd` is what
    the borrow saw; `valid_at_end` whether fstat still worked on it when it
    ended, so a test can tell the number was never closed under it.
    """

    def __init__(
        self, fd: rcfd.FD, raise_on_end: BaseException | None = None, form: str = "do"
    ) -> None:
        self.fd = fd
        self.started = threading.Event()
        self._end = threading.Event()
        self.rawfd = -1
        self.valid_at_end = False
        self.raise_on_end = raise_on_end

        def body(rawfd: int) -> int:
            self.rawfd = rawfd
            self.started.set()
            assert self._end.wait(WAIT), "test never ended the borrow"
            os.fstat(rawfd)  # raises if the number was closed under us
            self.valid_at_end = True
            if self.raise_on_end is not None:
                raise self.raise_on_end
            return rawfd

        def with_borrow() -> int:
            with fd.borrow() as rawfd:
                return body(rawfd)

        self.thread, self.outcome = in_thread(
            (lambda: fd.do(body)) if form == "do" else with_borrow
        )
        assert self.started.wait(WAIT), f"borrow did not start: {self.outcome.error!r}"

    def let_go(self) -> None:
        """Let the borrow end, without waiting for its release (which may block
        in the close_func it runs)."""
        self._end.set()

    def end(self) -> None:
        self._end.set()
        assert self.outcome.done.wait(WAIT), "borrow did not return"
        self.thread.join(WAIT)

    def __enter__(self) -> HeldBorrow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until true, failing after WAIT seconds. For conditions
    no event signals (such as another thread having entered CLOSING)."""
    deadline = threading.Event()
    for _ in range(int(WAIT / 0.001)):
        if predicate():
            return
        deadline.wait(0.001)
    raise AssertionError(f"timed out waiting until {what}")


def stays_blocked(outcome: Outcome, seconds: float = 0.05) -> bool:
    """True if the call has not returned within `seconds`. Only ever used to
    assert that something is blocked: a false pass needs the call to be slow,
    and the test then also checks that it returns once unblocked."""
    return not outcome.done.wait(seconds)


def state_of(fd: rcfd.FD) -> rcfd.State:
    """fd.state, read through a call so that mypy does not keep an earlier
    `assert fd.state is ...` narrowing after another thread changed it."""
    return fd.state


class PausingRegistry(rcfd.LifetimeRegistry):
    """A registry whose first init record waits for `resume` (at most
    `resume_within` seconds): the init then holds the shared lock, past its
    state check, its holders not yet published."""

    def __init__(self, resume_within: float = WAIT) -> None:
        super().__init__()
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.resume_within = resume_within

    def _record_init(self, key: int, rawfd: int) -> None:
        if not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(self.resume_within), "test never resumed the init"
        super()._record_init(key, rawfd)


def in_child(check: Callable[[], None]) -> None:
    """Run `check` in a forked child; fail here if it fails, raises or hangs."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            signal.alarm(int(WAIT))  # a deadlock ends the child with SIGALRM
            check()
            code = 0
        except BaseException as exc:
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    reap(pid)


def reap(pid: int) -> None:
    """Wait (bounded) for child `pid`; fail if it failed, raised or hung."""
    deadline = time.monotonic() + WAIT + 5
    pause = threading.Event()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the child hung")
        pause.wait(0.01)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)} (a hang?)"
    assert os.WEXITSTATUS(status) == 0, "the child's check failed (see stderr)"


# The lock-free borrow's insert is the GIL path's (rcfd._fd); the no-GIL path
# takes and records it in one C call (tests/reliability/test_interrupt_nogil_steps.py).
GIL_PATH_ONLY = pytest.mark.skipif(
    _nogil.ENABLED, reason="the lock-free borrow is not used on the no-GIL path"
)

if TYPE_CHECKING:
    _Holders = array[int]
else:
    _Holders = array


class InterruptedInsert(_Holders):
    """An FD's holders whose insert by one thread is interrupted as it returns:
    the borrow is counted, `meanwhile` runs, then KeyboardInterrupt, as a
    signal handler's would at that bytecode (the Signals rule's case that
    tests/reliability reaches with real signals)."""

    target = 0
    meanwhile: Callable[[], None] | None = None

    def insert(self, index: int, value: int, /) -> None:
        super().insert(index, value)
        if threading.get_ident() == self.target:
            self.target = 0  # once
            if self.meanwhile is not None:
                self.meanwhile()
            raise KeyboardInterrupt


def loop_freed_after(main: Callable[[], Coroutine[object, object, None]]) -> bool:
    """Run main() on a new event loop, close the loop and drop it: whether it
    is then freed (nothing, such as an FD's close record, still holds it)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    return gone() is None
