"""Replay a small scenario against whatever `rcfd` is importable, one step at a time.

Each logical thread (T1, T2, ...) is a worker of conformance.drivers.rcfd_threads,
which serves its queue inside a borrow's fn and a paused close_func too. Each
step is one command; the driver waits (bounded) until that thread visibly got
somewhere (a call returned, fn entered, a callback or pause stopped it); a call
that may block for good (close, init) gets SETTLE, then is shown waiting;
then the driver takes what the step set off in other threads until nothing
happens for QUIET, so a replay's rows are the same every time. At
the end every borrow and callback is ended, every call must return within WAIT,
and model.guarantees.history_violations checks the History the seam
(conformance.drivers.rcfd_seam) and the workers logged; `make explain` prints it.

Step.pause stops the thread at one of the seam's check points (or "in-init",
as the registry records the init) until a `resume` step; "collect-in-lock"
runs the collector inside the next locked step. Step.interrupt raises an
FnInterrupt there once, as a signal handler would (specs/cpython.md,
"Signals"). The GIL path has no check point before an insert or a decision:
asked for there, such a pause or interrupt is noted and not done. An interrupt
that never happened is a violation; one that did is an `interrupt` event, and
the interrupted call must end with it (err:FnInterrupt).
"""

from __future__ import annotations

import copy
import gc
import json
import os
import queue
import re
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import rcfd
from conformance.drivers.rcfd_seam import Seam, installed
from conformance.drivers.rcfd_threads import FnInterrupt, RcfdThreads, Worker, counts, label
from conformance.replay import Report
from model.guarantees import RESULTS, Run, history_violations
from model.history import collector_off
from model.vocabulary import OK
from rcfd import _nogil

WAIT = 10.0  # seconds: the bound on anything that must happen (generous for loaded CI)
SETTLE = 0.25  # seconds: how long a call that may block gets before it is shown "waiting"
QUIET = 0.03  # seconds without a new event after which a step's effects are taken as over
# An await on a close(timeout) gives up this long past its deadline (a timed-out
# close has only to wake and raise; 2 s is the conformance replay's EXPECT_S).
PAST_DEADLINE = 2.0
BROKEN_TEARDOWN = 1.0  # the teardown's bound once a guarantee broke (the FD may never let go)

Action = Literal[
    "borrow",  # fd.do(fn); fn then takes this thread's next steps
    "with",  # with fd.borrow() as rawfd: fn(rawfd)
    "return",  # fn returns
    "raise",  # fn raises (an Exception)
    "interrupt",  # fn raises a BaseException (as KeyboardInterrupt does)
    "close",  # fd.close(timeout) (timeout=None waits forever)
    "detach",  # fd.detach()
    "track",  # fd.track_lifetime(another registry)  (refused once initialized)
    "init",  # fd.init(rawfd, close_func)  (refused once initialized)
    "hold",  # a generator enters `with fd.borrow()` and suspends: a borrow it holds
    "release",  # the oldest such generator is closed: its borrow ends
    "abandon",  # the held generators become cyclic garbage (only the collector ends them)
    "copy",  # copy.copy(fd), then close the copy (refused: an FD owns its number)
    "fork",  # os.fork(); the child ends the held borrows and closes the FD
    "finish",  # close_func, paused in a "pauses" scenario, returns now
    "drop",  # the FD loses its last reference on this thread ("-": T0); gc.collect()
    "resume",  # a thread preempted by a step's pause goes on
    "await",  # wait for the thread's call to return (or its close deadline to pass)
]
Pause = Literal["", "before-insert", "before-lock", "before-decide", "in-init", "collect-in-lock"]
# The check points an interrupt can be raised at (Step.interrupt), and those
# only the no-GIL path has (see the module docstring).
INTERRUPT_POINTS: tuple[Pause, ...] = ("before-insert", "before-lock", "before-decide")
NOGIL_ONLY_INTERRUPTS: tuple[Pause, ...] = ("before-insert", "before-decide")
NOGIL_ONLY_PAUSES: tuple[Pause, ...] = ("before-decide",)


GUARANTEES: dict[int, str] = {
    0: "the lifetime registry counts every init and release, with the init stack",
    1: "close_func runs at most once, never while a borrow (or on_closing) runs",
    2: "once a close has begun no new borrow starts",
    3: "a borrow is released however fn exits",
    4: "close() returns once the running borrows have returned, and does return",
    5: "when any close() returns, close_func has finished",
    6: "close() inside a borrow (or close_func) raises at once instead of waiting for itself",
    7: "if close_func raises, the FD is still CLOSED and the closer gets the error",
    8: "a timed-out close still happens, exactly once, when the last borrow returns",
    9: "an unreachable initialized FD is closed by its finalizer, with a ResourceWarning",
    10: "a call that raises changes nothing",
    # Not a numbered guarantee (as 0 is not): specs/rcfd.md's Errors section.
    11: "a call raises only the errors specs/rcfd.md names (Errors)",
}


