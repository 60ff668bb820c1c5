"""Run a scenario under interleave-test's controlled scheduler and check the
guarantees of specs/rcfd.md on every schedule it explores.

How the production FD is observed. interleave-test serializes the threads
of a scenario and chooses who runs next at every scheduling point: each
line (or bytecode instruction) of rcfd/ and each Lock operation. Only rcfd/
is traced (`include=`), so this file's code runs atomically between two
points. `MonitoredFD` is the production FD with its two mutable fields, the
state and the holder list, replaced by logging versions: every write the
FD makes (always under its lock) is appended to one event log, in the
order it happened. The actors append their calls and returns, the borrow
bodies, on_closing and close_func to the same log. After the threads end,
`violations` replays the log against the guarantees; a violation fails the
schedule with the whole timeline, and interleave-test reports the schedule,
which `save_failure` stores as JSON for `tools/explore.py --replay`.

Requires Python 3.12+ (interleave-test is built on sys.monitoring).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import interleave_test as it

import rcfd
from rcfd import FD
from rcfd._lifecycle import State

RCFD_DIR = os.path.dirname(os.path.abspath(rcfd.__file__))  # the only traced code
RAWFD = 7  # never a real descriptor: close_func is a recorder, not os.close
DETACH_RESULT = f"returned {RAWFD}"


class CloseFuncError(OSError):
    """What close_func raises in scenarios where it fails (guarantee 7)."""


def switch_point() -> None:
    """Let the scheduler run another thread here.

    interleave-test replaces time.sleep inside a run with a pure scheduling
    point that returns at once; it orders nothing by itself, it only lets
    the search put other threads' steps inside a borrow or close_func.
    """
    time.sleep(0)


@dataclass(frozen=True)
class Ev:
    """One entry of the log: who did what, and the FD's state and count then."""

    who: str
    what: str  # state, hold, unhold, call, return, fn, fn_end, close_func, close_func_end, ...
    detail: str
    state: State | None  # None while the FD is being constructed
    borrows: int

    def render(self, index: int) -> str:
        where = "" if self.state is None else f"  [{self.state.name}, borrows={self.borrows}]"
        return f"  #{index:<3} {self.who:<9} {self.what} {self.detail}{where}"


# -- the monitored FD --------------------------------------------------------


class HoldList(list[int]):
    """FD._holders that logs each borrow taken (append, +=) and returned (remove).

    These are the only ways rcfd changes the list; any other would go unlogged
    and show up as a count mismatch at the end (`_check_end`).
    """

    def __init__(self, world: World) -> None:
        super().__init__()
        self._world = world

    def append(self, tid: int, /) -> None:
        super().append(tid)
        self._world.log("hold", "")

    def remove(self, tid: int, /) -> None:
        super().remove(tid)
        self._world.log("unhold", "")


def _logged_iadd(self: HoldList, tids: Iterable[int], /) -> HoldList:
    for tid in tids:
        self.append(tid)
    return self


# rcfd takes a borrow with `holders += (tid,)`. Set after the class body: a
# list subclass cannot declare an __iadd__ that mypy finds compatible with
# list.__add__, yet the runtime needs one that logs.
setattr(HoldList, "__iadd__", _logged_iadd)  # noqa: B010


class MonitoredFD(FD):
    """The production FD; only its state and holder fields log their writes."""

    def __init__(self, world: World, on_closing: Callable[[int], object] | None) -> None:
        self._world = world
        self._shadow_state = State.UNINIT
        super().__init__(RAWFD, world.close_func, on_closing=on_closing)
        self._holders = HoldList(world)  # FD() took no borrow yet: nothing to carry over

    @property
    def _state(self) -> State:
        return self._shadow_state

    @_state.setter
    def _state(self, new: State) -> None:
        old = self._shadow_state
        self._shadow_state = new
        if new is not old:
            self._world.log("state", f"{old.name} -> {new.name}")


# -- scenarios ---------------------------------------------------------------

Body = Callable[["World"], None]


@dataclass(frozen=True)
class Actor:
    name: str
    body: Body
    gated: bool = False  # blocks in its borrow until main opens the gate (after the others end)


@dataclass(frozen=True)
class Scenario:
    name: str  # "<program>/<threads>", e.g. "two_closers/3"
    actors: tuple[Actor, ...]
    on_closing: bool = False
    close_func_raises: bool = False
    about: str = ""

    @property
    def threads(self) -> int:
        return len(self.actors)


