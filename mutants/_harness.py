"""Replay a small scenario against whatever `rcfd` is importable, one step at a time.

Each logical thread (T1, T2, ...) is a real thread that runs real FD calls.
A borrow's `fn` does not return by itself: it keeps taking the thread's
commands (so a nested borrow or a close inside the borrow happens inside it)
until a `return`, `raise` or `interrupt` step ends it. The driver issues one
step, waits until the thread has visibly got somewhere (the call returned,
`fn` was entered, close_func blocked, or the close began), and records what
every thread did meanwhile, the FD's state and borrow count, and how often
close_func ran. That record is the timeline `make explain` prints. The FD
starts OPEN, or UNINIT (`Scenario.uninit`), opened by an `init` step.

Monitors check the guarantees of specs/rcfd.md as the steps run, from the
harness's own bookkeeping (which threads are inside `fn`, when close_func ran
and returned), not from the FD's idea of itself. Every monitor is sound for a
correct FD under any timing: none depends on how long a step took, only on
the order of events the harness itself caused or observed; waits are bounded
so a hang is reported, never waited out forever. That is why the same
replays serve as tests (tests/test_mutation_kills.py) and as explanations.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import queue
import threading
import time
import warnings
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from rcfd import FD, State

WAIT = 10.0  # seconds: the bound on anything that must happen (generous for loaded CI)
SETTLE = 0.25  # seconds: how long a call that may block gets before it is shown "waiting"

Action = Literal[
    "borrow",  # fd.do(fn); fn then takes this thread's next steps
    "with",  # with fd.borrow() as rawfd: fn(rawfd)
    "return",  # fn returns
    "raise",  # fn raises ValueError
    "interrupt",  # fn raises KeyboardInterrupt
    "close",  # fd.close(timeout) (timeout=None waits forever)
    "detach",  # fd.detach()
    "track",  # fd.track_lifetime(another registry)  (refused once initialized)
    "init",  # fd.init(a fresh eventfd, close_func)  (refused once initialized)
    "finish",  # close_func, blocked in a "blocks" scenario, returns now
    "drop",  # the harness drops the last reference to the FD; gc.collect()
    "resume",  # a thread preempted by a step's pause goes on
    "await",  # wait for the thread's call to return (or its close deadline to pass)
]

Pause = Literal["", "after-unlock", "before-lock", "before-insert", "in-init"]

GUARANTEES: dict[int, str] = {
    0: "the lifetime registry counts every init and release, with the init stack",
    1: "close_func runs at most once, never while a borrow (or on_closing) runs",
    2: "once a close has begun no new borrow starts",
    3: "a borrow is released however fn exits",
    4: "close() returns once the running borrows have returned, and does return",
    5: "when any close() returns, close_func has finished",
    6: "close() inside a borrow raises CloseInsideBorrowError at once",
    7: "if close_func raises, the FD is still CLOSED and the closer gets the error",
    8: "a timed-out close still happens, exactly once, when the last borrow returns",
    9: "an unreachable initialized FD is closed by its finalizer, with a ResourceWarning",
    10: "a call that raises changes nothing",
    # Not a numbered guarantee (as 0 is not): specs/rcfd.md's Errors section.
    11: "a call raises only the errors specs/rcfd.md names (Errors): a second init "
    "MultipleInitError, a close before init UninitializedFDError",
}


@dataclass(frozen=True)
class Step:
    thread: str  # "T1", "T2", ...; ignored for finish and drop
    action: Action
    timeout: float | None = None  # for close
    # Preempt the thread, until a resume step, right after the next time this
    # call releases the FD's lock ("after-unlock"), right before it next takes
    # it ("before-lock"), or right before its next insert into the FD's holders
    # ("before-insert": a borrow's entry, which takes no lock): a context switch
    # exactly where a check-then-act bug shows (the check in one step, the act
    # in another). "in-init": right after init() wrote OPEN, before it
    # publishes the holders, its last store (an UNINIT scenario's init step).
    pause: Pause = ""


@dataclass(frozen=True)
class Scenario:
    steps: tuple[Step, ...]
    close_func: Literal["ok", "raises", "blocks"] = "ok"  # blocks: until a finish step
    uninit: bool = False  # starts from FD(registry=...): an init step opens it


@dataclass(frozen=True)
class Violation:
    step: int  # 1-based; len(steps) + 1 is the end of the replay
    guarantee: int
    message: str

    def __str__(self) -> str:
        return (
            f"step {self.step}: guarantee {self.guarantee} "
            f"({GUARANTEES[self.guarantee]}): {self.message}"
        )


@dataclass(frozen=True)
class Row:
    step: int
    cells: dict[str, str]  # thread (or "gc") -> what it did during this step
    state: str
    borrows: str
    close_func: str


@dataclass
class Replay:
    threads: list[str]
    steps: int  # the scenario's; a row or violation after it is the end (the drain)
    rows: list[Row] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


_FN_EXITS = {
    "return": "fn returns",
    "raise": "fn raises _Failure",
    "interrupt": "fn raises KeyboardInterrupt",
}


class _Failure(Exception):
    """What fn raises in a `raise` step."""


def replay(scenario: Scenario, *, wait: float = WAIT) -> Replay:
    """Run `scenario` against the importable rcfd; the timeline and what broke."""
    return _Replayer(scenario, wait).run()


class _Worker:
    def __init__(self, replayer: _Replayer, name: str) -> None:
        self.r = replayer
        self.name = name
        self.commands: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
        self.unsettled = 0  # commands issued and not yet visibly under way; under r.cond
        self.depth = 0  # fn frames of this thread (nested borrows)
        self.busy = ""  # the call now running, for the drain's hang report
        self.issued_after_close = False
        self.pause_armed: Pause = ""
        self.paused = False  # preempted at its step's pause point; under r.cond
        self.began_close = False  # on_closing ran in this thread's current call
        self.resume = threading.Event()
        self.deadline = math.inf  # when the running close(timeout) gives up
        self.before: tuple[State, int] = (replayer.rcfd.State.OPEN, 0)  # the FD as the call began
        # The driver saw this init wait (for the shared lock a paused init holds):
        # the FD it began on changed meanwhile, by the other init.
        self.waited = False
        self.thread = threading.Thread(target=self.loop, name=name, daemon=True)

    def loop(self) -> None:
        while True:
            step = self.commands.get()
            if step is None:
                return
            if step.action in ("return", "raise", "interrupt"):
                if self.depth == 0:
                    self.r.log(self.name, f"({step.action}: not in a borrow)")
                    self.r.settle(self)
                    continue
                self.r.log(self.name, _FN_EXITS[step.action])
                if step.action == "return":
                    self.pause_armed = step.pause
                    return  # out of fn: the enclosing do() releases and returns
                if step.action == "raise":
                    raise _Failure("fn failed")
                raise KeyboardInterrupt
            self.execute(step)

    def fn(self, rawfd: int) -> int:
        r = self.r
        with r.cond:
            r.inside_fn += 1
            if self.issued_after_close:
                r.violate(2, f"{self.name}'s borrow started after the close began (fn ran)")
            elif r.close_calls:
                r.violate(1, f"{self.name}'s fn got a number close_func had already closed")
        r.log(self.name, "fn running")
        self.depth += 1
        r.settle(self)
        try:
            self.loop()
        finally:
            self.depth -= 1
            with r.cond:
                r.inside_fn -= 1
        return rawfd

    def execute(self, step: Step) -> None:
        r = self.r
        fd = r.fd
        if fd is None:
            r.log(self.name, f"({step.action}: the FD was dropped)")
            r.settle(self)
            return
        rawfd = r.new_rawfd() if step.action == "init" else -1  # each init its own number
        label = {
            "borrow": "do(fn)",
            "with": "with borrow()",
            "close": "close()" if step.timeout is None else f"close(timeout={step.timeout})",
            "detach": "detach()",
            "track": "track_lifetime(r2)",
            "init": f"init(fd {rawfd})",
        }.get(step.action, step.action)
        r.log(self.name, label)
        self.busy = label
        with r.cond:
            self.issued_after_close = r.close_begun
        # What a refused call must leave as it found; re-read when the thread is
        # resumed from a pause (the steps run meanwhile are other threads' doing).
        self.before = (fd.state, fd.borrow_count)
        self.waited = False
        error: BaseException | None = None
        result: object = None
        started = time.monotonic()
        if step.action == "close" and step.timeout is not None and step.timeout >= 0:
            self.deadline = started + step.timeout
        self.pause_armed = step.pause
        self.began_close = False
        try:
            if step.action == "borrow":
                result = fd.do(self.fn)
            elif step.action == "with":
                with fd.borrow() as rawfd:
                    result = self.fn(rawfd)
            elif step.action == "close":
                fd.close(step.timeout)
            elif step.action == "detach":
                result = fd.detach()
            elif step.action == "track":
                fd.track_lifetime(r.other_registry)
            elif step.action == "init":
                fd.init(rawfd, r.close_func, on_closing=r.on_closing)
        except BaseException as exc:
            error = exc
        self.busy = ""
        self.deadline = math.inf
        outcome = "ok" if error is None else type(error).__name__
        # What a call may raise: rcfd's errors, what fn raised (re-raised), a bad
        # argument's, TimeoutError, and close_func's own error (an OSError) from a close.
        documented: tuple[type[BaseException], ...] = (r.rcfd.FDError, _Failure, TimeoutError)
        documented = (*documented, KeyboardInterrupt, TypeError, ValueError)
        if step.action in ("close", "detach"):
            documented = (*documented, OSError)
        if error is not None and not isinstance(error, documented):
            r.violate(
                11,
                f"{self.name}'s {label} raised {type(error).__name__} ({error}), "
                "not one of rcfd's errors",
            )
        elif step.action in ("close", "detach"):
            self.check_close(step, error, result, started)
        if step.action == "init" and error is None:
            with r.cond:
                r.inits_ok += 1
                if r.opened_with is None:
                    r.opened_with = rawfd
                if r.inits_ok > 1:
                    r.violate(
                        11,
                        f"{self.name}'s init() succeeded on an FD another init had "
                        "opened: it must raise MultipleInitError (the first number is "
                        "orphaned: nobody will close it)",
                    )
        if step.action == "detach" and error is None:
            outcome = f"returned fd {result}"
            with r.cond:
                r.handed_over = True
        if step.action == "track" and error is None:
            if self.before[0] is not r.rcfd.State.UNINIT:
                r.violate(10, "track_lifetime after init was accepted")
            r.tracked = True
        if step.action in ("borrow", "with") and error is None:
            outcome = "returned"
        if isinstance(error, (_Failure, KeyboardInterrupt)):
            outcome = f"re-raised {type(error).__name__}"
        refused: tuple[type[BaseException], ...] = (TypeError, ValueError, *r.refusals)
        if step.action in ("close", "detach"):
            # A second closer's ClosedFDError comes after a legitimate wait.
            refused = (TypeError, ValueError, r.rcfd.CloseInsideBorrowError)
        if isinstance(error, refused) and self.depth == 0 and not self.waited:
            after = (fd.state, fd.borrow_count)
            before = self.before
            if after != before:
                r.violate(
                    10,
                    f"{self.name}'s refused {label} changed the FD: "
                    f"{before[0].name}/{before[1]} -> {after[0].name}/{after[1]}",
                )
        r.log(self.name, f"-> {outcome}")
        r.settle(self)

    def check_close(
        self, step: Step, error: BaseException | None, result: object, started: float
    ) -> None:
        r = self.r
        name = self.name
        in_borrow = self.depth > 0
        refused_in_borrow = isinstance(error, r.rcfd.CloseInsideBorrowError)
        with r.cond:
            if in_borrow and not refused_in_borrow:
                r.violate(
                    6,
                    f"{name} called {step.action}() inside its own borrow and got "
                    f"{type(error).__name__ if error else 'a normal return'}, "
                    "not CloseInsideBorrowError",
                )
                return
            if refused_in_borrow:
                if not in_borrow:
                    r.violate(6, f"{name} holds no borrow, yet its close was refused")
                return
            if isinstance(error, (r.rcfd.UninitializedFDError, TypeError, ValueError)):
                return
            if isinstance(error, TimeoutError):
                entered = r.close_entered_at
                # close_func entered before the deadline: the count was zero by then.
                deadline = math.inf if step.timeout is None else started + step.timeout
                if entered is not None and entered < deadline:
                    r.violate(
                        8,
                        f"{name}'s close(timeout={step.timeout}) raised TimeoutError "
                        "although the count had reached zero before the deadline "
                        "(close_func was running): it must wait for close_func",
                    )
                return
            handed_over = step.action == "detach" and error is None
            if handed_over:
                if r.close_calls:
                    r.violate(1, f"{name}'s detach() returned the number close_func closed")
            elif r.close_calls == 0:
                r.violate(
                    5,
                    f"{name}'s {step.action}() returned "
                    f"({type(error).__name__ if error else 'normally'}) but close_func "
                    "never ran",
                )
            elif r.close_finished < r.close_calls:
                r.violate(
                    5,
                    f"{name}'s {step.action}() returned "
                    f"({type(error).__name__ if error else 'normally'}) while close_func "
                    "was still running",
                )
            if r.inside_fn:
                r.violate(
                    4, f"{name}'s {step.action}() returned while {r.inside_fn} borrow(s) still run"
                )
            got_it = isinstance(error, OSError) and not isinstance(error, r.rcfd.FDError)
            if r.scenario.close_func == "raises" and self.began_close and not got_it:
                r.violate(7, f"{name} began the close but did not get close_func's OSError")


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def _is_owned(self) -> bool: ...  # the FD's lock is a CPython RLock


class _PausingLock:
    """The FD's own lock, plus a preemption point: a worker whose pause is armed
    stops right before its next acquire or right after its next release, until
    the driver resumes it."""

    def __init__(self, replayer: _Replayer, inner: _Lock) -> None:
        self.r = replayer
        self.inner = inner

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.r.preempt("before-lock", "(preempted before taking the lock)")
        return self.inner.acquire(blocking, timeout)

    def release(self) -> None:
        self.inner.release()
        self.r.preempt("after-unlock", "(preempted after a locked section)")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self.inner._is_owned()


if TYPE_CHECKING:
    _Holders = array[int]
else:
    _Holders = array  # subscripting array at run time needs Python 3.12


class _PausingHolders(_Holders):
    """The FD's holders (an array("L") of thread idents), plus a preemption
    point: a worker whose pause is armed stops right before its next insert
    (a borrow's entry: the one step of a borrow, which takes no lock), until
    the driver resumes it. Everything else, the freeze included (a memoryview
    export of this very array), is the array's own behaviour."""

    replayer: _Replayer

    def insert(self, index: int, value: int, /) -> None:
        self.replayer.preempt("before-insert", "(preempted before its insert into the holders)")
        super().insert(index, value)


def _fd_pausing_in_init(replayer: _Replayer) -> FD:
    """FD(registry=...), UNINIT, plus a preemption point inside init(): a worker
    whose pause is armed ("in-init") stops right after init wrote OPEN, before
    it publishes the holders (its last store, from which on it has taken
    effect), until the driver resumes it. A subclass whose `_state` is a
    property over its own storage is the only way to stop there without
    touching the FD's code; every method is the FD's own."""
    import rcfd

    uninit, opened = rcfd.State.UNINIT, rcfd.State.OPEN

    class PausingFD(rcfd.FD):
        @property
        def _state(self) -> State:
            state: State = self.__dict__.get("_written_state", uninit)
            return state

        @_state.setter
        def _state(self, new: State) -> None:
            old = self._state
            self.__dict__["_written_state"] = new
            if old is uninit and new is opened:
                replayer.preempt("in-init", "(preempted in init: OPEN written, holders not yet)")

    return PausingFD(registry=replayer.registry)


class _Replayer:
    def __init__(self, scenario: Scenario, wait: float) -> None:
        import rcfd

        self.rcfd = rcfd
        self.refusals: tuple[type[BaseException], ...] = (rcfd.FDError,)
        self.scenario = scenario
        self.wait = wait
        self.cond = threading.Condition()
        self.step = 0
        self.log_lines: list[tuple[int, str, str]] = []  # (step, thread, text)
        self.violations: list[Violation] = []
        self.inside_fn = 0  # threads inside fn, by the harness's own count
        self.in_on_closing = 0
        self.close_begun = False  # on_closing ran: the FD is CLOSING
        self.close_calls = 0
        self.close_finished = 0
        self.close_entered_at: float | None = None
        self.handed_over = False
        self.dropped = False
        self.finalizer_warnings = 0
        self.inits_ok = 0  # init steps that succeeded (an UNINIT scenario's)
        self.opened_with: int | None = None  # the number of the first init that succeeded
        self.tracked = False  # a track step succeeded (before init): other_registry counts
        self.finish = threading.Event()
        self.registry = rcfd.LifetimeRegistry()
        self.other_registry = rcfd.LifetimeRegistry()
        self.rawfd = os.eventfd(0)
        self.rawfds = [self.rawfd]  # every number handed to the FD; the harness closes them
        self.fd: rcfd.FD | None
        if not scenario.uninit:
            self.opened_with = self.rawfd
            self.fd = rcfd.FD(
                self.rawfd, self.close_func, registry=self.registry, on_closing=self.on_closing
            )
        elif any(s.pause == "in-init" for s in scenario.steps):
            self.fd = _fd_pausing_in_init(self)
        else:
            self.fd = rcfd.FD(registry=self.registry)
        names = sorted({s.thread for s in scenario.steps if s.action not in ("finish", "drop")})
        self.workers = {name: _Worker(self, name) for name in names}
        if any(s.pause in ("after-unlock", "before-lock") for s in scenario.steps):
            # FD has __slots__ and no setter: object.__setattr__ is the honest way in.
            object.__setattr__(self.fd, "_lock", _PausingLock(self, self.fd._guard()))
        if any(s.pause == "before-insert" for s in scenario.steps):
            # The FD is OPEN with no borrow yet: its holders are an empty, unfrozen
            # array, which an empty one of the harness's replaces unnoticed (an
            # UNINIT FD's are the shared frozen ones: no scenario pauses there).
            assert self.fd.state is rcfd.State.OPEN and self.fd.borrow_count == 0
            holders = _PausingHolders("L")
            holders.replayer = self
            object.__setattr__(self.fd, "_holders", holders)

    # -- bookkeeping (any thread) ----------------------------------------

    def who(self) -> str:
        name = threading.current_thread().name
        return name if name in self.workers else "gc"

    def new_rawfd(self) -> int:
        """A fresh number for an init step (closed by the harness, never by close_func)."""
        rawfd = os.eventfd(0)
        with self.cond:
            self.rawfds.append(rawfd)
        return rawfd

    def log(self, thread: str, text: str) -> None:
        with self.cond:
            self.log_lines.append((self.step, thread, text))
            self.cond.notify_all()

    def violate(self, guarantee: int, message: str) -> None:
        with self.cond:
            self.violations.append(Violation(self.step, guarantee, message))
            self.log_lines.append((self.step, "!", f"guarantee {guarantee} broken"))

    def settle(self, worker: _Worker) -> None:
        with self.cond:
            if worker.unsettled:
                worker.unsettled -= 1
            self.cond.notify_all()

    def close_func(self, rawfd: int) -> None:
        # Records, never closes: the harness closes the real number once, at the
        # end, so a mutant that closes twice cannot close someone else's file.
        me = self.who()
        with self.cond:
            self.close_calls += 1
            if self.close_entered_at is None:
                self.close_entered_at = time.monotonic()
            if self.close_calls > 1:
                self.violate(1, f"close_func called a {_nth(self.close_calls)} time (by {me})")
            if self.inside_fn:
                self.violate(1, f"close_func ran (in {me}) while {self.inside_fn} borrow(s) ran")
            if self.in_on_closing:
                self.violate(1, f"close_func ran (in {me}) while on_closing was running")
            if self.handed_over:
                self.violate(1, "close_func closed a number detach() had handed back")
            if rawfd != self.opened_with:
                self.violate(
                    10,
                    f"close_func closed fd {rawfd}, not fd {self.opened_with}, the number "
                    "the FD was opened with (a refused init changed it?)",
                )
        self.log(me, "close_func runs")
        if self.scenario.close_func == "blocks" and not self.finish.is_set():
            if me in self.workers:
                self.settle(self.workers[me])
            self.log(me, "(close_func blocked)")
            self.finish.wait(self.wait)
        with self.cond:
            self.close_finished += 1
        if self.scenario.close_func == "raises":
            self.log(me, "close_func raises OSError")
            raise OSError(errno.EIO, "close failed")
        self.log(me, "close_func returns")

    def on_closing(self, rawfd: int) -> None:
        me = self.who()
        with self.cond:
            self.close_begun = True
            if me in self.workers:
                self.workers[me].began_close = True
            if self.close_calls:
                self.violate(1, "on_closing ran after close_func had closed the number")
            self.in_on_closing += 1
            self.cond.notify_all()
        self.log(me, "on_closing")
        with self.cond:
            self.in_on_closing -= 1

    def preempt(self, where: Pause, text: str) -> None:
        """Stop the calling worker here if its pause is armed for `where`,
        until the driver resumes it (a no-op for any other thread)."""
        worker = self.workers.get(threading.current_thread().name)
        if worker is None or worker.pause_armed != where:
            return
        worker.pause_armed = ""
        with self.cond:
            worker.paused = True
        self.log(worker.name, text)
        self.settle(worker)
        worker.resume.wait(self.wait)
        fd = self.fd
        if fd is not None:
            worker.before = (fd.state, fd.borrow_count)
        with self.cond:
            worker.paused = False

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    # -- the driver (the harness's own thread) -----------------------------

    def run(self) -> Replay:
        stats = self.registry.fd_stats()
        stack = stats.in_flight_stacks.get(self.rawfd, "")
        if not self.scenario.uninit and Path(__file__).name not in stack:
            self.violate(0, "the registry did not keep the stack that initialized the FD")
        for worker in self.workers.values():
            worker.thread.start()
        result = Replay(threads=list(self.workers), steps=len(self.scenario.steps))
        try:
            for index, step in enumerate(self.scenario.steps, 1):
                with self.cond:
                    self.step = index
                self.do_step(step)
                result.rows.append(self.row(index))
            with self.cond:
                self.step = len(self.scenario.steps) + 1
            self.drain()
            self.final_checks()
            if any(line[0] == self.step for line in self.log_lines):
                result.rows.append(self.row(self.step))
        finally:
            self.finish.set()
            for rawfd in self.rawfds:
                os.close(rawfd)  # close_func only records: the real numbers are ours
        result.violations = list(self.violations)
        return result

    def do_step(self, step: Step) -> None:
        if step.action == "finish":
            self.log("gc", "close_func may return")
            self.finish.set()
            self.wait_until(lambda: self.close_finished >= self.close_calls, self.wait)
            self.settle_all()
            return
        if step.action == "drop":
            self.drop()
            return
        worker = self.workers[step.thread]
        if step.action == "resume":
            with self.cond:
                worker.unsettled += 1
            worker.resume.set()
            if not self.wait_until(_settled(worker), SETTLE):
                self.log(worker.name, "(waiting)")
            self.settle_all()
            self.check_count()
            return
        if step.action == "await":
            self.log(worker.name, "(awaited)")
            deadline = time.monotonic() + self.wait
            while worker.busy and time.monotonic() < min(deadline, worker.deadline + 2 * SETTLE):
                time.sleep(0.01)
            if worker.busy:
                self.log(worker.name, f"(still in {worker.busy})")
            self.settle_all()
            self.check_count()
            return
        with self.cond:
            worker.unsettled += 1
        worker.commands.put(step)
        if step.action in ("close", "detach"):
            # Until the close has begun the closer certainly is not waiting yet;
            # after that it may wait for good, so it gets SETTLE, then is shown waiting.
            self.wait_until_begun(worker)
            if not self.wait_until(lambda: worker.unsettled == 0, SETTLE):
                self.log(worker.name, "(waiting)")
        elif step.action == "init":
            # May wait for the shared lock, which a paused init holds.
            if not self.wait_until(lambda: worker.unsettled == 0, SETTLE):
                worker.waited = True
                self.log(worker.name, "(waiting)")
        elif not self.wait_until(lambda: worker.unsettled == 0, self.wait):
            self.log(worker.name, f"(no progress after {self.wait:.0f}s)")
        self.settle_all()
        self.check_count()

    def wait_until_begun(self, worker: _Worker) -> None:
        """Until `worker`'s close/detach returned or the FD left OPEN (polled: the
        FD does not notify the harness; bounded by the replay's wait)."""
        fd = self.fd
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            with self.cond:
                if worker.unsettled == 0:
                    return
            if fd is not None and fd.state in (self.rcfd.State.CLOSING, self.rcfd.State.CLOSED):
                with self.cond:
                    self.close_begun = True
                return
            time.sleep(0.005)

    def settle_all(self) -> None:
        """Give threads woken by this step a moment to show it (display only)."""
        for worker in self.workers.values():
            if worker.unsettled:
                self.wait_until(_settled(worker), SETTLE)

    def check_count(self) -> None:
        """borrow_count must equal the borrows the harness knows are running.

        Polls (bounded) rather than reading once because a thread released
        from a wait may still be between its fn and its release.
        """
        fd = self.fd
        if fd is None or any(w.paused for w in self.workers.values()):
            return  # a preempted thread may hold a borrow it has not used yet
        deadline = time.monotonic() + min(self.wait, 5.0)
        while True:
            with self.cond:
                expected = self.inside_fn
            actual = fd.borrow_count
            if actual == expected or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if actual != expected:
            self.violate(
                3 if actual > expected else 10,
                f"borrow_count is {actual} but {expected} borrow(s) are running",
            )

    def drop(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            was_open = self.fd is not None and self.fd.state is self.rcfd.State.OPEN
            self.fd = None
            self.dropped = True
            gc.collect()
        resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
        self.log("gc", "FD dropped; gc.collect()")
        for w in resource:
            self.log("gc", f"ResourceWarning: {w.message}")
        if was_open:
            if self.close_calls == 0:
                self.violate(9, "the unreachable OPEN FD was never finalized: no close_func")
            elif not resource:
                self.violate(9, "the finalizer closed the FD without a ResourceWarning")
        elif resource:
            self.violate(9, "the finalizer warned about an FD that close() had closed")

    def drain(self) -> None:
        """End every borrow, let close_func finish, stop the threads; report hangs."""
        self.finish.set()
        for worker in self.workers.values():
            for _ in range(worker.depth):
                with self.cond:
                    worker.unsettled += 1
                worker.commands.put(Step(worker.name, "return"))
                self.wait_until(_settled(worker), self.wait)
        for worker in self.workers.values():
            worker.commands.put(None)
        deadline = time.monotonic() + self.wait
        for worker in self.workers.values():
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            worker.resume.set()
            if worker.thread.is_alive():
                call = worker.busy or "a call"
                guarantee = 4 if "close" in call or "detach" in call else 3
                self.violate(
                    guarantee,
                    f"{worker.name} never returned from {call} (lost wake-up or deadlock)",
                )

    def final_checks(self) -> None:
        fd = self.fd
        closes = [s for s in self.scenario.steps if s.action in ("close", "detach")]
        if fd is not None and self.close_begun and not self.handed_over:
            timed = any(s.timeout is not None for s in closes)
            if self.close_calls == 0:
                self.violate(
                    8 if timed else 4, "a close began but close_func never ran: the close was lost"
                )
            if fd.state is not self.rcfd.State.CLOSED:
                self.violate(
                    7 if self.scenario.close_func == "raises" else 8 if timed else 4,
                    f"every borrow returned but the FD is {fd.state.name}, not CLOSED",
                )
        if fd is not None and self.handed_over and fd.state is not self.rcfd.State.CLOSED:
            self.violate(10, f"detach() returned but the FD is {fd.state.name}")
        stats = self.registry.fd_stats()
        other = self.other_registry.fd_stats()
        if self.tracked:  # a track before init: the FD reports to the other registry
            stats, other = other, stats
        if other.closed + other.close_failed + other.detached + other.finalized:
            self.violate(10, "a refused track_lifetime() redirected the release to its registry")
        inits = 1 if self.inits_ok or not self.scenario.uninit else 0
        if other.initialized or stats.initialized != inits:
            self.violate(0, f"registry initialized={stats.initialized}, expected {inits}")
        if self.close_calls == 0 and not self.handed_over:
            return
        if self.handed_over:
            want = "detached"
        elif self.dropped and not closes:
            want = "finalized"
        elif self.scenario.close_func == "raises":
            want = "close_failed"
        else:
            want = "closed"
        got = {
            "closed": stats.closed,
            "close_failed": stats.close_failed,
            "detached": stats.detached,
            "finalized": stats.finalized,
        }
        if got[want] != 1 or sum(got.values()) != 1:
            counts = ", ".join(f"{k}={v}" for k, v in got.items())
            self.violate(7 if want == "close_failed" else 0, f"registry: {counts}; want {want}=1")

    def row(self, index: int) -> Row:
        cells: dict[str, list[str]] = {}
        for step, thread, text in list(self.log_lines):
            if step == index:
                cells.setdefault(thread, []).append(text)
        fd = self.fd
        if fd is None:
            state, borrows = "(dropped)", "-"
        else:
            state, borrows = fd.state.name, str(fd.borrow_count)
        with self.cond:
            calls, finished = self.close_calls, self.close_finished
        running = " (running)" if calls > finished else ""
        return Row(
            step=index,
            cells={thread: "; ".join(texts) for thread, texts in cells.items()},
            state=state,
            borrows=borrows,
            close_func=f"{calls} call{'s' if calls != 1 else ''}{running}",
        )


def _settled(worker: _Worker) -> Callable[[], bool]:
    return lambda: worker.unsettled == 0


def _nth(n: int) -> str:
    return {2: "second", 3: "third"}.get(n, f"{n}th")
