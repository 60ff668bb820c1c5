"""rcfd.FD's own steps as model.history events, through its test seam.

rcfd/_fd.py documents two hooks for verification harnesses: `Holders` (the
array of borrowing threads an FD gets at init) and `CloseRecord` (the Closing
of close, aclose, detach and the finalizer). `installed(seam)` replaces both
for a block, so every FD initialized in it logs to `seam.history`: each borrow
counted (hold: insert, append, or the closer's own `+=`) and given back
(unhold: remove, or a tombstone once frozen), named by the borrowing thread (a
refused insert raises before it logs); init's holders; the freeze ("not
frozen" if its export does not refuse an insert); the finish. Each change and
its line are one step under `history.lock`, so a line's count is exact. The
FD's code is untouched: the subclasses' changes go through their base classes.

`seam.pause(where)` is called where a harness may preempt the calling thread,
or raise an interrupt there: "before-insert" (a borrow's entry; on the no-GIL
path inside the FD's lock), "before-lock" (a release after the freeze, as
Closing.release starts), "before-decide" (no-GIL only: a release past its
recorded tombstone, as `_nogil._decide` starts) and "in-lock" (a locked step
counting the caller's borrows, where CPython may run the collector).

On the no-GIL path no C call on the holders is atomic, so a change of the
holders, tombstones or freeze by another thread while one is inside an insert
(between "before-insert" and its effect) is a race the FD's lock must
prevent, logged as an anomaly.
"""

from __future__ import annotations

import contextlib
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

from model.history import History
from rcfd import _fd, _nogil
from rcfd._closing import Closing

if TYPE_CHECKING:
    from rcfd._fd import FD

    _Array = array[int]
else:
    _Array = array  # subscripting array at run time needs Python 3.12


class Seam:
    """Where the logging holders and close records report."""

    def __init__(self, history: History, pause: Callable[[str], None] | None = None) -> None:
        self.history = history
        self.pause: Callable[[str], None] = pause or (lambda where: None)
        self.made = 0  # holders made (one per init past its check)
        # No-GIL path: thread -> the holders it is inserting into, and whether
        # a race with it was logged; threads whose next test of the freeze is
        # their decision ("before-decide").
        self.inserting: dict[int, tuple[array[int], bool]] = {}
        self.tombstoned: set[int] = set()

    def changes(self, what: str) -> None:
        """The calling thread changes the holders, tombstones or freeze (`what`):
        on the no-GIL path none other may be inside an insert. Under history.lock."""
        me = threading.get_ident()
        for tid, (holders, logged) in list(self.inserting.items()):
            if tid != me and not logged:
                self.inserting[tid] = (holders, True)
                self.history.log(
                    "anomaly",
                    f"{what} while {self.history.who(tid)}'s insert into the holders was "
                    "under way: on the no-GIL path the FD's lock must order them (without "
                    "a GIL the insert can count a borrow after a close froze the holders "
                    "and counted zero: guarantees 1, 2)",
                )


_current = Seam(History())  # replaced by installed(); a default, so the classes never see None


@contextlib.contextmanager
def installed(seam: Seam) -> Iterator[Seam]:
    """Every FD initialized and closed in the block logs to `seam`."""
    global _current
    saved = _fd.Holders, _fd.CloseRecord, _current
    _fd.Holders, _fd.CloseRecord, _current = LoggedHolders, LoggedClosing, seam
    try:
        yield seam
    finally:
        _fd.Holders, _fd.CloseRecord, _current = saved


def is_frozen(holders: array[int]) -> bool:
    """Whether `holders` refuses to grow (a close froze it): tried with the
    base append, which logs nothing, and undone at once."""
    try:
        array.append(holders, 0)
    except BufferError:
        return True
    array.pop(holders)
    return False


