"""The one checker of what a real FD did (model.guarantees over a
model.history.History), on hand-written histories: each check reports the
bug it exists for, and passes a history that keeps the guarantees. Then the
test seam (conformance.drivers.rcfd_seam) on the real FD: each step logged
once, a refused change not at all, the freeze and the finish in place.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections.abc import Callable

import pytest

import rcfd
from conformance.drivers import rcfd_seam
from model.guarantees import history_violations
from model.history import Event, History
from rcfd import _nogil

OPEN, CLOSING, CLOSED, UNINIT = "OPEN", "CLOSING", "CLOSED", "UNINIT"
E = Event
INIT = [E("main", "call", "init(rawfd=7)", UNINIT, 0), E("main", "holders", "#1", UNINIT, 0)]
INIT.append(E("main", "return", "ok", OPEN, 0))
CLOSE = [E("c", "call", "close(none)", OPEN, 0), E("c", "freeze", "", CLOSING, 0)]
CLOSE_FUNC = [E("c", "close_func", "rawfd=7", CLOSING, 0), E("c", "close_func_end", "", CLOSING, 0)]
FINISH = [E("c", "finish", "closed", CLOSED, 0), E("c", "return", "ok", CLOSED, 0)]
CLEAN = INIT + CLOSE + CLOSE_FUNC + FINISH
RELEASE = "initialized=1 detached=0 finalized=0"


def seq(*parts: Event | list[Event]) -> list[Event]:
    """The events of `parts` in order (an event, or a list of them)."""
    return [e for part in parts for e in ([part] if isinstance(part, Event) else part)]


def borrow(who: str, state: str = OPEN, result: str = "ok:fn") -> list[Event]:
    """A whole borrow by `who`, counted in `state` (left at 0 borrows)."""
    return [
        E(who, "call", "begin_borrow(do)", state, 0),
        E(who, "hold", "insert", state, 1),
        E(who, "fn", "rawfd=7", state, 1),
        E(who, "fn_end", "", state, 1),
        E(who, "unhold", "remove", state, 0),
        E(who, "return", result, state, 0),
    ]


def check(events: list[Event], end: str = "ended", seam: bool = True) -> list[str]:
    history = History(seam=seam)
    history.events = events
    return history_violations(history, end)


def test_a_clean_close_and_a_borrow_pass() -> None:
    assert check(seq(INIT, borrow("b"), CLOSE, CLOSE_FUNC, FINISH)) == []


CASES: dict[str, tuple[list[Event], str]] = {
    "close_func under a borrow": (
        seq(INIT, borrow("b")[:3], CLOSE, E("c", "close_func", "rawfd=7", CLOSING, 1)),
        "close_func called while borrows run",
    ),
    "a borrow taken after the close began": (
        seq(INIT, CLOSE, E("b", "hold", "insert", CLOSING, 1), E("b", "fn", "rawfd=7", CLOSING, 1)),
        "fn runs under a borrow taken in CLOSING",
    ),
    "a second close_func": (
        seq(CLEAN, E("d", "close_func", "rawfd=7", CLOSED, 0)),
        "close_func called a second time, by d",
    ),
    "a refused borrow that ran close_func": (
        seq(INIT, CLOSE, E("b", "call", "begin_borrow(do)", CLOSING, 0))
        + seq(E("b", "close_func", "rawfd=7"), E("b", "close_func_end"))
        + seq(E("b", "return", "err:ClosedFD", CLOSING, 0)),
        "was refused (err:ClosedFD), yet changed the FD: #",
    ),
    "two owners": (
        seq(CLEAN, E("d", "freeze", "", CLOSED, 0)),
        "a second close began (two owners)",
    ),
    "CLOSING without a freeze": (
        seq(INIT, E("c", "call", "close(none)", CLOSING, 0)),
        "CLOSING before any close froze the holders",
    ),
    "a freeze that does not freeze": (
        seq(INIT, E("c", "freeze", "not frozen", CLOSING, 0)),
        "did not freeze the holders: borrows are not refused",
    ),
    "a count the log does not explain": (
        seq(INIT, E("b", "hold", "insert", OPEN, 2)),
        "borrow_count=2, but the log has 1 borrow(s) held",
    ),
    "a borrow that returns still counted": (
        seq(INIT, [e for e in borrow("b") if e.what != "unhold"]),
        "returned with 1 borrow(s) it took still counted",
    ),
    "a release of nothing": (
        seq(INIT, E("b", "unhold", "tombstone")),
        "released a borrow it did not hold",
    ),
    "an undocumented exception": (
        seq(
            E("c", "call", "close(none)", UNINIT, 0), E("c", "return", "err:unexpected BufferError")
        ),
        "ended with err:unexpected BufferError: only the errors",
    ),
    "a refused close that changed the FD": (
        seq(E("c", "call", "close(none)", UNINIT, 0), E("c", "hold", "owner", UNINIT, 1))
        + seq(E("c", "unhold", "tombstone", UNINIT, 0), E("c", "return", "err:UninitializedFD")),
        "a refused call changes nothing",
    ),
    "a refusal as UNINIT of an OPEN FD": (
        seq(INIT, E("b", "call", "begin_borrow(do)", OPEN, 0))
        + seq(E("b", "return", "err:UninitializedFD")),
        "was refused as UNINIT, yet the FD was OPEN",
    ),
    "a borrow taken before init published": (
        seq(E("b", "hold", "insert", UNINIT, 1), E("b", "fn", "rawfd=7", UNINIT, 1)),
        "fn runs under a borrow taken in UNINIT",
    ),
    "two inits that succeed": (
        seq(INIT, E("i", "call", "init(rawfd=8)", OPEN, 0), E("i", "holders", "#2", OPEN, 0))
        + seq(E("i", "return", "ok", OPEN, 0)),
        "succeeded too: at most one init does",
    ),
    "an init past its check": (
        seq(INIT, E("i", "holders", "#2", OPEN, 0)),
        "a second init got past",
    ),
    "init accepted on an OPEN FD": (
        seq(INIT, E("i", "call", "init(rawfd=8)", OPEN, 0), E("i", "return", "ok", OPEN, 0)),
        "succeeded on a OPEN FD: only UNINIT accepts it",
    ),
    "a track accepted after init": (
        seq(INIT, E("t", "call", "track_lifetime()", OPEN, 0), E("t", "return", "ok", OPEN, 0)),
        "succeeded on a OPEN FD: only UNINIT accepts it",
    ),
    "close_func on a number init did not open": (
        seq(INIT, CLOSE, E("c", "close_func", "rawfd=8", CLOSING, 0)),
        "close_func got rawfd=8, but init opened rawfd=7",
    ),
    "close_func of an init that did not open the FD": (
        seq(INIT, CLOSE, E("c", "close_func", "rawfd=7 by i2's", CLOSING, 0)),
        "but main's init opened the FD: only its close_func closes it",
    ),
    "no init that succeeds": (
        seq(E("i", "call", "init(rawfd=7)", UNINIT, 0), E("i", "return", "err:MultipleInit")),
        "no init succeeded",
    ),
    "a fn given a number init did not open": (
        seq(INIT, E("b", "hold", "insert", OPEN, 1), E("b", "fn", "rawfd=-1", OPEN, 1)),
        "fn got rawfd=-1, but init opened 7",
    ),
    "a fn after close_func began": (
        seq(INIT, CLOSE, CLOSE_FUNC, E("b", "fn", "rawfd=7")),
        "fn runs after close_func started",
    ),
    "a closer that returns while close_func runs": (
        seq(INIT, CLOSE, CLOSE_FUNC[:1], E("d", "call", "close(none)"))
        + seq(E("d", "return", "err:ClosedFD")),
        "returned err:ClosedFD while close_func still runs",
    ),
    "a second closer that returns ok": (
        seq(INIT, CLOSE, E("d", "call", "close(none)"), CLOSE_FUNC, FINISH)
        + seq(E("d", "return", "ok", CLOSED, 0)),
        "but c's close(none) (#3) began the close: it must wait",
    ),
    "a close that returns before the close finished": (
        seq(INIT, CLOSE, CLOSE_FUNC, E("c", "return", "ok", CLOSED, 0)),
        "returned ok, but the close never finished",
    ),
    "the owner does not get close_func's error": (
        seq(INIT, CLOSE, CLOSE_FUNC[:1], E("c", "close_func_end", "raised err:CloseFuncError"))
        + seq(FINISH),
        "began the close, so it must return err:CloseFuncError",
    ),
    "close_func's error got by nobody": (
        seq(INIT, CLOSE, CLOSE_FUNC[:1], E("c", "close_func_end", "raised err:CloseFuncError"))
        + seq(FINISH),
        "exactly one must get each",
    ),
    "a close inside a borrow not refused": (
        seq(INIT, borrow("b")[:3], E("b", "call", "close(1.0)", OPEN, 1))
        + seq(E("b", "return", "err:Timeout", OPEN, 1)),
        "holds a borrow, yet ended err:Timeout",
    ),
    "a close refused as inside a borrow it does not hold": (
        seq(
            INIT, E("c", "call", "close(none)", OPEN, 0), E("c", "return", "err:CloseInsideBorrow")
        ),
        "was refused as inside a borrow, but holds none",
    ),
    "a close from inside close_func that waits": (
        seq(INIT, CLOSE, CLOSE_FUNC[:1], E("c", "call", "close(none)", CLOSING, 0)),
        "from inside close_func ended never, not err:CloseInsideCloseFunc at once",
    ),
    "a borrow from inside on_closing that is let in": (
        seq(INIT, E("c", "call", "close(none)", OPEN, 0), E("c", "hold", "owner", OPEN, 1))
        + seq(E("c", "freeze", "", CLOSING, 1), E("c", "on_closing", "rawfd=7", CLOSING, 1))
        + seq(E("c", "call", "begin_borrow(do)", CLOSING, 1), E("c", "return", "ok:fn")),
        "from inside on_closing ended ok:fn, not err:ClosedFD",
    ),
    "on_closing without the closer's borrow": (
        seq(INIT, CLOSE, E("c", "on_closing", "rawfd=7", CLOSING, 0)),
        "it runs in CLOSING, under the closer's borrow",
    ),
    "a timeout with no borrow running": (
        seq(INIT, E("c", "call", "close(0.0)", OPEN, 0), E("c", "freeze", "", CLOSING, 0))
        + seq(E("c", "return", "err:Timeout", CLOSING, 0)),
        "timed out, yet no borrow ran when it began waiting",
    ),
    "a timeout that strikes while close_func runs": (
        seq(INIT, E("c", "call", "close(2.0)", OPEN, 0, at=10.0))
        + seq(
            E("b", "close_func", "rawfd=7", CLOSING, 0, at=11.0), E("c", "return", "err:Timeout")
        ),
        "close_func began before its deadline",
    ),
    "a dropped OPEN FD never closed": (
        seq(INIT, E("main", "drop", "OPEN", "GONE")),
        "dropped OPEN, and its finalizer never closed it",
    ),
    "a finalizer's close without a warning": (
        seq(INIT, E("main", "drop", "OPEN"), CLOSE_FUNC),
        "without a ResourceWarning",
    ),
    "a warning for a closed FD": (
        seq(CLEAN, E("main", "drop", "CLOSED"), E("gc", "warning", "ResourceWarning: unclosed")),
        "a ResourceWarning for an FD dropped CLOSED",
    ),
    "a finalizer that warned and did not close": (
        seq(INIT, E("f", "call", "finalizer()", OPEN, 0), E("f", "warning", "ResourceWarning: x"))
        + seq(E("f", "return", "ok", OPEN, 0)),
        "warned, yet returned with no close begun",
    ),
    "a registry that counts a failed close as closed": (
        seq(INIT, CLOSE, CLOSE_FUNC[:1], E("c", "close_func_end", "raised err:CloseFuncError"))
        + seq(E("c", "finish", "", CLOSED, 0), E("c", "return", "err:CloseFuncError", CLOSED, 0))
        + seq(E("main", "registry", f"main: {RELEASE} closed=1 close_failed=0 stack=yes")),
        "the FD's release is close_failed",
    ),
    "a registry without the init stack": (
        seq(CLEAN, E("main", "registry", f"main: {RELEASE} closed=1 close_failed=0 stack=no")),
        "each with its stack",
    ),
    "a refused track that redirected the release": (
        seq(CLEAN, E("main", "registry", "other: initialized=0 closed=1")),
        "registry other (refused) counted",
    ),
    "a driver's anomaly": (seq(INIT, E("T1", "anomaly", "close_func ran twice")), "close_func ran"),
    "a close that never returns": (
        seq(INIT, E("c", "call", "close(none)", OPEN, 0)),
        "never returned",
    ),
    "a close begun and never finished": (seq(INIT, CLOSE), "a close began and every borrow ended"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_check_reports_its_bug(case: str) -> None:
    events, message = CASES[case]
    problems = check(events)
    assert any(message in p for p in problems), "\n".join(problems)


def test_a_stuck_run_is_checked_as_far_as_it_got() -> None:
    lost = seq(INIT, E("b", "hold", "insert", OPEN, 1), CLOSE[1:])
    lost += [E("b", "unhold", "tombstone", CLOSING, 0)]
    assert any("lost wake-up" in p for p in check(lost, "stuck"))
    assert not any("lost wake-up" in p for p in check(lost, "ended"))
    waiting = seq(INIT, E("c", "call", "close(none)", OPEN, 0))
    assert any("no close began" in p for p in check(waiting, "stuck"))
    assert not any("never returned" in p for p in check(waiting, "running"))


def test_a_borrow_taken_back_unused_is_no_borrow() -> None:
    # An interrupt as a borrow's insert returned: counted, then given back.
    taken_back = seq(INIT, CLOSE, E("b", "hold", "insert", CLOSING, 1))
    taken_back += seq(E("b", "unhold", "tombstone", CLOSING, 0), CLOSE_FUNC, FINISH)
    assert not any("guarantee 2" in p or "OPEN FD lends" in p for p in check(taken_back))


def test_without_the_seam_the_order_of_calls_is_still_checked() -> None:
    # model vs production: calls, fns and callbacks only; nothing observed.
    unobserved = [E(e.who, e.what, e.detail) for e in CLEAN if e.what not in ("freeze", "finish")]
    assert check(unobserved, seam=False) == []
    second = [E("d", "call", "close(none)"), E("d", "return", "err:ClosedFD")]
    early = [*unobserved[:5], *second, *unobserved[5:]]  # inside close_func
    assert any("while close_func still runs" in p for p in check(early, seam=False))
    earlier = [*unobserved[:4], *second, *unobserved[4:]]  # before it
    assert any("the close never finished" in p for p in check(earlier, seam=False))


# -- the seam: rcfd's steps, logged once each ---------------------------------


def test_the_holders_log_each_change_and_keep_the_freeze() -> None:
    history = History(seam=True)
    history.names[threading.get_ident()] = "t"
    with rcfd_seam.installed(rcfd_seam.Seam(history)):
        holders = rcfd_seam.LoggedHolders()
        holders.insert(0, threading.get_ident())
        holders.append(threading.get_ident())
        holders += array("L", (threading.get_ident(),))
        holders.remove(threading.get_ident())  # two left
        assert not rcfd_seam.is_frozen(holders)
        freeze = memoryview(holders)
        assert rcfd_seam.is_frozen(holders)
        me = threading.get_ident()
        changes: list[Callable[[], None]] = [
            lambda: holders.insert(0, me),
            lambda: holders.remove(me),
        ]
        for change in changes:
            with pytest.raises(BufferError):
                change()
        freeze.release()
    assert [(e.who, e.what, e.detail) for e in history.events] == [
        ("t", "holders", "#1: an init got past its check"),
        ("t", "hold", "insert"),
        ("t", "hold", "append"),
        ("t", "hold", "owner"),
        ("t", "unhold", "remove"),
    ]  # the refused changes logged nothing


def test_the_seam_logs_a_real_fds_life_with_its_counts() -> None:
    # The same events on both borrow paths (the no-GIL path records its
    # tombstone with `released += (tid,)` as the GIL path does, inside the
    # C call that takes it: done.extend(map(released.__iadd__, ...))); the
    # pause points differ: only the no-GIL path has one between a release's
    # recorded tombstone and its decision (before-decide).
    history = History(seam=True, on_closing=True)
    history.names[threading.get_ident()] = "t"
    box: list[rcfd.FD] = []
    history.observe = lambda: (box[0].state.name, box[0].borrow_count) if box else ("", -1)
    raw = os.eventfd(0)
    points: list[str] = []
    with rcfd_seam.installed(rcfd_seam.Seam(history, points.append)):
        box.append(rcfd.FD())
        box[0].init(raw, lambda n: os.close(n), on_closing=lambda n: None)
        box[0].do(lambda n: n)
        box[0].close()
    decide = ["before-decide"] if _nogil.ENABLED else []
    assert points == ["before-insert", *decide, "before-lock"]
    got = [(e.what, e.detail, e.state, e.borrows) for e in history.events]
    assert got == [
        ("holders", "#1: an init got past its check", UNINIT, 0),
        ("hold", "insert", OPEN, 1),
        ("unhold", "remove", OPEN, 0),
        ("hold", "owner", OPEN, 1),  # the closer's own borrow, for on_closing
        ("freeze", "", CLOSING, 1),
        ("unhold", "tombstone", CLOSING, 0),  # its release, after the freeze
        ("finish", "closed", CLOSED, 0),
    ]
    assert rcfd.FD.__init__ is not None and rcfd._fd.Holders is not rcfd_seam.LoggedHolders


@pytest.mark.parametrize("nogil", [False, True], ids=["gil", "nogil"])
def test_on_the_no_gil_path_the_seam_reports_a_change_during_an_insert(
    nogil: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a GIL an insert is not one step: another thread's change of the
    # holders (or the freeze) while one thread is inside its insert is the race
    # the FD's lock must prevent. Only the seam reads the switch here (no FD).
    monkeypatch.setattr(_nogil, "ENABLED", nogil)
    history = History(seam=True)
    inside, go_on = threading.Event(), threading.Event()

    def pause(where: str) -> None:
        if where == "before-insert" and threading.current_thread() is not threading.main_thread():
            inside.set()
            assert go_on.wait(10), "the test never let the insert go on"

    with rcfd_seam.installed(rcfd_seam.Seam(history, pause)):
        holders = rcfd_seam.LoggedHolders()
        inserter = threading.Thread(target=holders.insert, args=(0, 1), name="inserter")
        inserter.start()
        try:
            assert inside.wait(10)
            history.names[inserter.ident or 0] = "ins"
            holders.append(2)  # by the main thread, while "ins" is inside its insert
            holders.remove(2)
        finally:
            go_on.set()
            inserter.join(10)
        holders.append(3)  # the insert is over: no race
    anomalies = [e.detail for e in history.events if e.what == "anomaly"]
    if not nogil:
        assert anomalies == []  # the GIL path's insert is one C call
    else:
        assert len(anomalies) == 1  # one per insert, however many changes overlap it
        assert anomalies[0].startswith("appended to the holders while ins's insert into the "
                                       "holders was under way: on the no-GIL path the FD's lock")