@dataclass
class Call:
    who: str
    kind: str  # do, borrow, close, close(timeout=..), detach, ...
    fns_before: int  # borrow bodies this thread had started when the call began
    result: str | None = None


@dataclass
class World:
    """Everything one schedule of one scenario shares: the FD and the log."""

    scenario: Scenario
    events: list[Ev] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    stacks: dict[str, list[Call]] = field(default_factory=dict)
    fns: Counter[str] = field(default_factory=Counter)  # borrow bodies started, per thread
    fd: MonitoredFD | None = None
    # Looked up at call time, so that inside a run it is interleave-test's Event.
    gate: threading.Event = field(default_factory=lambda: threading.Event())

    def who(self) -> str:
        return self.names.get(threading.get_ident(), "?")

    def log(self, what: str, detail: str) -> None:
        fd = self.fd
        state = None if fd is None else fd._state
        borrows = 0 if fd is None else len(fd._holders)
        self.events.append(Ev(self.who(), what, detail, state, borrows))

    def timeline(self) -> str:
        return "\n".join(ev.render(i) for i, ev in enumerate(self.events))

    # What the FD calls back.

    def close_func(self, rawfd: int) -> None:
        self.log("close_func", f"rawfd={rawfd}")
        switch_point()  # other threads may act while close_func runs
        self.log("close_func_end", "")
        if self.scenario.close_func_raises:
            raise CloseFuncError(errno.EIO, "close_func failed (planted by the scenario)")

    def on_closing(self, rawfd: int) -> None:
        self.log("on_closing", f"rawfd={rawfd}")
        switch_point()

    # What the actors call.

    def call(self, kind: str, thunk: Callable[[], object]) -> None:
        """Make one rcfd call and log its start and its result."""
        who = self.who()
        record = Call(who, kind, self.fns[who])
        self.calls.append(record)
        self.stacks.setdefault(who, []).append(record)
        self.log("call", kind)
        try:
            value = thunk()
        except Exception as exc:  # the checks decide which exceptions are allowed
            record.result = type(exc).__name__
        else:
            record.result = "ok" if value is None or value == "fn-value" else f"returned {value}"
        self.stacks[who].pop()
        self.log("return", f"{kind}: {record.result}")

    def borrow_body(self, rawfd: int) -> str:
        """The fn of a borrow: runs under it, with a scheduling point inside."""
        who = self.who()
        self.fns[who] += 1
        self.log("fn", f"rawfd={rawfd}")
        if rawfd != RAWFD:
            self.log("bad_rawfd", f"fn got {rawfd}, expected {RAWFD}")
        switch_point()
        self.log("fn_end", "")
        return "fn-value"

    def gated_body(self, rawfd: int) -> str:
        """A borrow that stays open until main opens the gate (a blocked syscall)."""
        self.borrow_body(rawfd)
        self.gate.wait()
        return "fn-value"

    def run_actor(self, actor: Actor) -> None:
        self.names[threading.get_ident()] = actor.name
        actor.body(self)


# What the calls returned, per schedule, across one exploration: shows which
# outcomes (timeouts, refusals, hand-overs) the schedules actually reached.
OUTCOMES: Counter[str] = Counter()
# The world of the latest schedule: after a deadlock (whose model never reaches
# its checks) its log is the timeline up to the point where every thread blocked.
LAST_WORLD: World | None = None


def model_for(scenario: Scenario) -> Callable[[], None]:
    """The zero-argument program interleave-test runs once per schedule."""

    def model() -> None:
        global LAST_WORLD
        world = LAST_WORLD = World(scenario)
        world.names[threading.get_ident()] = "main"
        world.fd = MonitoredFD(world, world.on_closing if scenario.on_closing else None)
        try:
            tasks = [
                (actor, it.spawn(world.run_actor, actor, name=actor.name))
                for actor in scenario.actors
            ]
            for actor, task in tasks:
                if not actor.gated:
                    task.join()
            world.gate.set()  # the other actors ended: gated borrows may return now
            for actor, task in tasks:
                if actor.gated:
                    task.join()
            problems = violations(world)
            OUTCOMES[" ".join(sorted(f"{c.who}.{c.kind}={c.result}" for c in world.calls))] += 1
        finally:
            world.fd = None  # break world <-> fd, so that FD.__del__ runs when main ends
        if problems:
            raise AssertionError(
                f"{scenario.name}: " + "\n".join(problems) + "\n\ntimeline:\n" + world.timeline()
            )

    model.__name__ = scenario.name.replace("/", "_")
    return model