class LoggedHolders(_Array):
    """The holders of an FD made under the seam (rcfd._fd.Holders)."""

    def __new__(cls) -> LoggedHolders:
        # array takes its typecode in __new__; this is init's Holders() call.
        holders = cast(LoggedHolders, super().__new__(cls, "L"))
        _current.made += 1
        _current.history.log("holders", f"#{_current.made}: an init got past its check")
        return holders

    def insert(self, index: int, tid: int, /) -> None:
        seam, me = _current, threading.get_ident()
        if _nogil.ENABLED:
            seam.inserting[me] = (self, False)  # inside the insert until its effect
        try:
            seam.pause("before-insert")
            with seam.history.lock:
                seam.changes("inserted into the holders")
                super().insert(index, tid)  # BufferError once frozen: a refused borrow logs nothing
                seam.history.log("hold", "insert", seam.history.who(tid))
        finally:
            seam.inserting.pop(me, None)

    def append(self, tid: int, /) -> None:
        with _current.history.lock:
            _current.changes("appended to the holders")
            super().append(tid)
            _current.history.log("hold", "append", _current.history.who(tid))

    def remove(self, tid: int, /) -> None:
        with _current.history.lock:
            _current.changes("removed from the holders")
            super().remove(tid)  # BufferError once frozen: the release writes a tombstone
            _current.history.log("unhold", "remove", _current.history.who(tid))


def _holders_iadd(self: LoggedHolders, tids: Iterable[int], /) -> LoggedHolders:
    """`holders += mine`: the closer's own borrow, while its on_closing runs."""
    added = list(tids)  # before the resize: `holders += holders` logs each once
    with _current.history.lock:
        _current.changes("added the closer's borrow to the holders")
        array.extend(self, added)
        for tid in added:
            _current.history.log("hold", "owner", _current.history.who(tid))
    return self


class _Tombstones(list[int]):
    """Closing.released: one thread ident per release after the freeze."""

    def count(self, tid: int, /) -> int:
        _current.pause("in-lock")  # FD._borrows_of: a locked step counts the caller's borrows
        return super().count(tid)


class _Freeze(list[memoryview]):
    """Closing.freeze: the export that freezes the holders, stored in one C
    call (extend) that is the FD's move to CLOSING, logged with it."""

    def extend(self, views: Iterable[memoryview], /) -> None:
        with _current.history.lock:
            _current.changes("froze the holders")
            super().extend(views)
            if self:
                _current.history.log("freeze", "" if _exports_frozen(self[0]) else "not frozen")

    def append(self, view: memoryview, /) -> None:
        self.extend((view,))

    def __bool__(self) -> bool:
        # "Is the FD frozen?": on the no-GIL path, a release asks it first thing
        # in its decision; a thread whose tombstone is recorded asks it nowhere
        # before that (its own log line asks it under the history's lock, before
        # the tombstone counts as recorded).
        seam = _current
        if seam.tombstoned:
            me = threading.get_ident()
            if me in seam.tombstoned:
                seam.tombstoned.discard(me)
                seam.pause("before-decide")
        return len(self) > 0


def _exports_frozen(view: memoryview) -> bool:
    try:
        exported = view.obj
    except ValueError:  # the export was released: nothing keeps the holders frozen
        return False
    return isinstance(exported, array) and is_frozen(exported)


def _tombstones_iadd(self: _Tombstones, tids: Iterable[int], /) -> _Tombstones:
    with _current.history.lock:
        _current.changes("wrote a tombstone")
        for tid in tids:
            list.append(self, tid)
            _current.history.log("unhold", "tombstone", _current.history.who(tid))
    if _nogil.ENABLED:
        _current.tombstoned.add(threading.get_ident())  # its decision comes next
    return self


# Set after the class bodies: the base classes' __iadd__ signatures differ
# from these (array's takes an array, list's returns a list), which mypy
# would reject as overrides; at run time each needs one that logs.
setattr(LoggedHolders, "__iadd__", _holders_iadd)  # noqa: B010
setattr(_Tombstones, "__iadd__", _tombstones_iadd)  # noqa: B010


class LoggedClosing(Closing):
    """The close record of an FD under the seam (rcfd._fd.CloseRecord)."""

    def __init__(self, detach: bool, owner_waker: Callable[[], None] | None) -> None:
        super().__init__(detach, owner_waker)
        self.released = _Tombstones()
        self.freeze = _Freeze()

    def _finish(self, fd: FD) -> None:
        super()._finish(fd)
        _current.history.log("finish", self.how or "")

    def release(self, fd: FD) -> None:
        _current.pause("before-lock")
        super().release(fd)
