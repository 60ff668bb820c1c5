"""rcfd: reference-counted file descriptors for threads (a port of Go's acln.ro/rc).

Where things live:
  rcfd._lifecycle  the state machines as pure functions: step() for the FD,
                   close_step() for one close; TABLE is step() read once
  rcfd._fd         FD and Borrow: the borrow (one insert into an array a close
                   freezes) and the transitions, applied from TABLE
  rcfd._closing    Closing: one close, from the freeze to the last waiter woken
  rcfd._nogil      the borrow without a GIL (free-threaded builds, RCFD_NOGIL=1)
  rcfd._errors     the exceptions and wrap_syscall_error
  rcfd._checks     argument checks
  rcfd._registry   LifetimeRegistry and FDStats (leak tracking)
  rcfd._tracking   track_lifetimes(): a registry for every FD opened in a block
  rcfd._fork       the at-fork repair walk
  rcfd._locks      the lock an FD and a registry keep: an RLock that knows its owner
  rcfd.pytest_plugin  the `fd_leaks` fixture (loaded by pytest, not by `import rcfd`)
"""

from rcfd._errors import (
    ClosedFDError,
    CloseInsideBorrowError,
    CloseInsideCloseFuncError,
    FDError,
    MultipleInitError,
    SyscallError,
    UninitializedFDError,
    wrap_syscall_error,
)
from rcfd._fd import FD, Borrow
from rcfd._lifecycle import State
from rcfd._registry import FDStats, LifetimeRegistry
from rcfd._tracking import track_lifetimes

__version__ = "0.1.0"  # the version in pyproject.toml (tests/test_packaging.py checks)

__all__ = [
    "FD",
    "Borrow",
    "ClosedFDError",
    "CloseInsideBorrowError",
    "CloseInsideCloseFuncError",
    "FDError",
    "FDStats",
    "LifetimeRegistry",
    "MultipleInitError",
    "State",
    "SyscallError",
    "UninitializedFDError",
    "wrap_syscall_error",
    "track_lifetimes",
]
