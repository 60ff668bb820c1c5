"""Run a scenario under interleave-test's controlled scheduler and check the
guarantees of specs/rcfd.md on every schedule it explores.

interleave-test serializes the threads and picks who runs next at every
scheduling point: each line (or bytecode instruction) of rcfd/, and each lock
operation; the harness's own code is not traced, so it runs atomically. Each
schedule is one model.history.History (rcfd's seam logs its steps, the actors
their calls, fns and callbacks). When the actors have ended, main borrows
once more (refused iff the FD is not OPEN) and closes an FD left OPEN, and
model.guarantees.history_violations checks the history; a violation fails the
schedule with its timeline. A deadlock never gets there: `describe_failure`
checks the history as far as it got. Requires Python 3.12+ (sys.monitoring).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import interleave_test as it
from interleave_test._primitives import RLock as ModelledRLock
from interleave_test._scheduler import current_scheduler

import rcfd
from conformance.drivers.rcfd_seam import Seam, installed
from conformance.drivers.rcfd_threads import CloseFuncError, counts, holding, label
from model.guarantees import Run, history_violations
from model.history import History, collector_off, warnings_logged
from model.vocabulary import OK, OK_FN, OK_RAWFD
from rcfd import FD, LifetimeRegistry, _fd

RCFD_DIR = os.path.dirname(os.path.abspath(rcfd.__file__))  # the only traced code
RAWFD = 7  # never a real descriptor: close_func is a recorder, not os.close
OTHER_RAWFD = 8  # what a second initer passes (two_inits): the loser's number
FN_VALUE = "fn-value"


def switch_point() -> None:
    """Let the scheduler run another thread here (interleave-test replaces
    time.sleep inside a run with a scheduling point that returns at once)."""
    time.sleep(0)


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
    # What close_func or on_closing calls on its own FD, one call each:
    # ("close_func" or "on_closing", (call word, ...)), e.g. ("close_func", ("close",)).
    reenter: tuple[str, tuple[str, ...]] = ("", ())
    held: bool = False  # main enters a generator's borrow first: a borrow held by garbage
    about: str = ""


@dataclass
class World:
    """Everything one schedule of one scenario shares: the FD and its history."""

    scenario: Scenario
    history: History = field(default_factory=lambda: History(seam=True))
    fd: FD | None = None
    # Looked up at call time, so that inside a run it is interleave-test's Event.
    gate: threading.Event = field(default_factory=lambda: threading.Event())
    # What a tracker passes, made again inside the locks model() models.
    registry: LifetimeRegistry = field(default_factory=LifetimeRegistry)
    held: list[Generator[int, None, None]] = field(default_factory=list)

    def who(self) -> str:
        return self.history.who()

    def the_fd(self) -> FD:
        assert self.fd is not None  # model_for builds the FD before it starts any actor
        return self.fd

    def observe(self) -> tuple[str, int]:
        fd = self.fd
        if fd is None:
            return "", -1
        with it.no_interleave():  # rcfd code, traced: read it without scheduling points
            return fd.state.name, fd.borrow_count

    def call(self, kind: str, thunk: Callable[[], object]) -> None:
        """Make one rcfd call, logging it and what it returned."""
        self.history.log("call", kind)
        try:
            value = thunk()
        except it.InterleaveError:
            raise  # the scheduler's own (a replay that diverged): not the call's result
        except Exception as exc:  # the checks decide which exceptions are allowed
            result = label(exc)
        else:
            result = _word(value)
        self.history.log("return", result)

    # What the FD calls back.

    def borrow_body(self, rawfd: int) -> str:
        """The fn of a borrow: runs under it, with a scheduling point inside."""
        self.history.log("fn", f"rawfd={rawfd}")
        switch_point()
        self.history.log("fn_end")
        return FN_VALUE

    def gated_body(self, rawfd: int) -> str:
        """A borrow that stays open until main opens the gate (a blocked syscall)."""
        self.borrow_body(rawfd)
        self.gate.wait()
        return FN_VALUE

    def close_func_for(self, whose: str) -> Callable[[int], None]:
        """The close_func `whose` passes: it records, never closes."""

        def close_func(rawfd: int) -> None:
            self.history.log("close_func", f"rawfd={rawfd} by {whose}'s")
            switch_point()  # other threads may act while close_func runs
            self.reenter("close_func")
            raises = self.scenario.close_func_raises
            self.history.log("close_func_end", f"raised {label(CloseFuncError())}" * raises)
            if raises:
                raise CloseFuncError(errno.EIO, "close_func failed (planted by the scenario)")

        return close_func

    def on_closing(self, rawfd: int) -> None:
        self.history.log("on_closing", f"rawfd={rawfd}")
        switch_point()
        self.reenter("on_closing")
        self.history.log("on_closing_end")

    def reenter(self, callback: str) -> None:
        """A callback calling back into its own FD (Scenario.reenter)."""
        where, calls = self.scenario.reenter
        fd = self.the_fd()
        thunks: dict[str, Callable[[], object]] = {
            "close": fd.close,
            "detach": fd.detach,
            "do": lambda: fd.do(self.borrow_body),
        }
        for name in calls if where == callback else ():
            self.call("begin_borrow(do)" if name == "do" else f"{name}()", thunks[name])

    def run_actor(self, actor: Actor) -> None:
        self.history.names[threading.get_ident()] = actor.name
        actor.body(self)


def _word(value: object) -> str:
    """What a call returned, in the traces' words."""
    if value is None:
        return OK
    return OK_FN if value == FN_VALUE else OK_RAWFD if value == RAWFD else f"ok:{value}"


