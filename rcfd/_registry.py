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
from dataclasses import dataclass, field
from types import FrameType
from typing import Literal

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
    """

    __slots__ = (
        "_lock",
        "_initialized",
        "_closed",
        "_close_failed",
        "_detached",
        "_finalized",
        "_in_flight",
        "_finalized_sites",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards every field below
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
            return (
                f"<rcfd.LifetimeRegistry initialized={self._initialized} "
                f"in_flight={len(self._in_flight)}>"
            )

    def _after_fork(self, me: int) -> bool:
        """In a forked child: a fresh lock (a vanished thread may hold this one)."""
        self._lock = threading.Lock()
        return False

    # The FD calls these; each is one locked update.

    def _record_init(self, key: int, rawfd: int) -> None:
        stack = _init_stack()
        with self._lock:
            self._initialized += 1
            self._in_flight[key] = (rawfd, stack)

    def _forget_init(self, key: int) -> None:
        """Undo _record_init for an init that failed after recording (an
        interrupt as the record returned). A no-op if it was not recorded."""
        with self._lock:
            if self._in_flight.pop(key, None) is not None:
                self._initialized -= 1

    def _record_release(self, key: int, how: Release) -> None:
        with self._lock:
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
