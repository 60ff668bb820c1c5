"""The lock an FD and a LifetimeRegistry keep: CPython's RLock.

Reentrant only so that the thread holding it can tell (`_is_owned`) that the
collector, or a signal handler, re-entered one of the object's own locked
sections on that thread: the re-entered code then leaves its work to the
section's caller instead of waiting for a lock its own thread holds (which
a plain Lock did, for good). Never to nest the sections themselves.
"""

from __future__ import annotations

from typing import Protocol


class OwnedLock(Protocol):
    """threading.RLock, with the ownership test CPython's RLock has (and its
    typing stub omits)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...
    def _is_owned(self) -> bool: ...
