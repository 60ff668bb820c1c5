"""fork(): every FD the child inherits is usable in the child.

os.fork() copies the whole address space but only the calling thread. In the
child, an FD may have been copied in a state no child thread can ever change:
its lock held by a thread that was inside a locked section at the fork, or
borrows counted for threads that do not exist there (a close() in the child
would wait for them forever). The at-fork hook below repairs both, in the
child only, right after the fork (specs/rcfd.md, "Fork"):

  * every FD drops its lock (the next transition makes a fresh one), the
    shared lock (UNINIT transitions, making FD locks) is fresh, and so is
    every registry's;
  * borrows held by threads other than the forking one are dropped: in the
    child those borrows will never end, and their numbers are not in use;
    a Borrow such a thread had entered is marked dropped (its thread ident
    becomes 0), because a generator suspended inside `with fd.borrow()` can
    still be resumed in the child, and its exit must then release nothing
    (not a borrow of a child thread that got the vanished thread's ident);
  * a close cut inside its locked section is settled: begun if it had frozen
    the holders (CLOSING), never begun if not;
  * an FD that was CLOSING is finished as the close would have been: if no
    borrow is left and close_func had not been called, the child calls it
    now; if it had been called by a thread that is gone, the child marks the
    FD CLOSED without calling it again (never closed twice, possibly left
    open in the child); the thread that began the close is gone too, so a
    detach becomes a close and an error of close_func is warned.

Finding the FDs costs nothing per FD and nothing on the borrow path: the hook
walks gc.get_objects() once per fork, in the child. A registry of live FDs
would cost a weakref slot plus a WeakSet entry, about 200 bytes per open FD
(measured: 248 -> 449 bytes), which doubles an FD's size. The walk misses
FDs that gc.freeze() moved to the permanent generation, which
gc.get_objects() does not list; a program that freezes before forking must
not fork while another thread holds a borrow or closes such an FD.
"""

from __future__ import annotations

import gc
import os
import threading
from array import array
from collections import Counter

_installed = False


def install() -> None:
    """Register the child hook once (rcfd._fd calls this at import)."""
    global _installed
    if not _installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _installed = True


def _after_fork_in_child() -> None:
    # Imported here: rcfd._fd imports this module, and the hook runs long
    # after both are loaded.
    from rcfd import _fd
    from rcfd._fd import FD, Borrow
    from rcfd._lifecycle import State
    from rcfd._registry import LifetimeRegistry

    me = threading.get_ident()  # the forking thread keeps its ident in the child
    closing: list[FD] = []
    _fd._SHARED_LOCK = threading.RLock()
    for obj in gc.get_objects():
        if isinstance(obj, FD):
            obj._lock = None
            _settle_cut_close(obj)
            _drop_vanished_borrows(obj, me)
            if obj._state is State.CLOSING:
                closing.append(obj)
        elif isinstance(obj, LifetimeRegistry):
            obj._lock = threading.Lock()
        elif isinstance(obj, Borrow) and getattr(obj, "_tid", me) != me:
            obj._tid = 0  # entered by a thread that is gone: its exit releases nothing
    # Locks are all fresh before any close runs (close_func may use other FDs).
    for fd in closing:
        _finish_inherited_close(fd)


def _settle_cut_close(fd: object) -> None:
    """A close whose locked section the fork cut (its thread is gone): the
    freeze is where CLOSING begins, so a close that froze the holders began
    (write the CLOSING it had not yet written), and one that had not never did
    (detach its closer). Either way the FD keeps the module's invariant."""
    from rcfd._fd import FD
    from rcfd._lifecycle import State

    assert isinstance(fd, FD)
    closer = fd._closer
    if closer is None or fd._state is not State.OPEN:
        return
    if closer.freeze:
        fd._state = State.CLOSING
    else:
        fd._closer = None


def _drop_vanished_borrows(fd: object, me: int) -> None:
    """Forget the borrows of every thread but `me` (they do not exist here)."""
    from rcfd._fd import FD

    assert isinstance(fd, FD)
    holders = fd._holders
    closer = fd._closer
    if closer is None or not closer.freeze:
        # OPEN (or UNINIT, whose shared holders are empty): remove in place, as
        # a borrow running in this thread holds this very array.
        if any(tid != me for tid in holders):
            holders[:] = array("L", [tid for tid in holders if tid == me])
        return
    # Frozen: a release is a tombstone, so drop the others' borrows that way.
    running = Counter(holders)
    running.subtract(closer.released)
    for tid, count in running.items():
        if tid != me and count > 0:
            closer.released += [tid] * count


def _finish_inherited_close(fd: object) -> None:
    from rcfd._fd import FD

    assert isinstance(fd, FD)
    closer = fd._closer
    if closer is None or closer.done:
        return
    # The thread that began the close is not in the child (a thread waiting in
    # close() cannot be the one that forks): nobody takes a detached number,
    # and nobody receives close_func's error.
    closer.owner_waiting = False
    if fd.borrow_count:
        return  # the forking thread's own borrow; its release closes the FD
    # Whoever claimed the close is gone (or nobody had): this thread finishes
    # it. _run_close calls close_func only if it had not been called (closer.how
    # is set before the call), so a number is never closed twice.
    closer.claimed = True
    closer.runner = threading.get_ident()
    fd._run_close()
