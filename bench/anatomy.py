"""What do()'s 1.3x-the-floor target leaves room for: the GIL path's borrow
with its parts taken away one at a time, timed next to the floor.

None of these is a correct borrow; each is FD.do's body (rcfd/_fd.py) less
one part, to show what that part costs:

- Ident: the borrow as it is (the thread's ident inserted and removed).
- NoIdent: a constant 0 instead of `get_ident()`. The ident is what lets a
  close from inside the caller's own borrow be refused (guarantee 6) and a
  forked child keep only its own thread's borrows.
- NoIdentNoCheck: and without the check that refuses a coroutine returned
  by fn (which would run after the borrow ended, on a number that may be
  closed).

The three are written out in full on purpose: a helper shared between them
would add a call to each, and calls are what is being measured.

If NoIdent alone is above 1.3x the floor, no borrow that keeps the coroutine
check can meet the target on that Python, whatever replaces the ident.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable
from types import CoroutineType

_get_ident = threading.get_ident


class Ident:
    """do() as it is: ident, insert, fn, remove, the coroutine check."""

    __slots__ = ("_holders", "_rawfd")

    def __init__(self, rawfd: int) -> None:
        self._holders = array("L")
        self._rawfd = rawfd

    def do(self, fn: Callable[[int], object], /) -> object:
        tid = _get_ident()
        holders = self._holders
        try:
            holders.insert(0, tid)
        except BufferError:
            raise
        try:
            result = fn(self._rawfd)
        finally:
            try:  # noqa: SIM105 - do()'s own form: its cost is what is measured
                holders.remove(tid)
            except BufferError:
                pass
        if type(result) is CoroutineType:
            raise TypeError("coroutine")
        return result


class NoIdent(Ident):
    """do() with a constant in place of the thread's ident."""

    __slots__ = ()

    def do(self, fn: Callable[[int], object], /) -> object:
        holders = self._holders
        try:
            holders.insert(0, 0)
        except BufferError:
            raise
        try:
            result = fn(self._rawfd)
        finally:
            try:  # noqa: SIM105 - do()'s own form: its cost is what is measured
                holders.remove(0)
            except BufferError:
                pass
        if type(result) is CoroutineType:
            raise TypeError("coroutine")
        return result


class NoIdentNoCheck(Ident):
    """do() with neither the ident nor the coroutine check."""

    __slots__ = ()

    def do(self, fn: Callable[[int], object], /) -> object:
        holders = self._holders
        try:
            holders.insert(0, 0)
        except BufferError:
            raise
        try:
            return fn(self._rawfd)
        finally:
            try:  # noqa: SIM105 - do()'s own form: its cost is what is measured
                holders.remove(0)
            except BufferError:
                pass


PARTS: dict[str, type[Ident]] = {
    "as is": Ident,
    "no ident": NoIdent,
    "no ident, no coroutine check": NoIdentNoCheck,
}
