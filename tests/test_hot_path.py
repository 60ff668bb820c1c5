"""The inlined borrow and release (FD.do, Borrow) agree with step() in every state.

do() and Borrow implement BORROW and RELEASE inline instead of calling
rcfd._lifecycle.step: the borrow is one insert that a close's freeze makes
fail, and the release is written out where a borrow ends, because a call
would add a check point where an interrupt leaves the borrow counted (the
Signals rule, specs/cpython.md). This drives the real FD into each state and
checks that what they do is what step() prescribes, and that the copies of
the release are the same text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import rcfd
from rcfd._errors import ClosedFDError, UninitializedFDError
from rcfd._lifecycle import Event, Outcome, step
from tests.support import WAIT, CountingClose, HeldBorrow, in_thread, open_fd, wait_until

REFUSAL_ERRORS = {Outcome.REFUSE_UNINIT: UninitializedFDError, Outcome.REFUSE_CLOSED: ClosedFDError}


@contextmanager
def fd_in(situation: str) -> Iterator[tuple[rcfd.FD, int]]:
    """An FD in `situation`, and how many of its borrows the test thread holds."""
    if situation == "UNINIT":
        yield rcfd.FD(), 0
        return
    fd, _ = open_fd()
    if situation == "OPEN":
        yield fd, 0
        fd.close()
    elif situation == "OPEN, borrowed by another thread":
        with HeldBorrow(fd):
            yield fd, 0
        fd.close()
    elif situation == "OPEN, borrowed by this thread":
        with fd.borrow():
            yield fd, 1
        fd.close()
    elif situation == "CLOSING":
        with HeldBorrow(fd):
            with pytest.raises(TimeoutError):
                fd.close(timeout=0)
            yield fd, 0
    elif situation == "CLOSED":
        fd.close()
        yield fd, 0


SITUATIONS = [
    "UNINIT",
    "OPEN",
    "OPEN, borrowed by another thread",
    "OPEN, borrowed by this thread",
    "CLOSING",
    "CLOSED",
]


def borrow_with_do(fd: rcfd.FD, fn: Callable[[int], None]) -> None:
    fd.do(fn)


def borrow_with_context(fd: rcfd.FD, fn: Callable[[int], None]) -> None:
    with fd.borrow() as rawfd:
        fn(rawfd)


@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("borrow", [borrow_with_do, borrow_with_context])
def test_inline_borrow_agrees_with_step(
    situation: str, borrow: Callable[[rcfd.FD, Callable[[int], None]], None]
) -> None:
    with fd_in(situation) as (fd, mine):
        state, count = fd.state, fd.borrow_count
        expected = step(state, count, mine, Event.BORROW)
        seen: list[tuple[rcfd.State, int]] = []
        try:
            borrow(fd, lambda rawfd: seen.append((fd.state, fd.borrow_count)))
        except rcfd.FDError as exc:
            assert expected.outcome in REFUSAL_ERRORS, f"{situation}: refused with {exc!r}"
            assert isinstance(exc, REFUSAL_ERRORS[expected.outcome])
            assert seen == [], "fn was called although the borrow was refused"
        else:
            assert expected.outcome is Outcome.OK, f"{situation}: borrow granted"
            assert seen == [(expected.state, expected.borrows)]
        assert (fd.state, fd.borrow_count) == (state, count)


@pytest.mark.parametrize("form", ["do", "borrow"])
@pytest.mark.parametrize("others", [0, 1])
def test_inline_release_in_closing_agrees_with_step(form: str, others: int) -> None:
    fd, closer = open_fd()
    held = [HeldBorrow(fd, form=form) for _ in range(1 + others)]
    with pytest.raises(TimeoutError):
        fd.close(timeout=0)
    count = fd.borrow_count
    expected = step(rcfd.State.CLOSING, count, 1, Event.RELEASE)
    held[0].end()
    assert fd.borrow_count == expected.borrows
    assert (len(closer.calls) == 1) == (expected.outcome is Outcome.RUN_CLOSE)
    for rest in held[1:]:
        rest.end()
    assert len(closer.calls) == 1


def test_release_in_open_never_closes() -> None:
    fd, closer = open_fd()
    with HeldBorrow(fd), HeldBorrow(fd, form="borrow"):
        pass
    assert step(rcfd.State.OPEN, 1, 1, Event.RELEASE).outcome is Outcome.OK
    assert closer.calls == [] and fd.state is rcfd.State.OPEN
    fd.close()


def test_the_last_release_in_closing_is_the_one_that_runs_close_func() -> None:
    ran_in: list[str] = []

    def close_func(rawfd: int) -> None:
        ran_in.append(threading.current_thread().name)
        os.close(rawfd)

    fd = rcfd.FD(os.eventfd(0), close_func)
    with HeldBorrow(fd) as borrow:
        _, closing = in_thread(lambda: fd.close(timeout=WAIT))
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() began")
    assert closing.done.wait(WAIT) and closing.error is None
    assert ran_in == [borrow.thread.name]


def test_the_finalizers_inline_check_agrees_with_step() -> None:
    """FD.__del__ acts only on an OPEN FD: step(s, n, 0, FINALIZE) is IGNORE
    for every other state and count, and never IGNORE for OPEN."""
    for state in rcfd.State:
        for borrows in range(4) if state in (rcfd.State.OPEN, rcfd.State.CLOSING) else [0]:
            outcome = step(state, borrows, 0, Event.FINALIZE).outcome
            assert (outcome is Outcome.IGNORE) == (state is not rcfd.State.OPEN), (state, borrows)
    for situation in ("UNINIT", "CLOSED"):
        fd = rcfd.FD()
        closer = CountingClose()
        if situation == "CLOSED":
            fd.init(os.eventfd(0), closer)
            fd.close()
        fd.__del__()  # by hand: nothing happens, nothing is closed again
        assert fd.state.name == situation and len(closer.calls) == (situation == "CLOSED")


def _release_copies() -> dict[str, list[str]]:
    """Each marked copy of the release (Signals rule: written out where a
    borrow ends, because a call would add a check point before its first
    line), keyed by its kind and name, dedented."""
    import inspect
    import re
    import textwrap

    from rcfd import _closing, _fd, _nogil

    marker = re.compile(
        r'# -- release \((inline|no-GIL) copy "(\w+)"; specs/cpython.md, "Signals"\) --'
    )
    copies: dict[str, list[str]] = {}
    for module in (_fd, _closing, _nogil):
        lines = inspect.getsource(module).splitlines()
        for i, line in enumerate(lines):
            found = marker.search(line)
            if found is None:
                continue
            end = next(j for j in range(i, len(lines)) if "# -- end release --" in lines[j])
            body = textwrap.dedent("\n".join(lines[i + 1 : end])).splitlines()
            copies[f"{found[1]} {found[2]}"] = body
    return copies


def test_the_inline_copies_of_the_release_are_identical() -> None:
    copies = _release_copies()
    gil = {name: body for name, body in copies.items() if name.startswith("inline")}
    nogil = {name: body for name, body in copies.items() if name.startswith("no-GIL")}
    assert sorted(gil) == ["inline Borrow", "inline _release", "inline do", "inline owner"]
    assert sorted(nogil) == ["no-GIL Borrow", "no-GIL do", "no-GIL owner"]
    for group in (gil, nogil):
        first, *rest = group.items()
        for name, body in rest:
            assert body == first[1], f"{name} differs from {first[0]}"