# What the calls returned, per schedule, across one exploration: which outcomes
# (timeouts, refusals, hand-overs) the schedules actually reached.
OUTCOMES: Counter[str] = Counter()
# The world of the latest schedule: after a deadlock (whose model never reaches
# its checks) its history is the timeline up to the point where every thread blocked.
LAST_WORLD: World | None = None


def _enter(generator: Generator[int, None, None]) -> None:
    next(generator)  # hold_borrow() returns nothing: the generator holds the borrow


def model_for(scenario: Scenario) -> Callable[[], None]:
    """The zero-argument program interleave-test runs once per schedule."""

    def model() -> None:
        global LAST_WORLD
        world = LAST_WORLD = World(scenario)
        world.history.names[threading.get_ident()] = "main"
        world.history.lock = contextlib.nullcontext()  # one thread runs at a time
        world.history.observe = world.observe
        world.history.on_closing = scenario.on_closing
        with _modelled_locks(), installed(Seam(world.history)), warnings_logged(world.history):
            world.registry = LifetimeRegistry()  # its lock modelled, with _is_owned
            problems = run_scenario(world)
        calls = Run(world.history).calls()
        OUTCOMES[" ".join(sorted(f"{c.who}.{c.detail}={c.result}" for c in calls))] += 1
        if problems:
            raise AssertionError(
                f"{scenario.name}: " + "\n".join(problems) + "\n\ntimeline:\n"
                + world.history.timeline()
            )  # fmt: skip

    def run_scenario(world: World) -> list[str]:
        on_closing = world.on_closing if scenario.on_closing else None
        assert not (scenario.uninit and on_closing), "FD() takes no on_closing: init does"
        if scenario.uninit:
            world.fd = fd = FD()  # init is the actors' to call
        else:
            world.history.log("call", f"init(rawfd={RAWFD})")
            world.fd = fd = FD(RAWFD, world.close_func_for("main"), on_closing=on_closing)
            world.history.log("return", OK)
        if scenario.held:  # a borrow of main's, held by a generator the actors close
            world.held.append(holding(fd))
            world.call("hold_borrow()", lambda: _enter(world.held[0]))
        try:
            tasks = [(a, it.spawn(world.run_actor, a, name=a.name)) for a in scenario.actors]
            for actor, task in tasks:
                if not actor.gated:
                    task.join()
            world.gate.set()  # the other actors ended: gated borrows may return now
            for actor, task in tasks:
                if actor.gated:
                    task.join()
            # Refused iff the FD is not OPEN (its holders are frozen iff so); then
            # an FD left OPEN is closed here, by whichever close_func it holds.
            world.call("begin_borrow(do)", lambda: fd.do(world.borrow_body))
            if world.observe()[0] == "OPEN":
                world.call("close(none)", fd.close)
            _log_registry(world)
            return history_violations(world.history)
        finally:
            world.fd = None  # break world <-> fd, so that FD.__del__ runs when main ends
            world.held.clear()

    model.__name__ = scenario.name.replace("/", "_")
    return model


def _log_registry(world: World) -> None:
    """A tracker's registry: "main" if its track_lifetime() succeeded."""
    calls = Run(world.history).calls("track_lifetime")
    if not calls:
        return
    with it.no_interleave():
        stats = world.registry.fd_stats()
    whose = "main" if calls[0].result == OK else "other"
    world.history.log("registry", f"{whose}: {counts(stats)}")