@dataclass(frozen=True)
class Step:
    thread: str  # "T1", "T2", ...; "-" for finish and abandon, and for a drop on T0
    action: Action
    timeout: float | None = None  # for close
    pause: Pause = ""  # where this call stops until a resume step (see the module docstring)
    interrupt: Pause = ""  # where this call is interrupted, once (INTERRUPT_POINTS)


@dataclass(frozen=True)
class Scenario:
    steps: tuple[Step, ...]
    # close_func closes and returns, or raises, or pauses (its thread takes
    # steps, from inside close_func, until a finish step).
    close_func: Literal["ok", "raises", "pauses"] = "ok"
    uninit: bool = False  # starts from FD(registry=...): an init step opens it
    warnings: Literal["always", "error"] = "always"  # the ResourceWarning filter of a drop


@dataclass(frozen=True)
class Violation:
    step: int  # 1-based; len(steps) + 1 is the end of the replay (the drain)
    message: str

    def __str__(self) -> str:
        return f"step {self.step}: {self.message}"


@dataclass(frozen=True)
class Row:
    step: int
    cells: dict[str, str]  # thread -> what it did during this step
    state: str
    borrows: str
    close_func: str


@dataclass
class Replay:
    threads: list[str]
    steps: int  # the scenario's; a row or violation after it is the end (the drain)
    rows: list[Row] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    timeline: str = ""  # the whole history, event by event


def replay(scenario: Scenario, *, wait: float = WAIT) -> Replay:
    """Run `scenario` against the importable rcfd; the timeline and what broke."""
    with collector_off():  # the collector runs where a step says, and nowhere else
        replayer, broken = _Replayer(scenario, wait), False
        with installed(replayer.seam):  # FDs made after the replay are rcfd's own again
            try:
                result = replayer.run()
                broken = bool(result.violations)
                return result
            finally:
                replayer.shutdown(min(wait, BROKEN_TEARDOWN) if broken else wait)


class _PausingRegistry(rcfd.LifetimeRegistry):
    """The FD's registry; its init record is where an "in-init" step stops."""

    def __init__(self, replayer: _Replayer) -> None:
        super().__init__()
        self.replayer = replayer

    def _record_init(self, key: int, rawfd: int) -> None:
        self.replayer.preempt("in-init")
        super()._record_init(key, rawfd)


COMMANDS: dict[str, tuple[str, str]] = {
    "borrow": ("begin_borrow", "do"),
    "with": ("begin_borrow", "borrow"),
    "detach": ("detach", ""),
    "track": ("track_lifetime", "other"),
    "hold": ("hold_borrow", ""),
    "release": ("release_held", ""),
    "copy": ("copy", ""),
    "fork": ("fork", ""),
    "drop": ("drop", ""),
}
ENDS = ("return", "raise", "interrupt")


