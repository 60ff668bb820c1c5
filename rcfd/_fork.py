"""fork(): every FD the child inherits is usable in the child.

os.fork() copies the whole address space but only the calling thread. In the
child, an FD may have been copied in a state no child thread can ever change:
its lock held by a thread that was inside a locked step at the fork, borrows
counted for threads that do not exist there (a close() in the child would
wait for them forever), a close begun by a thread that is gone. The at-fork
hook repairs each object, in the child only, right after the fork, by calling
the repair method of each kind of object registered here (specs/rcfd.md,
"Fork"):

  * FD._after_fork: drops the FD's lock (the next close makes a fresh one) and
    the borrows of every thread but the forking one, and settles a close the
    fork cut inside its locked step (begun if it had frozen the holders,
    never begun if not); a close left CLOSING is finished afterwards
    (Closing.finish_after_fork), once every lock is fresh, because
    close_func may use other FDs;
  * Borrow._after_fork: a Borrow entered by a thread that is gone is marked
    dropped, because a generator suspended inside `with fd.borrow()` can still
    be resumed in the child, and its exit must release nothing;
  * LifetimeRegistry._after_fork: a fresh lock.

Finding the objects costs nothing per FD and nothing on the borrow path: the
hook walks gc.get_objects() once per fork, in the child. A registry of live
FDs would cost a weakref slot plus a WeakSet entry, about 200 bytes per open
FD. The walk misses objects that gc.freeze() moved to the permanent
generation; a program that freezes before forking must not fork while
another thread borrows or closes such an FD.

This module imports nothing of rcfd: the kinds register themselves.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from typing import Protocol, cast


class Repairable(Protocol):
    def _after_fork(self, me: int) -> bool:
        """Repair self for a child where only thread `me` runs; True if it has
        work left that needs every object repaired first."""


class Finishable(Protocol):
    def _finish_after_fork(self, me: int) -> None:
        """That work."""


_kinds: tuple[type, ...] = ()
_before: list[Callable[[], None]] = []


def install(*kinds: type, before: Callable[[], None]) -> None:
    """Repair objects of `kinds` in every forked child, after calling `before`
    (module-level state, such as a shared lock). Idempotent per kind."""
    global _kinds
    if not hasattr(os, "register_at_fork"):
        return
    if not _kinds:
        os.register_at_fork(after_in_child=_after_fork_in_child)
    _kinds += tuple(k for k in kinds if k not in _kinds)
    if before not in _before:
        _before.append(before)


def _after_fork_in_child() -> None:
    me = threading.get_ident()  # the forking thread keeps its ident in the child
    for reset in _before:
        reset()
    unfinished: list[Finishable] = []
    for obj in gc.get_objects():
        if isinstance(obj, _kinds) and cast(Repairable, obj)._after_fork(me):
            unfinished.append(cast(Finishable, obj))
    # Every lock is fresh before any close runs (close_func may use other FDs).
    for obj in unfinished:
        obj._finish_after_fork(me)