# -- the guarantees ----------------------------------------------------------

BORROW_RESULTS = frozenset({"ok", "ClosedFDError"})
CLOSE_KINDS = ("close", "detach")


def _used_holds(events: list[Ev]) -> set[int]:
    """Indices of the hold events under which something used the number.

    rcfd may publish a borrow before it looks at the state and take it back
    when the state refuses it (a lock-free borrow path): such a hold is not a
    borrow that runs. A hold is used when its thread calls fn (or, for the
    closer's own borrow, on_closing) before releasing it.
    """
    stacks: dict[str, list[int]] = {}
    used: set[int] = set()
    for i, ev in enumerate(events):
        stack = stacks.setdefault(ev.who, [])
        if ev.what == "hold":
            stack.append(i)
        elif ev.what == "unhold" and stack:
            stack.pop()
        elif ev.what in ("fn", "on_closing") and stack:
            used.add(stack[-1])
    return used


def violations(world: World) -> list[str]:
    """Every guarantee of specs/rcfd.md this schedule's log breaks (empty: none)."""
    problems: list[str] = []
    state = State.UNINIT
    used = _used_holds(world.events)
    holds: dict[str, list[tuple[int, State]]] = {}  # per thread: (hold index, state then)
    running: Counter[str] = Counter()  # borrow bodies running, per thread
    owner: str | None = None  # who moved OPEN -> CLOSING
    borrows_at_close = 0  # holds when the close began (the closer's own excluded)
    close_funcs = on_closings = 0
    close_func_done = False
    open_calls: dict[str, list[int]] = {}  # per thread: log index of each call not returned
    close_func_at: dict[str, int] = {}  # who ran close_func, at which log index

    def fail(index: int, message: str) -> None:
        problems.append(f"at #{index}: {message}")

    def running_borrows() -> dict[str, int]:
        """Borrows that use the number (not holds taken back unused), per thread."""
        counts = {t: sum(1 for i, _ in hs if i in used) for t, hs in holds.items()}
        return {t: n for t, n in counts.items() if n}

    for i, ev in enumerate(world.events):
        who = ev.who
        mine = holds.setdefault(who, [])
        if ev.what == "state":
            old, new = ev.detail.split(" -> ")
            if (old, new) not in (("UNINIT", "OPEN"), ("OPEN", "CLOSING"), ("CLOSING", "CLOSED")):
                fail(i, f"state went {old} -> {new}: states are entered once, in order")
            state = State[new]
            if state is State.CLOSING:
                owner, borrows_at_close = who, sum(len(hs) for hs in holds.values())
            if state is State.CLOSED and running_borrows():
                fail(i, f"CLOSED while borrows run: {running_borrows()} (guarantee 1)")
        elif ev.what == "hold":
            mine.append((i, state))
        elif ev.what == "unhold":
            if not mine:
                fail(i, f"{who} released a borrow it did not hold")
            else:
                mine.pop()
        elif ev.what == "fn":
            if not mine:
                fail(i, f"{who}'s fn runs without a borrow (guarantee 1)")
            elif mine[-1][1] is not State.OPEN:
                fail(
                    i,
                    f"{who}'s fn runs under a borrow taken in {mine[-1][1].name} "
                    f"(#{mine[-1][0]}), after close began (guarantee 2)",
                )
            if close_funcs:
                fail(i, f"{who}'s fn runs after close_func started (guarantees 1, 2)")
            running[who] += 1
        elif ev.what == "fn_end":
            running[who] -= 1
        elif ev.what == "bad_rawfd":
            fail(i, f"{who}: {ev.detail}")
        elif ev.what == "close_func":
            close_funcs += 1
            close_func_at[who] = i
            if close_funcs > 1:
                fail(i, f"close_func called a second time, by {who} (guarantee 1)")
            others = running_borrows() | {t: n for t, n in running.items() if n}
            if others:
                fail(i, f"close_func called while borrows run: {others} (guarantee 1)")
            if state is not State.CLOSING:
                fail(i, f"close_func called in state {state.name}, not CLOSING")
        elif ev.what == "close_func_end":
            close_func_done = True
        elif ev.what == "on_closing":
            on_closings += 1
            if on_closings > 1:
                fail(i, "on_closing called a second time")
            if who != owner or state is not State.CLOSING or not mine:
                fail(
                    i,
                    f"on_closing ran in {who} (owner {owner}) in {state.name} with "
                    f"{len(mine)} borrow(s) of its own: it must run in the thread that "
                    "began the close, in CLOSING, under that closer's borrow",
                )
            if close_funcs:
                fail(i, "on_closing ran after close_func started")
        elif ev.what == "call":
            open_calls.setdefault(who, []).append(i)
        elif ev.what == "return":
            kind, result = ev.detail.split(": ", 1)
            began = open_calls.get(who, [-1]).pop() if open_calls.get(who) else -1
            refused = result == "ClosedFDError" and not kind.startswith(CLOSE_KINDS)
            if refused and began < close_func_at.get(who, -1):
                fail(
                    i,
                    f"{who}'s {kind} was refused, yet ran close_func (#{close_func_at[who]}) "
                    "before raising: a refused borrow must raise at once, without "
                    "blocking (guarantee 2)",
                )
            problems.extend(
                f"at #{i}: {p}"
                for p in _check_return(
                    world, who, kind, result, state, owner, borrows_at_close, close_func_done
                )
            )

    problems.extend(_check_end(world, state, owner, close_funcs, on_closings, holds, running))
    return problems


