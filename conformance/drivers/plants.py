"""Bugs planted in the Python driver's FD, one per subclass of rcfd.FD.

Each breaks one rule of specs/rcfd.md through the public API (rcfd's code is
untouched), as a port might get it wrong. `python -m
conformance.drivers.rcfd_driver --plant NAME` runs the driver on one, and
tests/test_conformance.py shows the runner failing each: a runner that
passed a planted driver would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import rcfd
from rcfd._lifecycle import State

T = TypeVar("T")


class CloseReturnsEarly(rcfd.FD):
    """close() stops waiting for the running borrows and returns as if the
    close were done (guarantees 4, 5: close_func has not run yet)."""

    def close(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            super().close(0.0 if timeout is None else timeout)


class BorrowAfterClose(rcfd.FD):
    """A borrow of a closing FD runs fn with the number instead of refusing
    (guarantee 2: the number is about to be closed under it)."""

    number = -1

    def init(
        self,
        rawfd: int,
        close_func: Callable[[int], object] = os.close,
        *,
        on_closing: Callable[[int], object] | None = None,
    ) -> None:
        super().init(rawfd, close_func, on_closing=on_closing)
        self.number = rawfd

    def do(self, fn: Callable[[int], T], /) -> T:
        if self.state is State.CLOSING:
            return fn(self.number)
        return super().do(fn)


class PollingSecondCloser(rcfd.FD):
    """A close that finds the close begun polls for CLOSED instead of
    registering to be woken. Every call returns what it should, a little
    late; only the traces' observable for blocked closers (`closers_waiting`
    in `after`) shows that it never waited as a closer."""

    def close(self, timeout: float | None = None) -> None:
        mine = self._borrows_of(threading.get_ident())
        if self.state is not State.CLOSING or mine or (timeout is not None and timeout < 0):
            return super().close(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed():
            if deadline is not None and time.monotonic() > deadline and self.borrow_count:
                raise TimeoutError("close() timed out (polling)")
            time.sleep(0.002)
        raise rcfd.ClosedFDError("close", State.CLOSED)

    def _closed(self) -> bool:
        return self.state is State.CLOSED


class FinalizerIgnoresGarbageBorrows(rcfd.FD):
    """The finalizer of rcfd before issue 12: an FD with borrows running is
    left alone, as if no borrow could be held by garbage (guarantee 9: the
    descriptor leaks, no warning)."""

    def __del__(self, *defaults: object) -> None:
        if self.state is State.OPEN and self.borrow_count:
            return
        super().__del__()


PLANTS: dict[str, type[rcfd.FD]] = {
    "close-returns-early": CloseReturnsEarly,
    "borrow-after-close": BorrowAfterClose,
    "polling-second-closer": PollingSecondCloser,
    "finalizer-ignores-garbage-borrows": FinalizerIgnoresGarbageBorrows,
}
