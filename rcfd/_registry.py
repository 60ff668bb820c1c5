"""Lifetime tracking for tests: which FDs were initialized, released, leaked.

Go: rc.LifetimeRegistry and rc.FDStats. An FD reports to its registry at
init and at release; the registry keeps the init site of every FD still in
flight so that a leak report can point at the code that opened it.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Literal, cast

from rcfd._locks import OwnedLock

Release = Literal["closed", "close_failed", "detached", "finalized"]
"""How an FD left the registry: close_func returned, close_func raised,
detach() handed the number back, or the garbage collector closed it."""


# In in_flight_stacks, the stacks of several FDs in flight on one number (a
# number wrapped twice, or reused by the kernel while an FD that did not close
# it is still in flight) follow each other, each after the first behind this
# line; a formatted stack has no line like it.
ANOTHER_FD = "(and another FD on the same number, initialized at:)\n"


def split_stacks(value: str) -> list[str]:
    """The init stacks of the FDs that one in_flight_stacks value names, in
    init order (one, unless several FDs in flight share the number)."""
    return value.split(ANOTHER_FD)


@dataclass(frozen=True)
class FDStats:
    """A snapshot of a LifetimeRegistry. No leak iff
    initialized == closed + close_failed + detached (then report() is "")."""

    initialized: int = 0  # init() calls that succeeded
    closed: int = 0  # closed by close()/aclose()/__exit__, close_func returned
    close_failed: int = 0  # closed by close(), close_func raised (still CLOSED)
    # rawfd -> init stack, for every FD in flight (initialized, not released).
    # FDs are counted by identity: several in flight on one number are all
    # there, their stacks joined (split_stacks), none replacing another.
    in_flight_stacks: dict[int, str] = field(default_factory=dict)
    detached: int = 0  # released by detach(): the caller owns the number now
    finalized: int = 0  # never closed; the garbage collector's finalizer closed them
    finalized_stacks: tuple[tuple[int, str], ...] = ()  # (rawfd, init stack) per finalized FD
    # FDs in flight (not numbers): the stacks in in_flight_stacks, counted.
    # Derived, so it cannot disagree with them.
    in_flight: int = field(init=False)

    def __post_init__(self) -> None:
        count = sum(len(split_stacks(v)) for v in self.in_flight_stacks.values())
        object.__setattr__(self, "in_flight", count)

    def report(self) -> str:
        """ "" when nothing leaked; else a message naming each leaked descriptor
        and the stack that initialized it, fit to fail a test with."""
        leaked = self.initialized - self.closed - self.close_failed - self.detached
        if leaked == 0:
            return ""
        lines = [
            f"rcfd: {leaked} file descriptor(s) leaked: initialized={self.initialized}"
            f" closed={self.closed} close_failed={self.close_failed}"
            f" detached={self.detached} finalized={self.finalized}"
            f" in_flight={self.in_flight}"
        ]
        for rawfd, stacks in sorted(self.in_flight_stacks.items()):
            for stack in split_stacks(stacks):
                lines.append(f"\nfd {rawfd} is still open; initialized at:\n{stack}")
        for rawfd, stack in self.finalized_stacks:
            lines.append(
                f"\nfd {rawfd} was never closed (the garbage collector closed it); "
                f"initialized at:\n{stack}"
            )
        return "\n".join(lines).rstrip("\n") + "\n"


def _init_stack() -> traceback.StackSummary:
    """The caller's stack without rcfd's own frames; source lines are read later."""
    frames = [(f, n) for f, n in traceback.walk_stack(None) if not _is_rcfd_frame(f)]
    frames.reverse()
    return traceback.StackSummary.extract(frames, lookup_lines=False)


def _is_rcfd_frame(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.startswith("rcfd.")


def user_stacklevel() -> int:
    """warnings.warn's stacklevel, for the function that calls this, that names
    the first frame outside rcfd: a warning points at the user's line that
    led to it (the borrow whose release ran close_func), however deep in rcfd
    it is raised."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _is_rcfd_frame(frame):
        frame = frame.f_back
        level += 1
    return level