def _check_return(
    world: World,
    who: str,
    kind: str,
    result: str,
    state: State,
    owner: str | None,
    borrows_at_close: int,
    close_func_done: bool,
) -> Iterator[str]:
    """What a call may return, given the log up to its return."""
    call = next((c for c in reversed(world.calls) if c.who == who and c.kind == kind), None)
    fn_started = call is not None and world.fns[who] > call.fns_before  # None: hand-written log
    if not kind.startswith(CLOSE_KINDS):
        if result not in BORROW_RESULTS:
            yield f"{who}'s {kind} ended with {result}; a borrow returns or raises ClosedFDError"
        if result == "ClosedFDError" and fn_started:
            yield f"{who}'s {kind} raised ClosedFDError after calling fn (guarantee 2)"
        if result == "ClosedFDError" and state is State.OPEN:
            yield f"{who}'s {kind} refused while the FD is OPEN and no close began"
        if result == "ok" and not fn_started:
            yield f"{who}'s {kind} returned without calling fn"
        return
    detach = kind.startswith("detach")
    if result == "TimeoutError":
        if who != owner:
            yield f"{who}'s {kind} timed out but did not begin the close (owner: {owner})"
        if borrows_at_close == 0:
            yield f"{who}'s {kind} timed out though no borrow ran when it began (guarantee 8)"
        return
    # Guarantee 5: any closer that returns, however, finds close_func finished.
    if state is not State.CLOSED:
        yield (
            f"{who}'s {kind} returned {result} while the FD is {state.name}, "
            "not CLOSED (guarantee 5)"
        )
    if who == owner:
        expected = (
            DETACH_RESULT
            if detach
            else "CloseFuncError"
            if world.scenario.close_func_raises
            else "ok"
        )
        if result != expected:
            yield f"{who} began the close, so its {kind} must return {expected}, not {result}"
        if not detach and not close_func_done:
            yield f"{who}'s {kind} returned before close_func finished (guarantee 5)"
    elif result != "ClosedFDError":
        yield (
            f"{who}'s {kind} returned {result}, but {owner} began the close: "
            "it must wait, then raise ClosedFDError (guarantee 5)"
        )