class _OwnedRLock(ModelledRLock):
    """interleave-test's RLock, with the ownership test rcfd's re-entry
    detection asks of CPython's (Closing.begin, Closing.release)."""

    def _is_owned(self) -> bool:
        sched = current_scheduler()
        return sched is not None and self._owner is not None and self._owner is sched.me()


@contextlib.contextmanager
def _modelled_locks() -> Iterator[None]:
    """rcfd's module lock (_SHARED_LOCK) and the class FD._guard makes each
    FD's lock with (_RLock), both taken at import as real locks, which a
    thread would block on for good while the scheduler preempted the holder,
    as modelled ones with `_is_owned`, for the length of one schedule."""
    shared, rlock, fd_rlock = _fd._SHARED_LOCK, threading.RLock, _fd._RLock
    setattr(threading, "RLock", _OwnedRLock)  # noqa: B010 (typeshed's RLock is a function)
    _fd._SHARED_LOCK = threading.RLock()  # an _OwnedRLock, made in the run
    setattr(_fd, "_RLock", _OwnedRLock)  # noqa: B010 (what FD._guard makes each FD's lock with)
    try:
        yield
    finally:
        _fd._SHARED_LOCK = shared
        setattr(_fd, "_RLock", fd_rlock)  # noqa: B010
        setattr(threading, "RLock", rlock)  # noqa: B010


# -- exploring, saving, replaying ---------------------------------------------


@dataclass(frozen=True)
class Exploration:
    """One exploration of one scenario with one strategy."""

    scenario: Scenario
    strategy: str  # "dfs", "random" or "pct"
    label: str  # the strategy with its bound or seed, and the granularity
    schedules: int
    exhausted: bool
    seconds: float
    failure: it.Failure | None
    outcomes: tuple[tuple[str, int], ...] = ()  # distinct call results seen, with counts


def explore(
    scenario: Scenario,
    strategy: str,
    *,
    granularity: str,
    iterations: int,
    max_preemptions: int = 1,
    seed: int = 0,
) -> Exploration:
    """Explore `scenario`; stop at the first failing schedule (it is in `.failure`)."""
    strat: str | it.Strategy = strategy
    label = f"{strategy}(seed={seed}, {granularity})"
    if strategy == "dfs":
        strat = it.DFSStrategy(max_preemptions=max_preemptions)
        label = f"dfs(preemptions<={max_preemptions}, {granularity})"
    elif strategy == "pct":
        strat = it.PCTStrategy(depth=3)
    OUTCOMES.clear()
    # No cyclic collection while interleave-test runs: one can start at any
    # allocation, in the scheduler too, and a finalizer of an earlier
    # schedule's FD run there (traced code) would wait for the scheduler's
    # own lock, and break replays. So collect only between explorations.
    with collector_off():
        result = it.explore(
            model_for(scenario),
            iterations=iterations,
            seed=seed,
            strategy=strat,
            granularity=granularity,
            include=[RCFD_DIR],
            raise_on_failure=False,
        )
    gc.collect()
    found = result.schedules_run, result.exhausted, result.elapsed, result.failure
    return Exploration(scenario, strategy, label, *found, tuple(sorted(OUTCOMES.items())))


def describe_failure(failure: it.Failure, *, max_steps: int = 40) -> str:
    """interleave-test's report of a failing schedule; for a deadlock or a
    hang (which never reached the checks) also the history up to where the
    threads stopped, and what that much of it breaks. Call it right after the
    failing exploration or replay (LAST_WORLD is the latest schedule's)."""
    report = failure.format(max_steps=max_steps)
    world = LAST_WORLD
    if failure.kind == "exception" or world is None:
        return report  # the AssertionError already carries the checks and the timeline
    broken = "\n".join(history_violations(world.history, "stuck")) or "(nothing yet)"
    stuck = ", ".join(str(c) for c in Run(world.history).calls() if c.end is None) or "none"
    return (
        f"{report}\n\n{world.scenario.name}: the history up to the {failure.kind} breaks:\n"
        f"{broken}\ncalls that never returned: {stuck}\n\n"
        f"timeline up to the {failure.kind}:\n{world.history.timeline()}"
    )


def save_failure(run: Exploration, directory: Path) -> Path:
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
    with collector_off():  # as explore()
        result = it.replay(model_for(scenario), schedule, include=[RCFD_DIR],
                           raise_on_failure=False)  # fmt: skip
    gc.collect()
    return result
