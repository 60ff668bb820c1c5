"""Small doubles for the ecosystem tests (aclose, on_closing, detach, dup,
tracking): a close_func that records, and a borrow held open by a thread.

Every wait is bounded by WAIT so that a broken FD fails a test instead of
hanging it; no test sleeps to hope for an ordering.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import rcfd

WAIT = 10.0  # seconds: generous for a loaded box, never an ordering assumption


class Recorder:
    """A close_func that records each call (thread, borrow count) and then
    really closes the number, or raises `error` after closing it."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.fd: rcfd.FD | None = None  # set after the FD exists
        self.calls: list[int] = []
        self.threads: list[int] = []
        self.borrows_seen: list[int] = []
        self.error = error
        self.called = threading.Event()

    def __call__(self, rawfd: int) -> None:
        self.calls.append(rawfd)
        self.threads.append(threading.get_ident())
        if self.fd is not None:
            self.borrows_seen.append(self.fd.borrow_count)
        os.close(rawfd)
        self.called.set()
        if self.error is not None:
            raise self.error


def eventfd(
    error: BaseException | None = None, on_closing: Callable[[int], object] | None = None
) -> tuple[rcfd.FD, Recorder]:
    """An OPEN FD on a fresh eventfd whose close_func is a Recorder."""
    rec = Recorder(error)
    fd = rcfd.FD(os.eventfd(0), rec, on_closing=on_closing)
    rec.fd = fd
    return fd, rec


def is_open(rawfd: int) -> bool:
    try:
        os.fstat(rawfd)
    except OSError:
        return False
    return True


class HeldBorrow:
    """A thread that holds one borrow of `fd` until release() is called.

    `fn(rawfd)`, if given, runs under the borrow after it is taken (it may
    block, e.g. in recv()); otherwise the borrow just waits for release().
    """

    def __init__(self, fd: rcfd.FD, fn: Callable[[int], object] | None = None) -> None:
        self.fd = fd
        self.fn = fn
        self.entered = threading.Event()
        self._release = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.entered.wait(WAIT), "the borrow never started"

    def _run(self) -> None:
        def body(rawfd: int) -> object:
            self.entered.set()
            if self.fn is not None:
                return self.fn(rawfd)
            assert self._release.wait(WAIT), "test never released the borrow"
            return None

        try:
            self.result = self.fd.do(body)
        except BaseException as exc:
            self.error = exc

    def release(self) -> None:
        self._release.set()
        self.join()

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the borrow did not return"


def state(fd: rcfd.FD) -> rcfd.State:
    """fd.state through a call, so that mypy does not narrow it between
    assertions (another thread changes it)."""
    return fd.state


# System call numbers per architecture, for waiting until a thread is blocked
# in one (read from /proc/self/task/<tid>/syscall).
SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"recvfrom": 45, "futex": 202},
    "aarch64": {"recvfrom": 207, "futex": 98},
}


def in_syscall(native_id: int | None, name: str) -> bool | None:
    """Whether thread `native_id` is blocked in system call `name` now (the
    kernel's view of it); None if this architecture's numbers are unknown."""
    import platform

    numbers = SYSCALLS.get(platform.machine())
    if numbers is None or native_id is None:
        return None
    with open(f"/proc/self/task/{native_id}/syscall") as f:
        return f.read().split(" ", 1)[0] == str(numbers[name])


def wait_in_syscall(native_id: int | None, name: str) -> bool:
    """Wait until thread `native_id` is blocked in system call `name`.

    Returns False if this architecture's numbers are unknown (the caller
    skips); fails the test after WAIT. It polls the kernel's view of the
    thread: it checks the state the test needs rather than hoping for it.
    """
    import time

    if in_syscall(native_id, name) is None:
        return False
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if in_syscall(native_id, name):
            return True
        time.sleep(0.001)
    raise AssertionError(f"thread {native_id} never blocked in {name}()")