def _check_end(
    world: World,
    state: State,
    owner: str | None,
    close_funcs: int,
    on_closings: int,
    holds: dict[str, list[tuple[int, State]]],
    running: Counter[str],
) -> Iterator[str]:
    """The FD once every thread has ended."""
    fd = world.fd
    unfinished = [f"{c.who}: {c.kind}" for c in world.calls if c.result is None]
    if unfinished:
        yield f"at the end: calls never returned: {unfinished}"
    count = len(fd._holders) if fd is not None else 0  # None: a hand-written log, no FD
    left = {t: len(hs) for t, hs in holds.items() if hs}
    if count != 0 or left or any(running.values()):
        yield (
            f"at the end: borrow_count={count}, logged holds={left}, "
            f"bodies running={dict(running)}; all must be 0 (borrow count exact)"
        )
    if fd is not None and fd.state is not state:
        yield f"at the end: fd.state is {fd.state.name} but the log says {state.name}"
    if owner is None:
        if state is not State.OPEN or close_funcs:
            yield (
                f"at the end: no close began, yet state={state.name}, close_func ran {close_funcs}x"
            )
        return
    owner_calls = [c for c in world.calls if c.who == owner and c.kind.startswith(CLOSE_KINDS)]
    handed_over = any(c.result == DETACH_RESULT for c in owner_calls)
    if state is not State.CLOSED:
        yield f"at the end: a close began and every borrow ended, yet the FD is {state.name}"
    expected = 0 if handed_over else 1
    if close_funcs != expected:
        yield f"at the end: close_func ran {close_funcs}x, expected {expected} (guarantee 1)"
    if world.scenario.on_closing and on_closings != 1:
        yield f"at the end: on_closing ran {on_closings}x, expected once"


# -- exploring, saving, replaying ---------------------------------------------


@dataclass(frozen=True)
class Run:
    """One exploration of one scenario with one strategy."""

    scenario: Scenario
    strategy: str  # "dfs", "random" or "pct"
    granularity: str  # "line" or "opcode"
    schedules: int
    exhausted: bool
    seconds: float
    failure: it.Failure | None
    max_preemptions: int = 0
    seed: int | None = None
    outcomes: tuple[tuple[str, int], ...] = ()  # distinct call results seen, with counts

    @property
    def label(self) -> str:
        if self.strategy == "dfs":
            return f"dfs(preemptions<={self.max_preemptions}, {self.granularity})"
        return f"{self.strategy}(seed={self.seed}, {self.granularity})"


def explore(
    scenario: Scenario,
    strategy: str,
    *,
    granularity: str,
    iterations: int,
    max_preemptions: int = 1,
    seed: int = 0,
) -> Run:
    """Explore `scenario`; stop at the first failing schedule (it is in `.failure`)."""
    strat: str | it.Strategy = strategy
    if strategy == "dfs":
        strat = it.DFSStrategy(max_preemptions=max_preemptions)
    elif strategy == "pct":
        strat = it.PCTStrategy(depth=3)
    OUTCOMES.clear()
    with _no_gc():
        result = it.explore(
            model_for(scenario),
            iterations=iterations,
            seed=seed,
            strategy=strat,
            granularity=granularity,
            include=[RCFD_DIR],
            raise_on_failure=False,
        )
    return Run(
        scenario,
        strategy,
        granularity,
        result.schedules_run,
        result.exhausted,
        result.elapsed,
        result.failure,
        max_preemptions,
        None if strategy == "dfs" else seed,
        tuple(sorted(OUTCOMES.items())),
    )


def save_failure(run: Run, directory: Path) -> Path:
    """Store a failing schedule as JSON; `tools/explore.py --replay PATH` reruns it."""
    failure = run.failure
    assert failure is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.scenario.name.replace('/', '-')}-{run.strategy}.json"
    record = {
        "scenario": run.scenario.name,
        "search": run.label,
        "kind": failure.kind,
        "schedule": json.loads(failure.schedule.to_json()),
        "report": failure.format(),
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def replay(scenario: Scenario, path: Path) -> it.Result:
    """Rerun one saved schedule exactly (same Python version as the recording)."""
    record = json.loads(path.read_text())
    schedule = it.Schedule.from_json(json.dumps(record["schedule"]))
    with _no_gc():
        return it.replay(model_for(scenario), schedule, include=[RCFD_DIR], raise_on_failure=False)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while interleave-test runs.

    A collection can start at any allocation, including inside the
    scheduler while it holds its own lock; finalizing an FD from an earlier
    schedule there runs FD.__del__, traced code in rcfd/, whose scheduling
    point waits for that same lock: the whole run hangs. A collection at a
    random point would also break replay, which must see the same
    scheduling points every time. So collect only between explorations.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        # No scenario gives rcfd a reason to warn (its RuntimeWarning reports a
        # close_func error nobody waits for): a warning is a failed call.
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()
