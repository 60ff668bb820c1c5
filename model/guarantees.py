"""The guarantees of specs/rcfd.md, stated over the model's state and history,
and over what a real FD did (a model.history.History).

Each check returns the violations it finds (empty when the guarantee holds);
model.machine asserts them after every step, so a model that drifts from the
spec fails on its own before it is used to judge rcfd or to write traces.
The second half states the same guarantees over a History, the one checker
of every harness that runs the production FD (the interleavings, the
catalog's replays, model vs production, the trace replays).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

from model.history import Event, History
from model.lifecycle import FDModel, Phase
from model.vocabulary import (
    ERR_CLOSE_FUNC,
    ERR_CLOSE_IN_BORROW,
    ERR_CLOSE_IN_CLOSE_FUNC,
    ERR_CLOSED,
    ERR_FN_INTERRUPT,
    ERR_INVALID,
    ERR_MULTIPLE_INIT,
    ERR_ON_CLOSING,
    ERR_TIMEOUT,
    ERR_UNINIT,
    OK,
    OK_DUP,
    OK_FN,
    OK_RAWFD,
    REFUSALS,
    Callback,
)


def close_func_once_and_never_under_a_borrow(m: FDModel) -> list[str]:  # guarantee 1
    found = []
    if m.close_func_calls > 1:
        found.append(f"close_func ran {m.close_func_calls} times")
    found += [f"close_func ran under {n} borrow(s)" for n in m.borrows_at_close_func if n]
    return found


def no_borrow_after_close_began(m: FDModel) -> list[str]:  # guarantee 2
    n = m.borrows_begun_after_close
    return [f"{n} borrow(s) began after the close began"] if n else []


def borrows_released_however_fn_exits(m: FDModel) -> list[str]:  # guarantee 3
    # A borrow that returned (by value, exception or interrupt) is off every
    # stack, so it no longer counts.
    return [f"{call} returned but still counts" for call in m.running() if call.result is not None]


def closers_return_only_after_close_func(m: FDModel) -> list[str]:  # guarantees 4 and 5
    return [f"returned before CLOSED: {what}" for what in m.closers_returned_before_closed]


def refusals_change_nothing(m: FDModel) -> list[str]:  # guarantees 6 and 10
    return [f"a refusal changed the FD: {what}" for what in m.refusals_that_changed]


def calls_from_callbacks_return_at_once(m: FDModel) -> list[str]:  # guarantee 6
    # A callback's calls (a close from close_func, a borrow from on_closing)
    # return in the step that makes them: one that waited would wait for the
    # callback, that is for itself. So a paused callback is always on top.
    found = []
    for stack in m.stacks:
        for below, above in itertools.pairwise(stack):
            if isinstance(below, Callback):
                found.append(f"{above} waits inside {below}: it would wait for itself")
    return found


def on_closing_once_under_the_closers_borrow(m: FDModel) -> list[str]:  # ecosystem.md
    found = [f"on_closing ran {m.on_closing_calls} times"] if m.on_closing_calls > 1 else []
    found += [f"on_closing ran with {n} borrows" for n in m.borrows_at_on_closing if n < 1]
    return found


def failed_close_is_still_closed(m: FDModel) -> list[str]:  # guarantee 7
    results = [call.result for call in m.calls]
    if ERR_CLOSE_FUNC in results and m.phase is not Phase.CLOSED:
        return [f"close_func raised but the FD is {m.phase.value}"]
    # Its error reaches the closer that began the close, or, when nobody
    # waits (a timed-out closer, the finalizer), a RuntimeWarning; never both.
    received = results.count(ERR_CLOSE_FUNC) + m.runtime_warnings
    if received != m.close_func_raised:
        return [f"close_func raised {m.close_func_raised}x; {received} closer(s)/warning(s) saw it"]
    return []


def counts_match_the_state(m: FDModel) -> list[str]:  # guarantee 8 and the state table
    found = []
    n = m.borrows()
    # Every borrow that began and has not ended counts, wherever it is held
    # (a fn, a generator, the closer while on_closing runs), and only those.
    if n != m.table_count:
        found.append(f"{n} borrow(s) held, but the table's steps counted {m.table_count}")
    if m.phase in (Phase.UNINIT, Phase.CLOSED) and n:
        found.append(f"{n} borrow(s) in {m.phase.value}")
    # Between steps CLOSING lasts only while borrows run or close_func runs:
    # the last borrow to return closes the FD, also after its closer timed out.
    close_func_runs = any(c.kind == "close_func" for c in m.callbacks())
    if m.phase is Phase.CLOSING and not n and not close_func_runs:
        found.append("CLOSING with no borrow left to finish the close")
    waiting = [c for c in m.running() if c.command.call in ("close", "detach")]
    if waiting and m.phase is not Phase.CLOSING:
        found.append(f"{waiting[0]} waits in {m.phase.value}")
    # The timeout bounds the wait for borrows, never the wait for close_func.
    found += [f"{what} timed out with no borrow running" for what in m.timeouts_without_borrows]
    return found


def registry_adds_up(m: FDModel) -> list[str]:  # guarantee 9 and the registry section
    r = m.registry
    found = []
    released = r.closed + r.close_failed + r.detached + r.finalized
    if m.tracked and r.in_flight != r.initialized - released:
        found.append(f"registry in_flight={r.in_flight} but {r.initialized} init, {released} out")
    # The finalizer warns as it begins its close, and counts it as it ends.
    finalizing = m.finalizer_close and m.phase is Phase.CLOSING
    if m.tracked and r.finalized + finalizing != m.resource_warnings:
        found.append(f"{r.finalized} finalized but {m.resource_warnings} ResourceWarning(s)")
    copies = m.copies if m.tracked else 0  # dup's copies, each initialized and closed
    if r.initialized - copies > 1 or released - copies > 1:
        found.append(f"one FD and {copies} copies, yet the registry counts {r}")
    return found


def finalizer_closes_a_dropped_fd(m: FDModel) -> list[str]:  # guarantee 9
    # Once the collector is done (the drop returned), an FD it found OPEN is
    # closed, once, with one ResourceWarning, whatever held borrows of it;
    # any other FD got no warning.
    closed_once = m.phase is Phase.CLOSED and m.close_func_calls == 1
    if m.dropped_open and not m.dropping and not closed_once:
        return [f"dropped OPEN, but {m.phase.value} with close_func run {m.close_func_calls}x"]
    if m.resource_warnings != (1 if m.dropped_open else 0):
        return [f"{m.resource_warnings} ResourceWarning(s); dropped OPEN: {m.dropped_open}"]
    return []


CHECKS: tuple[Callable[[FDModel], list[str]], ...] = (
    close_func_once_and_never_under_a_borrow,
    no_borrow_after_close_began,
    borrows_released_however_fn_exits,
    closers_return_only_after_close_func,
    refusals_change_nothing,
    calls_from_callbacks_return_at_once,
    on_closing_once_under_the_closers_borrow,
    failed_close_is_still_closed,
    counts_match_the_state,
    registry_adds_up,
    finalizer_closes_a_dropped_fd,
)


def violations(m: FDModel) -> list[str]:
    """Every guarantee the model breaks right now; [] when it keeps them all."""
    return [v for check in CHECKS for v in check(m)]


# -- the same guarantees over what a real FD did (model.history) ---------------
#
# One check per guarantee over a Run: the History parsed into its calls, fns
# and callbacks (Frames, nested per thread as they ran) and its borrows (Holds,
# when rcfd's seam logged them). A check reads only the order of events, each
# logged after (hold, fn, close_func) or before (call) the effect it names, so
# it is sound under any timing. Each message starts with the event it points
# at ("at #12"): a failure reads as a counterexample against the timeline.

CLOSES, BORROWS = ("close", "detach"), ("begin_borrow", "hold_borrow", "dup")
CHANGES = ("hold", "unhold", "holders", "freeze", "finish", "close_func", "on_closing")
ORDER = ("UNINIT", "OPEN", "CLOSING", "CLOSED")
_REFUSED = frozenset({ERR_CLOSED, ERR_UNINIT, ERR_INVALID})
_INSIDE = frozenset({ERR_CLOSE_IN_BORROW, ERR_CLOSE_IN_CLOSE_FUNC})
# What each call may end with (specs/rcfd.md, Errors); fn's, close_func's and
# on_closing's own exceptions come on top, for the calls that propagate them.
RESULTS: dict[str, frozenset[str]] = {
    "begin_borrow": _REFUSED | {OK_FN},
    "hold_borrow": _REFUSED | {OK},
    "dup": _REFUSED | {OK_DUP},
    "close": _REFUSED | _INSIDE | {OK, ERR_TIMEOUT},
    "detach": _REFUSED | _INSIDE | {OK_RAWFD},
    "init": frozenset({OK, ERR_MULTIPLE_INIT, ERR_CLOSED, ERR_INVALID}),
    "track_lifetime": frozenset({OK, ERR_MULTIPLE_INIT, ERR_INVALID}),
    "copy": frozenset({ERR_INVALID}),  # an FD owns its number: copies are refused
    **dict.fromkeys(("release_held", "drop", "finalizer", "fork"), frozenset({OK})),
}


def _inside(close: str) -> dict[str, str]:
    both = {"init": ERR_CLOSED, "track_lifetime": ERR_MULTIPLE_INIT}
    return {"close": close, "detach": close, **dict.fromkeys(BORROWS, ERR_CLOSED), **both}


# A call from inside close_func or on_closing (on its thread) is refused at
# once: waiting would wait for the callback, that is for itself (guarantee 6).
INSIDE = {
    "close_func": _inside(ERR_CLOSE_IN_CLOSE_FUNC),
    "on_closing": _inside(ERR_CLOSE_IN_BORROW),
}


@dataclass
class Frame:
    """A call, a fn or a callback, from its opening event to its closing one."""

    what: str  # "call", "fn", "close_func" or "on_closing"
    who: str
    begin: int
    detail: str  # a call's own words: "close(0.5)", "init(rawfd=7)"
    state: str  # observed at `begin` ("" unknown)
    parent: Frame | None  # the frame of the same thread it runs inside
    holds: int  # the thread's borrows (Holds) when it began
    end: int | None = None
    result: str = ""  # a call's result word; "raised X" for a fn or callback that raised
    end_state: str = ""

    @property
    def call(self) -> str:
        return self.detail.split("(", 1)[0] if self.what == "call" else self.what

    def open_at(self, i: int) -> bool:
        return self.begin < i and (self.end is None or self.end > i)

    def inside(self, what: str) -> Frame | None:
        frame = self.parent
        while frame is not None and frame.what != what:
            frame = frame.parent
        return frame

    def __str__(self) -> str:
        return f"{self.who}'s {self.detail} (#{self.begin})"


@dataclass
class Hold:
    who: str  # the borrowing thread
    begin: int
    state: str  # observed right after it was counted
    end: int | None = None

    def open_at(self, i: int) -> bool:
        return self.begin < i and (self.end is None or self.end > i)


class Run:
    """A History parsed: frames, holds, and where the close began."""

    def __init__(self, history: History) -> None:
        self.h, self.ev = history, list(history.events)
        self.frames: list[Frame] = []
        self.holds: list[Hold] = []
        self.problems: list[str] = []  # found while parsing: a release of nothing, ...
        stacks: dict[str, list[Frame]] = {}
        held: dict[str, list[Hold]] = {}
        ends = {"return": "call", "fn_end": "fn", "close_func_end": "close_func"}
        miscounted = False
        for i, ev in enumerate(self.ev):
            stack, mine = stacks.setdefault(ev.who, []), held.setdefault(ev.who, [])
            state = "" if ev.state == "GONE" else ev.state  # dropped: no FD to observe
            if ev.what in ("call", "fn", "close_func", "on_closing"):
                parent = stack[-1] if stack else None
                stack.append(Frame(ev.what, ev.who, i, ev.detail, state, parent, len(mine)))
                self.frames.append(stack[-1])
            elif ev.what in ends or ev.what == "on_closing_end":
                if not stack or stack[-1].what != ends.get(ev.what, "on_closing"):
                    self.problems.append(f"at #{i}: {ev.who}: {ev.what} without its beginning")
                    continue
                frame = stack.pop()
                frame.end, frame.result, frame.end_state = i, ev.detail, state
            elif ev.what == "hold":
                mine.append(Hold(ev.who, i, state))
                self.holds.append(mine[-1])
            elif ev.what == "unhold" and not mine:
                self.problems.append(f"at #{i}: {ev.who} released a borrow it did not hold")
            elif ev.what == "unhold":
                mine.pop().end = i
            counted = sum(map(len, held.values()))
            if history.seam and 0 <= ev.borrows != counted and not miscounted:
                miscounted = True  # reported once: every later line would repeat it
                self.problems.append(f"at #{i}: borrow_count={ev.borrows}, but the log has "
                                     f"{counted} borrow(s) held: a change of the count went "
                                     "unlogged (borrow count exact)")  # fmt: skip
        self.freezes = [i for i, ev in enumerate(self.ev) if ev.what == "freeze"]
        marks = self.freezes or [f.begin for f in self.frames if f.what not in ("call", "fn")]
        self.close_began: int | None = min(marks, default=None)

    def calls(self, *names: str) -> list[Frame]:
        return [f for f in self.frames if f.what == "call" and (not names or f.call in names)]

    def of(self, what: str) -> list[Frame]:
        return [f for f in self.frames if f.what == what]

    def events(self, what: str) -> list[tuple[int, Event]]:
        return [(i, ev) for i, ev in enumerate(self.ev) if ev.what == what]

    def running(self, i: int) -> list[str]:
        """The borrows running at event i: counted ones (seam), else open fns."""
        if self.h.seam:
            return [f"{h.who} (#{h.begin})" for h in self.holds if h.open_at(i)]
        return [str(f.parent or f) for f in self.of("fn") if f.open_at(i)]

    def owner(self) -> Frame | None:
        """The call that began the close: the one open on the freezing thread."""
        at = self.freezes[0] if self.freezes else -1
        mine = [f for f in self.calls() if at >= 0 and f.who == self.ev[at].who and f.open_at(at)]
        return mine[-1] if mine else None

    def opened(self) -> str | None:
        """The number the first successful init opened the FD with."""
        found = [re.search(r"rawfd=(\d+)", f.detail) for f in self.calls("init") if f.result == OK]
        return found[0][1] if found and found[0] else None

    def opener(self) -> str:
        """Who made the first successful init (whose close_func the FD holds)."""
        return next((f.who for f in self.calls("init") if f.result == OK), "")

    def raised(self, what: str) -> set[str]:
        """What close_func or on_closing raised, as result words."""
        return {f.result.removeprefix("raised ") for f in self.of(what) if f.result}

    def handed_over(self) -> bool:
        return any(d.result == OK_RAWFD for d in self.calls("detach"))

    def interrupted(self) -> list[tuple[int, Frame]]:
        """Each interrupt a harness raised in rcfd (its event), with the
        innermost call of that thread it interrupted."""
        hit = [(i, [c for c in self.calls() if c.who == ev.who and c.open_at(i)])
               for i, ev in self.events("interrupt")]  # fmt: skip
        return [(i, max(calls, key=lambda c: c.begin)) for i, calls in hit if calls]


def seen_state_moves(r: Run) -> list[str]:  # states are entered once, in order
    found, last = [], "UNINIT"
    for i, ev in enumerate(r.ev):
        if ev.state in ORDER and ev.state != last:
            if ORDER.index(ev.state) < ORDER.index(last):
                found.append(f"at #{i}: the FD went {last} -> {ev.state}: states only move forward")
            elif r.h.seam and ev.state != "OPEN" and not any(f <= i for f in r.freezes):
                found.append(f"at #{i}: {ev.state} before any close froze the holders")
            last = ev.state
    for i in r.freezes:
        if r.ev[i].detail == "not frozen":
            found.append(f"at #{i}: a close began that did not freeze the holders: borrows "
                         "are not refused (guarantee 2)")  # fmt: skip
        if i != r.freezes[0]:
            found.append(f"at #{i}: a second close began (two owners): transitions must be "
                         "ordered by one lock (guarantee 5)")  # fmt: skip
    return found


def seen_close_func_once_never_under_a_borrow(r: Run) -> list[str]:  # guarantee 1
    found, opened = [], r.opened()
    handed = [d.end for d in r.calls("detach") if d.result == OK_RAWFD and d.end is not None]
    for n, f in enumerate(r.of("close_func")):
        at = f"at #{f.begin}: close_func"
        if n:
            found.append(f"{at} called a second time, by {f.who}")
        if running := r.running(f.begin):
            found.append(f"{at} called while borrows run: {running}")
        if any(g.open_at(f.begin) for g in r.of("on_closing")):
            found.append(f"{at} called while on_closing runs")
        if f.state and f.state != "CLOSING":
            found.append(f"{at} called in state {f.state}, not CLOSING")
        if opened is not None and f.detail.split()[0] != f"rawfd={opened}":
            found.append(f"{at} got {f.detail}, but init opened rawfd={opened}")
        if " by " in f.detail and not f.detail.endswith(f" by {r.opener()}'s"):
            found.append(f"{at} {f.detail}, but {r.opener()}'s init opened the FD: only its "
                         "close_func closes it")  # fmt: skip
        if any(i < f.begin for i in handed):
            found.append(f"{at} closed the number a detach had handed back")
    first = min((f.begin for f in r.of("close_func")), default=len(r.ev))
    found += [f"at #{f.begin}: {f.who}'s fn runs after close_func started (guarantees 1, 2)"
              for f in r.of("fn") if f.begin > first]  # fmt: skip
    closed = next((i for i, ev in enumerate(r.ev) if ev.state == "CLOSED"), None)
    if closed is not None and (running := r.running(closed)):
        found.append(f"at #{closed}: CLOSED while borrows run: {running}")
    return found


def seen_no_borrow_after_close_began(r: Run) -> list[str]:  # guarantee 2
    found, opened = [], r.opened()
    for f in r.of("fn"):
        mine, call = [h for h in r.holds if h.who == f.who and h.open_at(f.begin)], f.parent or f
        if r.h.seam and not mine:
            found.append(f"at #{f.begin}: {f.who}'s fn runs without a borrow (guarantee 1)")
        elif r.h.seam and mine[-1].state != "OPEN":
            found.append(f"at #{f.begin}: {f.who}'s fn runs under a borrow taken in "
                         f"{mine[-1].state} (#{mine[-1].begin}): only an OPEN FD lends its number")
        elif r.close_began is not None and call.begin > r.close_began:
            found.append(f"at #{f.begin}: {call} began after the close did, yet its fn runs")
        if opened is not None and f.detail != f"rawfd={opened}":
            found.append(f"at #{f.begin}: {f.who}'s fn got {f.detail}, but init opened {opened}")
    for c in r.calls("begin_borrow"):
        fn = [f for f in r.of("fn") if f.parent is c]
        if c.result == ERR_CLOSED and fn:
            found.append(f"at #{c.end}: {c} raised ClosedFDError after calling fn")
        if c.result == OK_FN and not fn:
            found.append(f"at #{c.end}: {c} returned without calling fn")
    return found


def seen_borrows_released_however_fn_exits(r: Run) -> list[str]:  # guarantee 3
    found = list(r.problems)
    for c in r.calls() if r.h.seam else ():
        mine = sum(1 for h in r.holds if h.who == c.who and h.open_at(c.end or len(r.ev)))
        if c.end is not None and c.call != "hold_borrow" and mine > c.holds:
            found.append(f"at #{c.end}: {c} returned with {mine - c.holds} borrow(s) it took "
                         "still counted: no release was logged")
    return found


def seen_closers_return_after_close_func(r: Run) -> list[str]:  # guarantees 4 and 5
    found, owner, handed = [], r.owner(), r.handed_over()
    finished = [i for i, ev in r.events("finish")]
    for c in r.calls(*CLOSES):
        if c.end is None or c.result in REFUSALS - {ERR_CLOSED} | {ERR_TIMEOUT, ERR_ON_CLOSING}:
            continue
        said = f"at #{c.end}: {c} returned {c.result}"
        if c.end_state and c.end_state != "CLOSED":
            found.append(f"{said} while the FD is {c.end_state}")
        ran = [f for f in r.of("close_func") if f.begin < c.end]
        if any(f.end is None or f.end > c.end for f in ran):
            found.append(f"{said} while close_func still runs")
        if (r.h.seam and not any(i < c.end for i in finished)) or not (ran or handed or r.h.seam):
            found.append(f"{said}, but the close never finished")
        if running := r.running(c.end):
            found.append(f"{said} while borrows still run: {running}")
        if owner is not None and c is not owner and c.result in (OK, OK_RAWFD):
            found.append(f"{said}, but {owner} began the close: it must wait for it, then "
                         "raise ClosedFDError")
        want = OK_RAWFD if c.call == "detach" else ERR_CLOSE_FUNC if r.raised("close_func") else OK
        if c is owner and c.result != want:
            found.append(f"at #{c.end}: {c} began the close, so it must return {want}")
    return found


def seen_close_inside_a_borrow_or_callback_is_refused(r: Run) -> list[str]:  # guarantee 6
    found = []
    for c in r.calls():
        callback = c.inside("close_func") or c.inside("on_closing")
        in_borrow = c.holds > 0 if r.h.seam else c.inside("fn") is not None
        if c.result == ERR_INVALID:  # a bad argument is refused first, in any state
            continue
        if c.call in CLOSES and in_borrow and c.result != ERR_CLOSE_IN_BORROW:
            found.append(f"at #{c.begin}: {c} holds a borrow, yet ended {c.result or 'never'}")
        elif r.h.seam and c.result == ERR_CLOSE_IN_BORROW and not in_borrow and not callback:
            found.append(f"at #{c.end}: {c} was refused as inside a borrow, but holds none")
        want = INSIDE[callback.what].get(c.call) if callback is not None else None
        if want and c.result != want and not (in_borrow and c.result == ERR_CLOSE_IN_BORROW):
            found.append(f"at #{c.begin}: {c} from inside {callback and callback.what} ended "
                         f"{c.result or 'never'}, not {want} at once")
    return found


def seen_close_func_error_reaches_its_closer(r: Run, ended: bool = False) -> list[str]:  # g7
    """close_func's error reaches the closer that began the close, or (nobody
    waits for it any more) a RuntimeWarning: never both, and by the end one."""
    raised = sum(1 for f in r.of("close_func") if f.result)
    got = sum(1 for c in r.calls(*CLOSES) if c.result in r.raised("close_func"))
    got += sum(1 for _, ev in r.events("warning") if "close_func raised" in ev.detail)
    if got > raised or (ended and got < raised):
        return [f"close_func raised {raised}x, and {got} closer(s) or RuntimeWarning(s) got "
                "it: exactly one must get each, the closer that began the close"]  # fmt: skip
    return []


def seen_timeouts_only_while_borrows_run(r: Run) -> list[str]:  # guarantee 8
    found, owner = [], r.owner()
    for c in r.calls("close"):
        if c.result != ERR_TIMEOUT:
            continue
        at = r.freezes[0] if c is owner else c.begin
        others = [h for h in r.holds if h.who != c.who and h.open_at(at)]
        if r.h.seam and not others and (c is owner or c.state == "CLOSING"):
            found.append(f"at #{c.end}: {c} timed out, yet no borrow ran when it began waiting")
        timeout = re.search(r"\(([\d.]+)\)", c.detail)
        deadline = r.ev[c.begin].at + float(timeout[1]) if timeout else -1.0
        found += [f"at #{c.end}: {c} timed out, but close_func began before its deadline "
                  f"(#{f.begin}): the timeout bounds the borrows, not close_func"
                  for f in r.of("close_func")[:1] if r.ev[f.begin].at < deadline]  # fmt: skip
    return found


def seen_finalizer_closes_a_dropped_fd(r: Run) -> list[str]:  # guarantee 9
    found, warned = [], [i for i, ev in r.events("warning") if "ResourceWarning" in ev.detail]
    found_open = sum(1 for f in r.calls("finalizer") if f.state == "OPEN")
    for i, ev in r.events("drop"):
        later, found_open = [w for w in warned if w > i], found_open + (ev.detail == "OPEN")
        if ev.detail == "OPEN" and not any(f.begin > i for f in r.of("close_func")):
            found.append(f"at #{i}: the FD was dropped OPEN, and its finalizer never closed it")
        elif ev.detail == "OPEN" and not later:
            found.append(f"at #{i}: the finalizer closed the dropped FD without a ResourceWarning")
        elif ev.detail != "OPEN" and later:
            found.append(f"at #{later[0]}: a ResourceWarning for an FD dropped {ev.detail}")
    if len(warned) > found_open:
        found.append(f"at #{warned[-1]}: {len(warned)} ResourceWarning(s), but only "
                     f"{found_open} finalizer(s) found the FD OPEN")
    for f in r.calls("finalizer"):  # fd.__del__() by hand: a finalizer that warned closes
        end = len(r.ev) if f.end is None else f.end
        if any(f.begin < w < end and r.ev[w].who == f.who for w in warned) and not any(
            i < end for i in r.freezes
        ):
            found.append(f"at #{end}: {f} warned, yet returned with no close begun")
    owner = r.owner()
    if owner is not None and owner.call in ("finalizer", "drop") and not warned:
        found.append(f"at #{r.freezes[0]}: the finalizer began the close without a ResourceWarning")
    return found


def seen_refusals_change_nothing(r: Run) -> list[str]:  # guarantees 6 and 10
    found = []
    for c in r.calls():
        said, end = f"at #{c.end}: {c}", len(r.ev) if c.end is None else c.end
        done = [f"#{j} {ev.what}" for j, ev in enumerate(r.ev[c.begin:end], c.begin)
                if ev.who == c.who and ev.what in CHANGES]  # fmt: skip
        if done and c.result in REFUSALS and not (c.call in CLOSES and c.result == ERR_CLOSED):
            found.append(f"{said} was refused ({c.result}), yet changed the FD: {', '.join(done)}"
                         " (guarantee 10: a refused call changes nothing)")
        if c.result == ERR_UNINIT and c.state not in ("", "UNINIT"):
            found.append(f"{said} was refused as UNINIT, yet the FD was {c.state}")
        opening = c.call in ("init", "track_lifetime") and c.result == OK
        if opening and c.state not in ("", "UNINIT"):
            found.append(f"{said} succeeded on a {c.state} FD: only UNINIT accepts it")
        if c.result == ERR_MULTIPLE_INIT and c.end_state == "UNINIT":
            found.append(f"{said} raised MultipleInitError, yet no init opened the FD")
        if c.result == ERR_CLOSED and c.call not in CLOSES and c.end_state in ("UNINIT", "OPEN"):
            found.append(f"{said} raised ClosedFDError while the FD is {c.end_state}")
    return found


def seen_results_are_documented(r: Run) -> list[str]:  # specs/rcfd.md, Errors
    found, interrupted = [], {id(c): i for i, c in r.interrupted()}
    for c in r.calls():
        own = {f.result.removeprefix("raised ") for f in r.of("fn") if f.parent is c and f.result}
        if c.call in CLOSES:
            own |= r.raised("close_func") | r.raised("on_closing")
        if (i := interrupted.get(id(c))) is not None:  # specs/cpython.md, Signals
            own.add(ERR_FN_INTERRUPT)  # a harness's interrupt: its own, as a signal handler's
            if c.end is not None and c.result != ERR_FN_INTERRUPT:
                found.append(f"at #{c.end}: {c}, interrupted {r.ev[i].detail} (#{i}), ended "
                             f"with {c.result}: the interrupt must reach the caller, whatever "
                             "the recovery did (specs/cpython.md, Signals)")
        if c.end is not None and c.result not in RESULTS.get(c.call, {c.result}) | own:
            found.append(f"at #{c.end}: {c} ended with {c.result}: only the errors "
                         "specs/rcfd.md documents may escape")
    return found


def seen_one_init_opens_the_fd(r: Run) -> list[str]:  # guarantee 10 and the Errors section
    ok, made = [c for c in r.calls("init") if c.result == OK], [i for i, _ in r.events("holders")]
    found = [f"at #{c.end}: {c} succeeded too: at most one init does" for c in ok[1:]]
    if len(made) > max(1, len(ok)):
        found.append(f"at #{made[-1]}: an init made its holders after another had: a second "
                     "init got past its check (a borrow counted in the first ones is lost)")
    return found


def seen_on_closing_once_under_the_closers_borrow(r: Run) -> list[str]:  # specs/ecosystem.md
    found, first = [], min((f.begin for f in r.of("close_func")), default=len(r.ev))
    for n, f in enumerate(r.of("on_closing")):
        mine = [h for h in r.holds if h.who == f.who and h.open_at(f.begin)]
        if n:
            found.append(f"at #{f.begin}: on_closing called a second time")
        if f.inside("call") is None or f.state not in ("", "CLOSING") or (r.h.seam and not mine):
            found.append(f"at #{f.begin}: on_closing ran in {f.state or 'a state'} with "
                         f"{len(mine)} borrow(s) of its own: it runs in CLOSING, under the "
                         "closer's borrow")
        if first < f.begin:
            found.append(f"at #{f.begin}: on_closing ran after close_func started")
    return found


def seen_the_run_ends_settled(r: Run) -> list[str]:  # guarantees 1, 4, 5, 7, 8 at the end
    found = [f"at the end: {c} never returned (a lost wake-up or a deadlock)"
             for c in r.calls() if c.end is None]  # fmt: skip
    last = next((ev.state for ev in reversed(r.ev) if ev.state), "")
    if left := r.running(len(r.ev)):
        found.append(f"at the end: borrows still counted: {left}")
    began, want = r.close_began is not None or r.handed_over(), 0 if r.handed_over() else 1
    if last not in ("", "CLOSED", "GONE") and began:
        found.append(f"at the end: a close began and every borrow ended, yet the FD is {last}")
    if last == "CLOSED" and not began:
        found.append("at the end: the FD is CLOSED, yet no close began")
    if r.calls("init") and not r.opener():
        found.append("at the end: no init succeeded: one of them must, and open the FD")
    if began and (ran := len(r.of("close_func"))) != want:
        found.append(f"at the end: close_func ran {ran}x, expected {want} (guarantee 1)")
    owner = r.owner()
    if r.h.on_closing and owner is not None and owner.call in CLOSES and not r.of("on_closing"):
        found.append("at the end: the close began, but on_closing never ran")
    return found + seen_close_func_error_reaches_its_closer(r, ended=True)


def seen_a_stuck_run_is_explained(r: Run) -> list[str]:  # guarantee 4, for a deadlocked run
    last = next((ev.state for ev in reversed(r.ev) if ev.state), "")
    if last == "CLOSING" and not r.of("close_func") and not r.running(len(r.ev)):
        unhold = max((i for i, _ in r.events("unhold")), default=-1)
        return [f"at #{unhold}: the last borrow was released in CLOSING, yet no thread ran "
                "close_func and none will: a lost wake-up (guarantees 4, 8)"]  # fmt: skip
    return [f"at #{c.begin}: {c} never returned, yet the FD is still {last}: no close began"
            for c in r.calls(*CLOSES) if c.end is None and last in ("UNINIT", "OPEN")]  # fmt: skip


def seen_registry_adds_up(r: Run) -> list[str]:  # guarantee 9 and the registry section
    found, kinds = [], ("closed", "close_failed", "detached", "finalized")
    for _, ev in r.events("registry"):
        name, _, counts = ev.detail.partition(": ")
        got = dict(pair.split("=") for pair in counts.split())
        if name != "main":  # a registry the FD must not report to
            if any(v not in ("0", "no") for v in got.values()):
                found.append(f"registry {name} (refused) counted {counts}: it must count nothing")
            continue
        inits = min(1, sum(1 for c in r.calls("init") if c.result == OK))
        if got.get("initialized") != str(inits) or (inits and got.get("stack", "yes") != "yes"):
            found.append(f"registry: {counts}; {inits} init(s) succeeded, each with its stack")
        closed, owner = any(e.state == "CLOSED" or e.what == "finish" for e in r.ev), r.owner()
        how = ("detached" if r.handed_over()
               else "finalized" if owner is not None and owner.call in ("finalizer", "drop")
               else "close_failed" if r.raised("close_func") else "closed")  # fmt: skip
        if {k: got.get(k) for k in kinds} != {k: str(int(closed and k == how)) for k in kinds}:
            found.append(f"registry: {counts}; the FD's release is {how if closed else 'none'}")
    return found


def seen_driver_saw_nothing_wrong(r: Run) -> list[str]:
    return [f"at #{i}: {ev.who}: {ev.detail}" for i, ev in r.events("anomaly")]


HISTORY_CHECKS: tuple[Callable[[Run], list[str]], ...] = (
    seen_state_moves,
    seen_close_func_once_never_under_a_borrow,
    seen_no_borrow_after_close_began,
    seen_borrows_released_however_fn_exits,
    seen_closers_return_after_close_func,
    seen_close_inside_a_borrow_or_callback_is_refused,
    seen_close_func_error_reaches_its_closer,
    seen_timeouts_only_while_borrows_run,
    seen_finalizer_closes_a_dropped_fd,
    seen_refusals_change_nothing,
    seen_results_are_documented,
    seen_one_init_opens_the_fd,
    seen_on_closing_once_under_the_closers_borrow,
    seen_registry_adds_up,
    seen_driver_saw_nothing_wrong,
)


def history_violations(history: History, end: str = "ended") -> list[str]:
    """Every guarantee the run recorded in `history` breaks ([] if none).
    `end`: "ended" (every thread finished: the end state is checked too),
    "stuck" (the threads stopped for good: a deadlock, checked as far as it
    got), or "running" (a run still going: what happened so far)."""
    r = Run(history)
    found = [p for check in HISTORY_CHECKS for p in check(r)]
    if end == "ended":
        found += seen_the_run_ends_settled(r)
    elif end == "stuck":
        found += seen_a_stuck_run_is_explained(r)
    return list(dict.fromkeys(found))
