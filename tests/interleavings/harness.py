"""Run a scenario under interleave-test's controlled scheduler and check the
guarantees of specs/rcfd.md on every schedule it explores.

How the production FD is observed. interleave-test serializes the threads
of a scenario and chooses who runs next at every scheduling point: each
line (or bytecode instruction) of rcfd/, FD._guard's included, and each Lock
operation (rcfd's module lock too: `_modelled_shared_lock`). Only rcfd/
is traced (`include=`), so this file's code runs atomically between two
points. `MonitoredFD` is the production FD with the fields that carry the
state and the count replaced by logging versions: `_state`; `_holders`, the
array a borrow inserts its thread into and close() freezes (`HoldList`),
which init() publishes as its last store (the FD's opening: until then it is
the shared, frozen `_NO_BORROWS` and the FD is UNINIT whatever `_state`
says); and each closer's `released`, where a release after the freeze writes
its tombstone (`Tombstones`). Every change the FD makes to them (with or
without a lock) is appended to one event log, in the order it happened, with
the state and `borrow_count` right after it. The actors append their calls and
returns, the borrow bodies, on_closing and close_func to the same log. After
the threads end, `violations` replays the log against the guarantees; a
violation fails the schedule with the whole timeline, and interleave-test
reports the schedule, which `save_failure` stores as JSON for
`tools/explore.py --replay`. A schedule that deadlocks never reaches the
checks: `describe_failure` gives its log up to that point, checked so far.

Requires Python 3.12+ (interleave-test is built on sys.monitoring).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import re
import threading
import time
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, cast

import interleave_test as it

import rcfd
from rcfd import FD, LifetimeRegistry, _fd
from rcfd._fd import _Closer
from rcfd._lifecycle import State

RCFD_DIR = os.path.dirname(os.path.abspath(rcfd.__file__))  # the only traced code
RAWFD = 7  # never a real descriptor: close_func is a recorder, not os.close
OTHER_RAWFD = 8  # what a second initer passes (two_inits): the loser's number
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


# The detail of the hold that close() takes for the thread that begins it.
OWNER_HOLD = "+= (close: the owner's borrow)"


class HoldList(array[int]):
    """FD._holders that logs each borrow taken and returned.

    An array("L") of thread idents, like the production one, so that close()
    freezes it the same way: the memoryview export it stores in
    `_closer.freeze` is an export of this object, and every resize below goes
    through the base class, which raises BufferError once it is frozen. The
    log line comes after the base call: a refused insert (or a remove that
    meets the freeze) raises before anything is logged.

    rcfd changes the holders only by insert (a borrow, at the front), remove
    (a release in OPEN) and `+=` (the owner's borrow in close); `append` is
    logged too, so that a borrow written either way is seen. Any other change
    would go unlogged and show up as a count mismatch (`violations`).
    """

    _world: World

    def __new__(cls, world: World) -> Self:
        # array takes its typecode in __new__ (it has no __init__), so a
        # subclass with other constructor arguments must make it here.
        holders = cast(Self, super().__new__(cls, "L"))
        holders._world = world
        return holders

    def insert(self, index: int, tid: int, /) -> None:
        super().insert(index, tid)  # BufferError once frozen: a refused borrow logs nothing
        self._world.log("hold", "insert")

    def append(self, tid: int, /) -> None:
        super().append(tid)  # as insert: refused once frozen, then nothing is logged
        self._world.log("hold", "append")

    def remove(self, tid: int, /) -> None:
        super().remove(tid)  # BufferError once frozen: the release writes a tombstone
        self._world.log("unhold", "remove")

    # array's own __iadd__ takes an array only (typeshed ignores the same clash).
    def __iadd__(self, tids: array[int], /) -> Self:  # type: ignore[override]
        added = list(tids)  # before the resize: `holders += holders` must log each once
        super().__iadd__(tids)
        for _ in added:
            self._world.log("hold", OWNER_HOLD)
        return self


class Tombstones(list[int]):
    """`_Closer.released` that logs each tombstone (a release after the freeze)
    as "unhold": it ends a borrow exactly as a remove does in OPEN."""

    def __init__(self, world: World, fd: FD) -> None:
        super().__init__()
        self._world = world
        self._fd = fd


def _logged_tombstones(self: Tombstones, tids: Iterable[int], /) -> Tombstones:
    for tid in tids:
        list.append(self, tid)
        closer = self._fd._closer
        current = closer is not None and closer.released is self
        # A tombstone in a closer the FD no longer has does not lower its count.
        self._world.log("unhold", "tombstone" if current else "tombstone (in a replaced closer)")
    return self


# rcfd writes a tombstone with `closer.released += (tid,)`. Set after the class
# body: a list subclass cannot declare an __iadd__ that mypy finds compatible
# with list.__add__, yet the runtime needs one that logs.
setattr(Tombstones, "__iadd__", _logged_tombstones)  # noqa: B010


def is_frozen(holders: array[int]) -> bool:
    """Whether `holders` refuses a resize (close() froze it): tried with the
    base append, which logs nothing, and undone at once (any resize is refused
    by the freeze alike, insert included). Call it only from
    this file's code, which runs without scheduling points."""
    try:
        array.append(holders, 0)
    except BufferError:
        return True
    array.pop(holders)
    return False


class MonitoredFD(FD):
    """The production FD; only its state, holders and tombstones log their writes.

    `_state`, `_holders` and `_closer` are properties over the production
    slots. The FD's observable state is the one `FD.state` defines: UNINIT
    while `_holders` is the shared `_NO_BORROWS`, else `_state`. So a write of
    `_state` before init publishes its holders is logged as "written" (nobody
    sees it yet), and the publication, init's last store, as the "state"
    change UNINIT -> OPEN. Each holders array that init installs becomes a
    logging HoldList before anyone can borrow from it; `_NO_BORROWS` keeps
    its identity (rcfd tells UNINIT by it). Each closer that close() installs
    gets a logging `released` list before any release can write to it (the
    closer is set under the lock, before the freeze that sends releases there).
    """

    def __init__(
        self, world: World, on_closing: Callable[[int], object] | None, *, uninit: bool = False
    ) -> None:
        self._world = world
        self._shadow_state = State.UNINIT
        self._shadow_holders: array[int] = _fd._NO_BORROWS
        self._shadow_closer: _Closer | None = None
        if uninit:
            super().__init__()  # FD(): init is the scenario's to call
        else:
            super().__init__(RAWFD, world.close_func, on_closing=on_closing)

    def observed_state(self) -> State:
        """`FD.state` as specs/rcfd.md defines it, read without scheduling points."""
        return State.UNINIT if self._shadow_holders is _fd._NO_BORROWS else self._shadow_state

    def _installed(self) -> str:
        """What init installed: the number and whose close_func."""
        return f"rawfd={self._rawfd}, {self._world.close_func_name(self._close_func)}"

    @property
    def _state(self) -> State:
        return self._shadow_state

    @_state.setter
    def _state(self, new: State) -> None:
        old = self._shadow_state
        self._shadow_state = new
        if new is not old:
            if self._shadow_holders is _fd._NO_BORROWS:
                self._world.log("written", f"_state = {new.name} (holders not published: UNINIT)")
            else:
                opened = f" ({self._installed()})" if old is State.UNINIT else ""
                self._world.log("state", f"{old.name} -> {new.name}{opened}")
            if new is not State.OPEN and not is_frozen(self._holders):
                # rcfd freezes the holders before it writes a closing state.
                self._world.log("unfrozen", f"{new.name}, yet a borrow's insert would succeed")

    @property
    def _holders(self) -> array[int]:
        return self._shadow_holders

    @_holders.setter
    def _holders(self, new: array[int]) -> None:
        old = self._shadow_holders
        if new is not _fd._NO_BORROWS and not isinstance(new, HoldList) and not is_frozen(new):
            held = HoldList(self._world)  # init's fresh array, logged from now on
            array.extend(held, new)  # empty: init publishes before any borrow
            new = held
        self._shadow_holders = new
        if new is old:
            return
        if old is not _fd._NO_BORROWS:
            self._world.log("republished", f"holders ({len(old)} borrow(s) in the replaced ones)")
        elif self._shadow_state is State.OPEN:
            self._world.log("state", f"UNINIT -> OPEN (holders published: {self._installed()})")
        else:
            self._world.log("published", f"holders, while _state is {self._shadow_state.name}")

    @property
    def _closer(self) -> _Closer | None:
        return self._shadow_closer

    @_closer.setter
    def _closer(self, new: _Closer | None) -> None:
        if new is not None and not isinstance(new.released, Tombstones):
            tombstones = Tombstones(self._world, self)
            list.extend(tombstones, new.released)  # none yet: nothing released before
            new.released = tombstones
        self._shadow_closer = new


def live_borrows(fd: FD) -> int:
    """fd.borrow_count: len(_holders) minus the tombstones, as rcfd counts.

    borrow_count is rcfd code, which interleave-test traces: read here without
    scheduling points, so that a log line and the change it records stay one
    step (and the read adds no decisions to the schedules)."""
    with it.no_interleave():
        return fd.borrow_count


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
    uninit: bool = False  # starts from FD(): its actors init it (else FD(RAWFD, ...), OPEN)
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
    # The log's counts are an FD's borrow_count (False: a hand-written log).
    counted: bool = False
    events: list[Ev] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    stacks: dict[str, list[Call]] = field(default_factory=dict)
    fns: Counter[str] = field(default_factory=Counter)  # borrow bodies started, per thread
    fd: MonitoredFD | None = None
    # Looked up at call time, so that inside a run it is interleave-test's Event.
    gate: threading.Event = field(default_factory=lambda: threading.Event())
    # What each initer passes to init(): its number and its own close_func.
    inits: dict[str, tuple[int, Callable[[int], None]]] = field(default_factory=dict)
    # What a tracker passes to track_lifetime(); made inside the run (its lock is modelled).
    registry: LifetimeRegistry | None = None

    def who(self) -> str:
        return self.names.get(threading.get_ident(), "?")

    def log(self, what: str, detail: str) -> None:
        fd = self.fd
        state = None if fd is None else fd.observed_state()
        borrows = 0 if fd is None else live_borrows(fd)
        self.events.append(Ev(self.who(), what, detail, state, borrows))

    def timeline(self) -> str:
        return "\n".join(ev.render(i) for i, ev in enumerate(self.events))

    # What the FD calls back.

    def close_func(self, rawfd: int, whose: str = "main") -> None:
        self.log("close_func", f"rawfd={rawfd}" + ("" if whose == "main" else f" ({whose}'s)"))
        switch_point()  # other threads may act while close_func runs
        self.log("close_func_end", "")
        if self.scenario.close_func_raises:
            raise CloseFuncError(errno.EIO, "close_func failed (planted by the scenario)")

    def close_func_for(self, initer: str, rawfd: int) -> Callable[[int], None]:
        """The close_func `initer` passes to init(rawfd, ...): logged as its own."""

        def close_func(rawfd: int) -> None:
            self.close_func(rawfd, initer)

        self.inits[initer] = (rawfd, close_func)
        return close_func

    def close_func_name(self, close_func: Callable[[int], object]) -> str:
        if close_func == self.close_func:
            return "main's close_func"
        whose = [name for name, (_, f) in self.inits.items() if f is close_func]
        return f"{whose[0]}'s close_func" if whose else f"close_func {close_func!r}"

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
        except it.InterleaveError:
            raise  # the scheduler's own (a replay that diverged): not the call's result
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
        if rawfd not in (RAWFD, OTHER_RAWFD):
            self.log("bad_rawfd", f"fn got {rawfd}, a number no init passed")
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
        with _modelled_shared_lock():
            run_scenario()

    def run_scenario() -> None:
        global LAST_WORLD
        world = LAST_WORLD = World(scenario)
        world.names[threading.get_ident()] = "main"
        on_closing = world.on_closing if scenario.on_closing else None
        assert not (scenario.uninit and on_closing), "FD() takes no on_closing: init does"
        world.fd = fd = MonitoredFD(world, on_closing, uninit=scenario.uninit)
        world.registry = LifetimeRegistry()
        world.counted = True
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
            if not problems and fd.observed_state() is State.OPEN:
                # Its close was refused (UNINIT then): closed here, after the
                # checks, rather than by the finalizer with a ResourceWarning.
                fd.close()
        finally:
            world.fd = None  # break world <-> fd, so that FD.__del__ runs when main ends
        if problems:
            raise AssertionError(
                f"{scenario.name}: " + "\n".join(problems) + "\n\ntimeline:\n" + world.timeline()
            )

    model.__name__ = scenario.name.replace("/", "_")
    return model


@contextlib.contextmanager
def _modelled_shared_lock() -> Iterator[None]:
    """rcfd's module lock (`_SHARED_LOCK`: the lock of an FD that has none of
    its own yet, taken by init, track_lifetime and FD._guard), as one of
    interleave-test's locks for the length of one schedule.

    interleave-test models the locks made inside a run (it patches
    threading.Lock and RLock then: the FD's own lock, made by FD._guard, is
    one); this one was made when rcfd was imported, so it is a real lock, and
    a thread that blocked on it while the scheduler had preempted its holder
    would block for good (the run ends as a hang). Its modelled stand-in
    blocks the same way, but as the scheduler sees it: acquiring it is a
    scheduling point, and the holder runs on.
    """
    real = _fd._SHARED_LOCK
    _fd._SHARED_LOCK = threading.RLock()  # made inside the run: interleave-test's RLock
    try:
        yield
    finally:
        _fd._SHARED_LOCK = real


# -- the guarantees ----------------------------------------------------------

BORROW_RESULTS = frozenset({"ok", "ClosedFDError", "UninitializedFDError"})
CLOSE_RESULTS = frozenset(
    {"ok", "ClosedFDError", "UninitializedFDError", "CloseInsideBorrowError", "TimeoutError"}
    | {"CloseFuncError", DETACH_RESULT}
)
INIT_RESULTS = frozenset({"ok", "MultipleInitError", "ClosedFDError"})
TRACK_RESULTS = frozenset({"ok", "MultipleInitError"})
CLOSE_KINDS = ("close", "detach")
# A refused call raises one of these and must change nothing (guarantee 10);
# ClosedFDError refuses a borrow, an init or a track, but ends a close that waited.
REFUSALS = frozenset({"UninitializedFDError", "MultipleInitError", "CloseInsideBorrowError"})
ESCAPED = (
    "no exception but rcfd's documented errors may escape (a BufferError is a "
    "frozen holders array's refusal leaking out: the shared UNINIT one, or a close's)"
)
# "UNINIT -> OPEN (holders published: rawfd=7, main's close_func)"
OPENED_WITH = re.compile(r"rawfd=(-?\d+), (.+)\)$")


def _used_holds(events: list[Ev]) -> set[int]:
    """Indices of the hold events under which something used the number.

    A refused borrow logs no hold (its insert fails on the freeze), but a
    hold can still be given back unused: the closer's own borrow without
    on_closing, or a borrow taken back after an interrupt. Such a hold is not
    a borrow that runs. A hold is used when its thread calls fn (or, for the
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


def violations(world: World, *, ended: bool = True) -> list[str]:
    """Every guarantee of specs/rcfd.md this schedule's log breaks (empty: none).

    ended=False checks a log cut short (a deadlock: the threads never end)
    up to its last line, without the checks of the end state.
    """
    problems: list[str] = []
    state = State.UNINIT
    used = _used_holds(world.events)
    holds: dict[str, list[tuple[int, State]]] = {}  # per thread: (hold index, state then)
    running: Counter[str] = Counter()  # borrow bodies running, per thread
    owner: str | None = None  # who moved OPEN -> CLOSING
    borrows_at_close = 0  # holds when the close began (the closer's own excluded)
    owning: dict[str, int] = {}  # who holds the borrow of a close it began, from which line
    count_mismatch = not world.counted  # a hand-written log has no counts to compare
    close_funcs = on_closings = 0
    close_func_done = False
    open_calls: dict[str, list[int]] = {}  # per thread: log index of each call not returned
    held_at_call: dict[str, list[int]] = {}  # per thread: its holds as each open call began
    state_at_call: dict[int, State] = {}  # log index of each call: the state as it began
    close_func_at: dict[str, int] = {}  # who ran close_func, at which log index
    opened: tuple[int, str] | None = None  # what the init installed: rawfd, whose close_func
    inits_ok: list[str] = []  # who returned from a successful init

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
            old, new = ev.detail.split(" (")[0].split(" -> ")
            if (old, new) not in (("UNINIT", "OPEN"), ("OPEN", "CLOSING"), ("CLOSING", "CLOSED")):
                fail(i, f"state went {old} -> {new}: states are entered once, in order")
            state = State[new]
            installed = OPENED_WITH.search(ev.detail)
            if state is State.OPEN and installed:
                opened = (int(installed[1]), installed[2])
                passed = world.inits[who][0] if who in world.inits else None
                if passed is not None and opened != (passed, f"{who}'s close_func"):
                    fail(
                        i,
                        f"{who}'s init published its holders with rawfd={opened[0]} and "
                        f"{opened[1]} installed, not the rawfd={passed} and close_func it "
                        "passed: the borrows and the close from here on use those",
                    )
            if state is State.CLOSING:
                # The owner's own borrow (its `+=`) is logged before CLOSING;
                # it cannot hold another (close inside a borrow is refused).
                owner = who
                borrows_at_close = sum(len(hs) for t, hs in holds.items() if t != who)
            if state is State.CLOSED and running_borrows():
                fail(i, f"CLOSED while borrows run: {running_borrows()} (guarantee 1)")
        elif ev.what == "hold":
            mine.append((i, state))
            if ev.detail == OWNER_HOLD:
                if owning:
                    fail(
                        i,
                        f"{who} began a close while {', '.join(owning)} (#"
                        f"{', #'.join(map(str, owning.values()))}) still runs the one it "
                        "began: two owners; transitions must be ordered by one lock (guarantee 5)",
                    )
                owning[who] = i
        elif ev.what == "unhold":
            if not mine:
                fail(i, f"{who} released a borrow it did not hold")
            else:
                index, _ = mine.pop()
                if owning.get(who) == index:
                    del owning[who]
        elif ev.what == "published":
            fail(
                i,
                f"{who}'s init published its {ev.detail}: borrows succeed while the FD "
                "reads UNINIT (_holders is _NO_BORROWS <=> state is UNINIT)",
            )
        elif ev.what == "republished":
            fail(
                i,
                f"{who} {ev.what} {ev.detail}: a second init got past its check, and "
                "a borrow counted in the first holders is lost (at most one init succeeds)",
            )
        elif ev.what == "fn":
            if not mine:
                fail(i, f"{who}'s fn runs without a borrow (guarantee 1)")
            elif mine[-1][1] is State.UNINIT:
                fail(
                    i,
                    f"{who}'s fn runs under a borrow taken in UNINIT (#{mine[-1][0]}), "
                    "before an init published the holders: a borrow succeeds only after one",
                )
            elif mine[-1][1] is not State.OPEN:
                fail(
                    i,
                    f"{who}'s fn runs under a borrow taken in {mine[-1][1].name} "
                    f"(#{mine[-1][0]}), after close began (guarantee 2)",
                )
            if close_funcs:
                fail(i, f"{who}'s fn runs after close_func started (guarantees 1, 2)")
            if opened is not None and ev.detail != f"rawfd={opened[0]}":
                fail(i, f"{who}'s fn got {ev.detail}, but init installed rawfd={opened[0]}")
            running[who] += 1
        elif ev.what == "fn_end":
            running[who] -= 1
        elif ev.what == "bad_rawfd":
            fail(i, f"{who}: {ev.detail}")
        elif ev.what == "unfrozen":
            fail(
                i,
                f"state {ev.detail}: close did not freeze the holders, so new "
                "borrows are not refused (guarantee 2)",
            )
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
            rawfd, _, whose = ev.detail.partition(" (")
            called = (whose.removesuffix("'s)") or "main") + "'s close_func"
            if opened is not None and (rawfd, called) != (f"rawfd={opened[0]}", opened[1]):
                fail(
                    i,
                    f"{called} called with {rawfd}, but init installed "
                    f"{opened[1]} with rawfd={opened[0]}: only the initialized "
                    "number is closed, by its own close_func",
                )
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
            held_at_call.setdefault(who, []).append(len(mine))
            state_at_call[i] = state
        elif ev.what == "return":
            kind, result = ev.detail.split(": ", 1)
            began = open_calls.get(who, [-1]).pop() if open_calls.get(who) else -1
            held = held_at_call[who].pop() if held_at_call.get(who) else len(mine)
            if len(mine) > held:
                fail(
                    i,
                    f"{who}'s {kind} returned with {len(mine) - held} borrow(s) it took still "
                    "counted: no release (remove or tombstone) was logged (guarantee 3)",
                )
            refused = result == "ClosedFDError" and not kind.startswith(CLOSE_KINDS)
            if refused and began < close_func_at.get(who, -1):
                fail(
                    i,
                    f"{who}'s {kind} was refused, yet ran close_func (#{close_func_at[who]}) "
                    "before raising: a refused borrow must raise at once, without "
                    "blocking (guarantee 2)",
                )
            if (refused or result in REFUSALS) and began >= 0:
                # Whatever the FD logged on this thread during a refused call is a change.
                done = [
                    f"#{j} {e.what} {e.detail}"
                    for j, e in enumerate(world.events[began + 1 : i], began + 1)
                    if e.who == who and e.what not in ("call", "return")
                ]
                if done:
                    fail(
                        i,
                        f"{who}'s {kind} was refused ({result}), yet it changed the FD: "
                        f"{'; '.join(done)} (guarantee 10: a refused call changes nothing)",
                    )
            if kind.startswith("init") and result == "ok":
                inits_ok.append(who)
                if len(inits_ok) > 1:
                    fail(i, f"a second init succeeded ({', '.join(inits_ok)}): at most one does")
            problems.extend(
                f"at #{i}: {p}"
                for p in _check_return(
                    world,
                    who,
                    kind,
                    result,
                    state,
                    state_at_call.get(began, state),
                    owner,
                    borrows_at_close,
                    close_func_done,
                )
            )

        logged = sum(len(hs) for hs in holds.values())
        if not count_mismatch and ev.borrows != logged:
            count_mismatch = True  # reported once: every later line would repeat it
            fail(
                i,
                f"borrow_count={ev.borrows}, but the log has {logged} borrow(s) held: "
                "a change of the count went unlogged, or a logged one did not change it "
                "(borrow count exact)",
            )

    if ended:
        problems.extend(_check_end(world, state, owner, close_funcs, on_closings, holds, running))
        problems.extend(_check_inits(world, inits_ok))
    elif state is State.CLOSING and not close_funcs and not any(holds.values()):
        # The threads stopped for good here (a deadlock), so nobody will run it.
        last = max((i for i, ev in enumerate(world.events) if ev.what == "unhold"), default=-1)
        fail(
            last,
            "the last borrow was released in CLOSING, yet no thread ran close_func and "
            "none will: a lost wake-up (guarantees 4, 8)",
        )
    elif state in (State.UNINIT, State.OPEN):
        for waiting, starts in open_calls.items():
            for start in starts:
                kind = world.events[start].detail
                if kind.startswith(CLOSE_KINDS):
                    fail(
                        start,
                        f"{waiting}'s {kind} never returned, yet the FD is still "
                        f"{state.name}: no close began for it to wait for (no freeze, no CLOSING)",
                    )
    return problems


def _check_return(
    world: World,
    who: str,
    kind: str,
    result: str,
    state: State,
    began_in: State,
    owner: str | None,
    borrows_at_close: int,
    close_func_done: bool,
) -> Iterator[str]:
    """What a call may return, given the log up to its return (`state`) and
    the state as it began (`began_in`): states only move forward, so a call
    refused as UNINIT must have begun in UNINIT, and one refused because an
    init came first must end after it."""
    call = next((c for c in reversed(world.calls) if c.who == who and c.kind == kind), None)
    fn_started = call is not None and world.fns[who] > call.fns_before  # None: hand-written log
    if result == "UninitializedFDError" and began_in is not State.UNINIT:
        yield f"{who}'s {kind} was refused as UNINIT, yet the FD was {began_in.name} when called"
    if kind.startswith(("init", "track")):
        allowed = INIT_RESULTS if kind.startswith("init") else TRACK_RESULTS
        if result not in allowed:
            yield f"{who}'s {kind} ended with {result}: {ESCAPED}"
        elif result == "ok" and began_in is not State.UNINIT:
            yield (
                f"{who}'s {kind} succeeded, yet the FD was {began_in.name} when called: "
                "only an UNINIT FD accepts it (MultipleInitError)"
            )
        elif result == "MultipleInitError" and state is State.UNINIT:
            yield f"{who}'s {kind} raised MultipleInitError, yet no init has opened the FD"
        elif result == "ClosedFDError" and state in (State.UNINIT, State.OPEN):
            yield f"{who}'s {kind} raised ClosedFDError while the FD is {state.name}"
        return
    if not kind.startswith(CLOSE_KINDS):
        if result not in BORROW_RESULTS:
            yield f"{who}'s {kind} ended with {result}: {ESCAPED}"
        if result == "ClosedFDError" and fn_started:
            yield f"{who}'s {kind} raised ClosedFDError after calling fn (guarantee 2)"
        if result == "ClosedFDError" and state in (State.UNINIT, State.OPEN):
            yield f"{who}'s {kind} refused while the FD is {state.name} and no close began"
        if result == "ok" and not fn_started:
            yield f"{who}'s {kind} returned without calling fn"
        return
    if result not in CLOSE_RESULTS:
        yield f"{who}'s {kind} ended with {result}: {ESCAPED}"
        return
    if result in REFUSALS:
        return  # refused at once: checked above and by the caller (nothing changed)
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
    count = live_borrows(fd) if fd is not None else 0  # None: a hand-written log, no FD
    left = {t: len(hs) for t, hs in holds.items() if hs}
    if count != 0 or left or any(running.values()):
        yield (
            f"at the end: borrow_count={count}, logged holds={left}, "
            f"bodies running={dict(running)}; all must be 0 (borrow count exact)"
        )
    if fd is not None and fd.state is not state:
        yield f"at the end: fd.state is {fd.state.name} but the log says {state.name}"
    if fd is not None and is_frozen(fd._holders) != (state is not State.OPEN):
        yield (
            f"at the end: the FD is {state.name} and its holders are "
            f"{'frozen' if is_frozen(fd._holders) else 'not frozen'}: frozen <=> not OPEN, "
            "else a borrow is refused while OPEN or taken after close began"
        )
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


def _check_inits(world: World, inits_ok: list[str]) -> Iterator[str]:
    """After the threads ended: of the scenario's inits exactly one succeeded,
    and the FD holds what it passed; a tracker's registry saw the init iff
    its track_lifetime() succeeded (a refused one changed nothing)."""
    fd = world.fd
    if not world.inits or fd is None:  # an FD opened by its constructor, or a hand-written log
        return
    if len(inits_ok) != 1:
        yield (
            f"at the end: {len(inits_ok)} init(s) succeeded ({', '.join(inits_ok) or 'none'}); "
            "exactly one must, the others raise MultipleInitError and change nothing"
        )
        return
    rawfd, close_func = world.inits[inits_ok[0]]
    if (fd._rawfd, fd._close_func) != (rawfd, close_func):
        yield (
            f"at the end: the FD holds rawfd={fd._rawfd} and "
            f"{world.close_func_name(fd._close_func)}, but the init that succeeded "
            f"({inits_ok[0]}) passed rawfd={rawfd} and its own close_func"
        )
    tracks = [c for c in world.calls if c.kind.startswith("track")]
    if not tracks or world.registry is None:
        return
    tracked = any(c.result == "ok" for c in tracks)
    with it.no_interleave():
        initialized = world.registry.fd_stats().initialized
    attached = fd._registry is world.registry
    if (attached, initialized) != (tracked, int(tracked)):
        reports_to = "the tracker's registry" if attached else "another registry"
        if fd._registry is None:
            reports_to = "no registry"
        yield (
            f"at the end: track_lifetime {'succeeded' if tracked else 'was refused'}, yet the "
            f"FD reports to {reports_to}, and the tracker's counted {initialized} init(s): "
            "a tracked FD reports its init, a refused track changes nothing (guarantee 10)"
        )


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


def describe_failure(failure: it.Failure, *, max_steps: int = 40) -> str:
    """interleave-test's report of a failing schedule, and for a deadlock or a
    hang (whose model never reached its checks) the timeline up to the point
    where the threads stopped, with what that much of the log already breaks.

    Call it right after the failing exploration or replay: the timeline is the
    latest schedule's (LAST_WORLD).
    """
    report = failure.format(max_steps=max_steps)
    world = LAST_WORLD
    if failure.kind == "exception" or world is None:
        return report  # the AssertionError already carries the checks and the timeline
    problems = violations(world, ended=False)
    broken = "\n".join(problems) if problems else "(nothing yet: the threads only stopped)"
    stuck = ", ".join(f"{c.who}: {c.kind}" for c in world.calls if c.result is None) or "none"
    return (
        f"{report}\n\n{world.scenario.name}: the log up to the {failure.kind} breaks:\n"
        f"{broken}\ncalls that never returned: {stuck}\n\n"
        f"timeline up to the {failure.kind}:\n{world.timeline()}"
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