class _Replayer(RcfdThreads):
    """rcfd_threads' FD and workers, under rcfd's logging seam, driven step by step."""

    def __init__(self, scenario: Scenario, wait: float) -> None:
        self.scenario, self.wait = scenario, wait
        self.reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self.armed: dict[int, str] = {}  # worker -> where its pause stops it
        self.interrupts: dict[int, tuple[str, int]] = {}  # worker -> (where, step) to interrupt
        self.pid = os.getpid()  # a forked child neither pauses nor interrupts
        self.paused: dict[int, str] = {}  # worker -> the callback or pause it is stopped in
        self.open: dict[int, list[int]] = {}  # worker -> ids of its calls not returned yet
        self.moved: dict[int, int] = {}  # worker -> reports about it so far
        self.deadlines: dict[int, float] = {}  # worker -> when its close(timeout) gives up
        self.ids = 0
        self.notes: list[tuple[int, str, str]] = []  # (step, thread, text) for the rows
        self.step = 0
        threads = [int(s.thread[1:]) for s in scenario.steps if s.thread.startswith("T")]
        super().__init__(max(threads, default=0) + 1, self.reports.put)
        self.registry = _PausingRegistry(self)
        self.other_registry = rcfd.LifetimeRegistry()
        history = self.history
        history.seam, history.on_closing = True, True
        history.names[threading.get_ident()] = "main"
        history.observe = self.observe_fd
        self.drop_warnings = scenario.warnings
        self.seam = Seam(history, self.preempt)

    def anomaly(self, what: str) -> None:
        """Logged by the thread that saw it, where it saw it (not when the
        driver's thread takes a report): the same order on every replay."""
        self.history.log("anomaly", what)

    def observe_fd(self) -> tuple[str, int]:
        fd = self.fd  # read under the history's lock, which a drop holds as it lets go
        return ("GONE", -1) if fd is None else (fd.state.name, fd.borrow_count)

    # -- the FD's side ---------------------------------------------------------

    def preempt(self, where: str) -> None:
        """Stop the calling worker here if its step armed `where` (the seam and
        the registry call this at their points; a no-op for anyone else)."""
        worker = threading.current_thread()
        if not isinstance(worker, Worker) or worker.owner is not self or os.getpid() != self.pid:
            return
        if self.interrupts.get(worker.index, ("", 0))[0] == where:
            del self.interrupts[worker.index]
            self.history.log("interrupt", where)
            raise FnInterrupt(f"interrupted {where}")  # as a signal handler's would
        armed = self.armed.get(worker.index)
        if armed == "collect-in-lock" and where == "in-lock":
            del self.armed[worker.index]
            self.notes.append((self.step, f"T{worker.index}", "(gc.collect())"))
            gc.collect()
        elif armed == where:
            del self.armed[worker.index]
            self.pause(f"preempted {where}")

    def call(self, worker: Worker, call_id: int, call: str, arg: str) -> str:
        fd = self.fd
        if call == "copy" and fd is not None:
            twin = copy.copy(fd)  # TypeError: an FD owns its number
            twin.close()  # a second owner closes "its" number
            return OK
        if call == "fork" and fd is not None:
            return self._fork(fd)
        if call == "track_lifetime" and arg == "other" and fd is not None:
            fd.track_lifetime(self.other_registry)
            return OK
        del fd
        return super().call(worker, call_id, call, arg)

    def _fork(self, fd: rcfd.FD) -> str:
        """Fork; the child ends the held borrows and closes the FD, and says how
        (each result must be one specs/rcfd.md documents for the call)."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only this thread runs; the others' borrows are gone
            self.history.lock = threading.RLock()  # another thread may have held it
            done: list[tuple[str, str]] = []
            for call, act in [("release_held()", g.close) for g in self.held] + [
                ("close(none)", fd.close)
            ]:
                try:
                    act()
                    done.append((call, OK))
                except BaseException as exc:
                    done.append((call, label(exc)))
            os.write(write, json.dumps(done).encode())
            os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], self.wait)
        lines = json.loads(os.read(read, 65536) or b"[]") if ready else [["fork", "no answer"]]
        os.close(read)
        if not ready:
            os.kill(pid, signal.SIGKILL)  # a child stuck in the FD: bounded, as every wait
        os.waitpid(pid, 0)
        for call, result in lines:  # the child's FD is not this one: only its results count
            if result in RESULTS.get(call.split("(")[0], frozenset({OK})):
                self.note("child", f"{call} -> {result}")
            else:
                self.history.log("anomaly", f"in the forked child, {call} ended {result}", "child")
        return OK

    # -- the driver (the harness's own thread) -----------------------------------

    def run(self) -> Replay:
        """The FD tracked by the pausing registry and opened unless uninit (as a
        worker's calls, made by the harness's thread), then the steps."""
        for call, arg in [("track_lifetime", ""), ("init", self.scenario.close_func)][
            : 1 if self.scenario.uninit else 2
        ]:
            self.history.log("call", f"{call}({arg})")
            self.history.log("return", self.call(self.workers[0], 0, call, arg))
        # Where the registry says the FD was initialized ("" if uninit).
        self.stack = "".join(self.registry.fd_stats().in_flight_stacks.values())
        result = Replay([f"T{w.index}" for w in self.workers[1:]], len(self.scenario.steps))
        if not self.scenario.uninit and "_harness.py" not in self.stack:
            self.history.log("anomaly", "the registry did not keep the init's stack")
        marks = [len(self.history.events)]
        for number, step in enumerate(self.scenario.steps, 1):
            self.step = number
            self.do_step(step)
            self.quiesce()
            marks.append(len(self.history.events))
        self.step += 1
        self.drain()
        self.log_registries()
        marks.append(len(self.history.events))
        problems = history_violations(self.history, "ended")
        problems += fns_running_at_close_func(Run(self.history))
        result.rows = [self.row(i, marks[i - 1], marks[i]) for i in range(1, len(marks))]
        if marks[-1] == marks[-2] and not any(at == self.step for at, _, _ in self.notes):
            result.rows.pop()  # nothing happened at the end
        for problem in problems:
            at = re.match(r"at #(\d+)", problem)
            index = int(at[1]) if at else marks[-1]
            row = next((i for i in range(1, len(marks)) if index < marks[i]), len(marks) - 1)
            result.violations.append(Violation(row, problem))
        for index, (where, number) in sorted(self.interrupts.items()):
            result.violations.append(Violation(number, f"T{index} was to be interrupted "
                                               f"{where}, and never got there: the scenario "
                                               "does not test what it says"))  # fmt: skip
        result.timeline = self.history.timeline()
        return result

    def do_step(self, step: Step) -> None:
        name = "T0" if step.thread == "-" else step.thread
        index = int(name[1:])
        if step.action == "abandon":
            for held in self.held:
                cycle: list[object] = [held]
                cycle.append(cycle)  # only the collector can break it (it is disabled)
            self.held = []
            self.note("harness", "(the held generators are cyclic garbage now)")
            return
        if step.action == "await":
            self.note(name, "(awaited)")
            bound = self.wait
            if index in self.deadlines:  # no longer than its close's deadline, and a margin
                bound = min(bound, self.deadlines[index] + PAST_DEADLINE - time.monotonic())
            self.wait_for(lambda: not self.open.get(index), max(0.0, bound))
            if self.open.get(index):
                self.note(name, "(still waiting)")
            return
        if step.action in ("finish", "resume"):
            if step.action == "finish":
                index = next((w for w, why in self.paused.items() if why == "close_func"), -1)
            if index not in self.paused:
                self.note(name, f"({step.action}: nothing paused)")
                return
            del self.paused[index]
            self.command(index, "end_callback", "return", may_block=False)
            return
        if step.interrupt not in ("", *INTERRUPT_POINTS):
            raise ValueError(f"step {self.step}: no interrupt point {step.interrupt!r}")
        pause, interrupt = (step.pause, NOGIL_ONLY_PAUSES, "paused"), (
            step.interrupt, NOGIL_ONLY_INTERRUPTS, "interrupted")  # fmt: skip
        for where, only, done in (pause, interrupt):
            if where in only and not _nogil.ENABLED:
                self.note(name, f"(no check point {where} on the GIL path: not {done})")
            elif where and done == "paused":
                self.armed[index] = where
            elif where:
                self.interrupts[index] = (where, self.step)
        if step.action in ENDS:
            if not self.workers[index].levels or self.workers[index].levels[-1] != "end_borrow":
                self.note(name, f"({step.action}: not in a borrow)")
                return
            self.command(index, "end_borrow", step.action, may_block=False)
            return
        if self.fd is None and step.action != "drop":
            self.note(name, f"({step.action}: the FD was dropped)")
            return
        if step.action == "close":
            timeout = "none" if step.timeout is None else repr(step.timeout)
            if step.timeout is not None and step.timeout >= 0:  # NaN: no deadline
                self.deadlines[index] = time.monotonic() + step.timeout
            else:
                self.deadlines.pop(index, None)
            self.command(index, "close", timeout, may_block=True)
        elif step.action == "init":
            self.command(index, "init", self.scenario.close_func, may_block=True)
        else:
            self.command(index, *COMMANDS[step.action], may_block=False)

    def note(self, thread: str, text: str) -> None:
        self.notes.append((self.step, thread, text))

    def command(self, index: int, call: str, arg: str, *, may_block: bool) -> None:
        """Give worker `index` one command; wait until it shows progress (a call
        of its returned, its fn was entered, or it paused): at most SETTLE for a
        call that may block for good, at most the run's wait for any other."""
        settle = SETTLE if may_block else self.wait
        self.ids += 1
        if call != "close":
            self.deadlines.pop(index, None)  # an await then waits for this call, up to WAIT
        moved = self.moved.get(index, 0)
        if call not in ("end_borrow", "end_callback"):
            self.open.setdefault(index, []).append(self.ids)
        self.workers[index].commands.put((self.ids, call, arg, None))
        if not self.wait_for(lambda: self.moved.get(index, 0) > moved, settle):
            self.note(f"T{index}", "(waiting)")

    def quiesce(self) -> None:
        """Take reports until the history has not grown for QUIET seconds (at
        most 4 * SETTLE): what a step set off in other threads (a closer woken,
        close_func run) is in that step's row on every replay, not in the next."""
        deadline, seen = time.monotonic() + 4 * SETTLE, -1
        while seen != len(self.history.events) and time.monotonic() < deadline:
            seen = len(self.history.events)
            self.wait_for(lambda: False, QUIET)

    def wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        """Take reports until `done()` or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while not done():
            try:
                report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if report.kind == "paused":
                self.paused[report.thread] = report.result
                what = report.result  # a callback ("close_func"), or "preempted <where>"
                self.note(f"T{report.thread}", f"({what})" if " " in what else f"({what} pauses)")
            elif report.kind == "returned" and report.call_id in self.open.get(report.thread, []):
                self.open[report.thread].remove(report.call_id)
            elif report.kind == "returned":
                continue  # an end_borrow or end_callback taken: its effects come next
            self.moved[report.thread] = self.moved.get(report.thread, 0) + 1
        return True

    def drain(self) -> None:
        """End every borrow and paused callback, innermost first, and wait (at
        most WAIT) for every call to return."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            ends = [w for w in self.workers if w.levels]
            if not ends:
                break
            for worker in ends:
                self.paused.pop(worker.index, None)
                self.command(worker.index, worker.levels[-1], "return", may_block=True)
        self.wait_for(lambda: not any(self.open.values()), max(0.0, deadline - time.monotonic()))

    def log_registries(self) -> None:
        """The counts of the FD's registry ("main") and of the one a refused
        track_lifetime passed ("other"), at the end."""
        tracked = any(
            c.result == OK and c.detail == "track_lifetime(other)"
            for c in Run(self.history).calls("track_lifetime")
        )
        mine, other = (self.other_registry, self.registry) if tracked else (
            self.registry, self.other_registry)  # fmt: skip
        stack = "" if self.scenario.uninit else f" stack={'yes' if self.stack else 'no'}"
        self.history.log("registry", f"main: {counts(mine.fd_stats())}{stack}")
        self.history.log("registry", f"other: {counts(other.fd_stats())}")

    def row(self, step: int, start: int, end: int) -> Row:
        cells: dict[str, list[str]] = {}
        events = self.history.events
        for i in range(start, end):
            ev = events[i]
            detail = ev.detail or _NO_DETAIL.get(ev.what, "")
            text = _SHOWN.get(ev.what, "").format(detail=detail)
            if text:
                cells.setdefault(ev.who if ev.who != "main" else "harness", []).append(text)
        for at, thread, text in self.notes:
            if at == step:
                cells.setdefault(thread, []).append(text)
        last = next((ev for ev in reversed(events[:end]) if ev.state), None)
        ran = [ev for ev in events[:end] if ev.what == "close_func"]
        running = sum(1 for ev in events[:end] if ev.what == "close_func_end") < len(ran)
        return Row(
            step=step,
            cells={who: "; ".join(texts) for who, texts in cells.items()},
            state=last.state if last is not None else "?",
            borrows=str(last.borrows) if last is not None and last.borrows >= 0 else "-",
            close_func=f"{len(ran)} call{'s' if len(ran) != 1 else ''}"
            + (" (running)" if running else ""),
        )