class LifetimeRegistry:
    """Counts FD lifetimes; thread-safe. The zero value (no arguments) is ready.

    FDs are keyed by object identity, not by descriptor number: a number can
    be reused by the kernel while the registry still remembers its first user.

    An FD reports (init, release) by appending to a log, one list append, and
    never waits for the registry's lock: it may report while it holds its own
    lock, or the shared one init takes, or from a finalizer that the
    collector runs inside one of the registry's own locked sections, and
    any of those waits was a deadlock (two threads, or one waiting for
    itself). The log is counted under the lock, in order, by whoever takes
    it: every reader first, and a reporter that finds the lock free.
    """

    __slots__ = (
        "_lock",
        "_log",
        "_initialized",
        "_closed",
        "_close_failed",
        "_detached",
        "_finalized",
        "_in_flight",
        "_finalized_sites",
    )

    def __init__(self) -> None:
        # Guards the counts and maps below, and the counting of the log.
        # Reentrant, so that a reporter can tell its own thread holds it.
        self._lock = _new_lock()
        # The reports not counted yet, oldest first: each counts itself.
        self._log: deque[Callable[[], None]] = deque()
        self._initialized = 0
        self._closed = 0
        self._close_failed = 0
        self._detached = 0
        self._finalized = 0
        # id(FD) -> (rawfd, init stack); an entry lives from init to release.
        self._in_flight: dict[int, tuple[int, traceback.StackSummary]] = {}
        self._finalized_sites: list[tuple[int, traceback.StackSummary]] = []

    def fd_stats(self) -> FDStats:
        """The counts so far. Accurate once the code under test stopped
        creating and closing FDs."""
        with self._lock:
            self._count_log()
            in_flight = list(self._in_flight.values())  # in init order
            finalized = list(self._finalized_sites)
            counts = (
                self._initialized,
                self._closed,
                self._close_failed,
                self._detached,
                self._finalized,
            )
        return FDStats(
            initialized=counts[0],
            closed=counts[1],
            close_failed=counts[2],
            in_flight_stacks=_by_number(in_flight),
            detached=counts[3],
            finalized=counts[4],
            finalized_stacks=tuple((fd, "".join(s.format())) for fd, s in finalized),
        )

    def __repr__(self) -> str:
        with self._lock:
            self._count_log()
            return (
                f"<rcfd.LifetimeRegistry initialized={self._initialized} "
                f"in_flight={len(self._in_flight)}>"
            )

    def _after_fork(self, me: int) -> bool:
        """In a forked child: a fresh lock (a vanished thread may hold this one)."""
        self._lock = _new_lock()
        return False

    # The FD calls these; each is one append to the log.

    def _record_init(self, key: int, rawfd: int) -> None:
        self._report(partial(self._count_init, key, rawfd, _init_stack()))

    def _forget_init(self, key: int) -> None:
        """Undo _record_init for an init that failed after recording (an
        interrupt as the record returned). A no-op if it was not recorded."""
        self._report(partial(self._count_forget, key))

    def _record_release(self, key: int, how: Release) -> None:
        self._report(partial(self._count_release, key, how))

    def _report(self, entry: Callable[[], None]) -> None:
        """Log `entry`, then count the log if the lock is free: a reporter
        never waits for it (see the class docstring)."""
        self._log.append(entry)
        lock = self._lock
        if lock._is_owned():
            return  # inside a section of ours on this thread: it counts the log
        # Without `with` (as the FD's locked steps, specs/cpython.md): an
        # interrupt as acquire returns must not leave the lock held.
        try:
            if lock.acquire(blocking=False):
                self._count_log()
        finally:
            try:  # noqa: SIM105 - suppress() is a call: a check point before the release
                lock.release()
            except RuntimeError:  # not ours: another thread counts the log
                pass

    # Counting the log (each needs the lock).

    def _count_log(self) -> None:
        """Count every report logged, oldest first: until none is left, since
        the collector may log more while they are counted."""
        log = self._log
        while log:
            log.popleft()()

    def _count_init(self, key: int, rawfd: int, stack: traceback.StackSummary) -> None:
        self._initialized += 1
        self._in_flight[key] = (rawfd, stack)

    def _count_forget(self, key: int) -> None:
        if self._in_flight.pop(key, None) is not None:
            self._initialized -= 1

    def _count_release(self, key: int, how: Release) -> None:
        entry = self._in_flight.pop(key, None)
        if how == "closed":
            self._closed += 1
        elif how == "close_failed":
            self._close_failed += 1
        elif how == "detached":
            self._detached += 1
        else:
            self._finalized += 1
            if entry is not None:
                self._finalized_sites.append(entry)


def _new_lock() -> OwnedLock:
    # threading.RLock looked up at each call: the interleavings harness models it.
    return cast(OwnedLock, threading.RLock())


def _by_number(in_flight: list[tuple[int, traceback.StackSummary]]) -> dict[int, str]:
    """rawfd -> the formatted init stacks of the FDs in flight on it, joined."""
    stacks: dict[int, list[str]] = {}
    for rawfd, stack in in_flight:
        stacks.setdefault(rawfd, []).append("".join(stack.format()))
    return {rawfd: ANOTHER_FD.join(each) for rawfd, each in stacks.items()}


current_registry: contextvars.ContextVar[LifetimeRegistry | None] = contextvars.ContextVar(
    "rcfd_current_registry", default=None
)
"""The registry that FD.init() uses when the FD was given none (track_lifetimes)."""