def fns_running_at_close_func(run: Run) -> list[str]:
    """Guarantee 1 from the fns alone: a fn runs under its borrow, so none may
    be running as close_func starts, whatever the count says (the checker's
    own test reads the count, which a bug that gives back the wrong borrow
    empties while that borrow's fn still runs)."""
    return [f"at #{c.begin}: close_func called while {f.who}'s fn (#{f.begin}) runs: its "
            "borrow no longer counted (guarantee 1)"
            for c in run.of("close_func") for f in run.of("fn") if f.open_at(c.begin)]  # fmt: skip


# How each event shows in a row of the timeline ("" not shown there), and
# what one logged with no detail shows: an end that returned (one that raised
# says so, "raised ..."), a freeze that froze (else "not frozen").
_NO_DETAIL = {"fn_end": "returns", "close_func_end": "returns", "freeze": "holders frozen"}
_SHOWN = {
    "call": "{detail}",
    "return": "-> {detail}",
    "fn": "fn running",
    "fn_end": "fn {detail}",
    "close_func": "close_func runs",
    "close_func_end": "close_func {detail}",
    "on_closing": "on_closing",
    "freeze": "(freeze: {detail})",
    "interrupt": "(interrupted {detail})",
    "drop": "FD dropped ({detail}); gc.collect()",
    "warning": "{detail}",
    "anomaly": "! {detail}",
}
