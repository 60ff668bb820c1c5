"""A real rcfd.FD on a real eventfd, driven by one real thread per logical thread.

Used by tests/test_model_vs_fd.py (commands chosen by Hypothesis) and by
tests/test_traces.py (commands read from specs/traces/*.json). A command
goes to its thread's queue; the thread runs the production call and reports
what happened on a shared queue. A borrow's fn keeps serving its thread's
queue until an end_borrow command tells it how to exit, so a borrow stays
open across steps and nested borrows and closes inside a borrow are real.

`settle` compares one step with the model's prediction using only bounded
waits: it waits (at most EXPECT_S) for the reports the model predicts, polls
(at most EXPECT_S) until the FD shows the predicted observation, and, when
the model says the call blocks, checks for BLOCKED_S that it has not returned.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import rcfd
from model.lifecycle import (
    ERR_CLOSE_FUNC,
    ERR_CLOSE_IN_BORROW,
    ERR_CLOSED,
    ERR_FN,
    ERR_FN_INTERRUPT,
    ERR_INVALID,
    ERR_MULTIPLE_INIT,
    ERR_TIMEOUT,
    ERR_UNINIT,
    OK,
    OK_FN,
    OK_RAWFD,
    Call,
    Command,
    Observation,
    Registry,
    Step,
)
from model.timeline import describe

EXPECT_S = 2.0  # how long a predicted return or state may take on a loaded box
SHRINK_EXPECT_S = 0.5  # the same once a run has disagreed (see RealFD.expect_s)
BLOCKED_S = 0.03  # how long a call predicted to block must stay blocked
CLOSE_TIMEOUT_S = 0.02  # close(timeout=...) for a timeout the model says expires
POLL_S = 0.001


class FnError(Exception):
    """What a borrow's fn raises for end_borrow(raise)."""


class FnInterrupt(BaseException):
    """What a borrow's fn raises for end_borrow(interrupt): a BaseException
    that is not an Exception, like KeyboardInterrupt, without being one."""


class CloseFuncError(OSError):
    """What close_func raises, after really closing the number, for init(raises)."""


class _Returned:
    """The value every fn returns, so do() can be seen to pass it through."""


FN_VALUE = _Returned()


@dataclass(frozen=True)
class Expectation:
    """What one step must do, from the model or from a trace file."""

    entered: frozenset[int]  # borrows started in this step whose fn must be running
    waits: bool  # a close/detach started in this step must still be waiting after it
    returns: dict[int, str]  # call id -> result, for each call that returns in this step
    names: dict[int, str]  # call id -> "T1 close#4", for messages
    after: Observation
    running: frozenset[int]  # every call that must still be running after the step

    @classmethod
    def of(cls, steps: list[Step], after: Observation, running: list[Call]) -> Expectation:
        """The model's `steps` (one, or two raced) as one expectation."""
        completed = [call for step in steps for call in step.completed]
        calls = [*(step.started for step in steps), *completed, *running]
        return cls(
            entered=frozenset(step.started.id for step in steps if step.entered),
            waits=any(step.blocks and not step.entered for step in steps),
            returns={call.id: str(call.result) for call in completed},
            names={call.id: str(call) for call in calls},
            after=after,
            running=frozenset(call.id for call in running),
        )


# (call id, command, a barrier to wait at before calling, for raced calls)
Item = tuple[int, Command, threading.Barrier | None]


@dataclass(frozen=True)
class Report:
    call_id: int
    kind: Literal["entered", "returned"]
    result: str


def label(exc: BaseException) -> str:
    """An exception in the model's vocabulary; the order matters (subclasses first)."""
    if isinstance(exc, rcfd.CloseInsideBorrowError):
        return ERR_CLOSE_IN_BORROW
    if isinstance(exc, rcfd.UninitializedFDError):
        return ERR_UNINIT
    if isinstance(exc, rcfd.ClosedFDError):
        return ERR_CLOSED
    if isinstance(exc, rcfd.MultipleInitError):
        return ERR_MULTIPLE_INIT
    if isinstance(exc, TimeoutError):
        return ERR_TIMEOUT
    if isinstance(exc, FnError):
        return ERR_FN
    if isinstance(exc, FnInterrupt):
        return ERR_FN_INTERRUPT
    if isinstance(exc, CloseFuncError):
        return ERR_CLOSE_FUNC
    if isinstance(exc, (TypeError, ValueError)):
        return ERR_INVALID
    return f"err:unexpected {type(exc).__name__}: {exc}"


class Worker(threading.Thread):
    """One logical thread. Its queue carries (call id, command), or None to stop."""

    def __init__(self, index: int, harness: RealFD) -> None:
        super().__init__(name=f"rcfd-model-T{index}", daemon=True)
        self.index = index
        self.harness = harness
        self.commands: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self.depth = 0  # borrows this thread holds (nested fns serving the queue)

    def run(self) -> None:
        self._serve()

    def _serve(self) -> str:
        """Run commands until end_borrow (returns how fn should exit) or stop."""
        while True:
            item = self.commands.get()
            if item is None:
                return "return"
            call_id, command, start = item
            if start is not None:
                start.wait(EXPECT_S)  # raced: both threads call at once
            if command.call == "end_borrow":
                self.harness.reports.put(Report(call_id, "returned", OK))
                return command.arg
            try:
                result = self._call(call_id, command)
            except BaseException as exc:  # every outcome is a report, even FnInterrupt
                result = label(exc)
            self.harness.reports.put(Report(call_id, "returned", result))

    def _call(self, call_id: int, command: Command) -> str:
        h = self.harness
        fd = h.fd
        assert fd is not None, "a command for a dropped FD"
        if command.call == "init":
            fd.init(h.rawfd, h.close_func(command.arg == "raises"), on_closing=h.on_closing)
            return OK
        if command.call == "track_lifetime":
            fd.track_lifetime(h.registry)
            return OK
        if command.call == "detach":
            number = fd.detach()
            h.detached = True
            return OK_RAWFD if number == h.rawfd else f"ok:{number}"
        if command.call == "close":
            timeout = {"none": None, "expires": CLOSE_TIMEOUT_S, "invalid": -1.0}[command.arg]
            fd.close(timeout)
            return OK

        def fn(rawfd: int) -> _Returned:
            self.depth += 1
            entered = OK if rawfd == h.rawfd else f"fn got fd {rawfd}, not {h.rawfd}"
            h.reports.put(Report(call_id, "entered", entered))
            how = self._serve()
            self.depth -= 1
            if how == "raise":
                raise FnError("end_borrow(raise)")
            if how == "interrupt":
                raise FnInterrupt("end_borrow(interrupt)")
            return FN_VALUE

        if command.arg == "do":
            value = fd.do(fn)
        else:
            with fd.borrow() as rawfd:
                value = fn(rawfd)
        return OK_FN if value is FN_VALUE else f"ok:{value!r}"


class RealFD:
    """The production side: FD, eventfd, registry, worker threads, warnings."""

    # A missing return costs the whole wait, and Hypothesis replays a failing
    # run hundreds of times while shrinking it: once a step has disagreed,
    # later runs of the same test (the shrinking ones) wait less. Set it back
    # to EXPECT_S before each test.
    expect_s = EXPECT_S

    def __init__(self, threads: int) -> None:
        self.registry = rcfd.LifetimeRegistry()
        self.rawfd = os.eventfd(0, os.EFD_CLOEXEC)
        self.fd: rcfd.FD | None = rcfd.FD()
        self.reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self.close_func_calls = 0
        self.on_closing_calls = 0
        self.anomalies: list[str] = []  # close_func/on_closing seen at a bad moment
        self.raw_closed = False
        self.detached = False
        # Global for the run: the finalizer and a late close_func warn from
        # whichever thread runs them. Collect first, so that FDs other tests
        # dropped on purpose are finalized (and warn) before the log opens.
        gc.collect()
        self._warnings_cm = warnings.catch_warnings(record=True)
        log = self._warnings_cm.__enter__()
        assert log is not None
        self.warnings = log
        warnings.simplefilter("always")
        self.workers = [Worker(i, self) for i in range(threads)]
        for worker in self.workers:
            worker.start()
        self.done: dict[int, str] = {}  # call id -> result, for every returned call

    # -- what the FD is given ----------------------------------------------

    def close_func(self, fails: bool) -> Callable[[int], None]:
        def close_func(rawfd: int) -> None:
            fd = self.fd  # None while the finalizer runs: the FD is unreachable
            if fd is not None and (fd.borrow_count or fd.state is not rcfd.State.CLOSING):
                self.anomalies.append(
                    f"close_func ran in {fd.state.name} with {fd.borrow_count} borrow(s)"
                )
            self.close_func_calls += 1
            if self.raw_closed:
                self.anomalies.append("close_func ran on a number already closed")
            else:
                os.close(rawfd)
                self.raw_closed = True
            if fails:
                raise CloseFuncError(errno.EIO, "close_func failed (as the test asked)")

        return close_func

    def on_closing(self, rawfd: int) -> None:
        fd = self.fd
        if fd is None or fd.state is not rcfd.State.CLOSING or not fd.borrow_count:
            self.anomalies.append("on_closing ran outside CLOSING or without the closer's borrow")
        self.on_closing_calls += 1

    # -- commands and observations -----------------------------------------

    def send(self, call_id: int, command: Command) -> None:
        if command.call == "drop":
            self._drop(call_id)
        else:
            self.workers[command.thread].commands.put((call_id, command, None))

    def race(self, first: tuple[int, Command], second: tuple[int, Command]) -> Report | None:
        """Send two calls that start together on two threads, with the GIL
        handed over as often as CPython allows, so that one call can run in
        the middle of the other; then return the first report of `first`
        (None if none comes in time). The report is queued again for settle.
        """
        start = threading.Barrier(2)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            for call_id, command in (first, second):
                self.workers[command.thread].commands.put((call_id, command, start))
            deadline = time.monotonic() + RealFD.expect_s
            seen: list[Report] = []
            found = None
            while found is None and time.monotonic() < deadline:
                try:
                    report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                seen.append(report)
                if report.call_id == first[0]:
                    found = report
        finally:
            sys.setswitchinterval(interval)
        for report in seen:
            self.reports.put(report)
        return found

    def _drop(self, call_id: int) -> None:
        """Lose the last reference; __del__ runs here (no cycle holds an FD)."""
        unraisable: list[str] = []
        hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
        try:
            self.fd = None
            gc.collect()
        finally:
            sys.unraisablehook = hook
        self.reports.put(Report(call_id, "returned", OK))

    def observe(self) -> Observation:
        stats = self.registry.fd_stats()
        fd = self.fd
        return Observation(
            state="GONE" if fd is None else fd.state.name,
            borrows=0 if fd is None else fd.borrow_count,
            close_func_calls=self.close_func_calls,
            on_closing_calls=self.on_closing_calls,
            registry=Registry(
                initialized=stats.initialized,
                closed=stats.closed,
                close_failed=stats.close_failed,
                detached=stats.detached,
                finalized=stats.finalized,
                in_flight=len(stats.in_flight_stacks),
            ),
            resource_warnings=self._count_warnings(
                ResourceWarning, f"unclosed <rcfd.FD OPEN fd={self.rawfd} "
            ),
            runtime_warnings=self._count_warnings(RuntimeWarning, "rcfd: close_func raised"),
        )

    def _count_warnings(self, category: type[Warning], prefix: str) -> int:
        return sum(
            1
            for w in list(self.warnings)
            if issubclass(w.category, category) and str(w.message).startswith(prefix)
        )

    def settle(self, expect: Expectation) -> list[str]:
        """Wait for what this step must do; the disagreements found."""
        want = {(call_id, "returned"): result for call_id, result in expect.returns.items()}
        for call_id in expect.entered:
            want[(call_id, "entered")] = OK
        got: dict[tuple[int, str], str] = {}
        wait_s = RealFD.expect_s
        deadline = time.monotonic() + wait_s
        while not want.keys() <= got.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                report = self.reports.get(timeout=remaining)
            except queue.Empty:
                break
            got[(report.call_id, report.kind)] = report.result
            if (report.call_id, report.kind) not in want:
                wait_s = 0.0  # the step already disagrees; waiting only slows shrinking
                break
        expected = expect.after
        # A close that waits sends no report, so its effect (CLOSING, its own
        # borrow taken and released, on_closing) is polled for; every other
        # effect of a step precedes a report already received.
        waiting = expect.waits
        observed = self._await_observation(expected, deadline) if waiting else self.observe()
        if expect.waits:
            # The model says the close waits: it must not return now. (A borrow
            # cannot return while its fn is serving this thread's queue.)
            self._collect(got, BLOCKED_S)
        self._collect(got, 0.0)
        problems = []
        name = expect.names.get
        for key, result in want.items():
            what = "fn entered" if key[1] == "entered" else "returned"
            if key not in got:
                problems.append(
                    f"{name(key[0], key[0])}: expected {what} {result}, but nothing"
                    + (f" within {wait_s}s (still blocked?)" if wait_s else "")
                )
            elif got[key] != result:
                problems.append(f"{name(key[0], key[0])}: expected {what} {result}, got {got[key]}")
        for key, result in got.items():
            if key not in want:
                early = " while it should still be running" if key[0] in expect.running else ""
                problems.append(f"{name(key[0], key[0])}: unexpected {key[1]} {result}{early}")
        for key, result in got.items():
            if key[1] == "returned":
                self.done[key[0]] = result
        if observed != expected:
            problems.append(f"FD after the step: expected {describe(expected)}")
            problems.append(f"                   observed {describe(observed)}")
        problems += [f"anomaly: {a}" for a in self.anomalies]
        self.anomalies.clear()
        if problems:
            RealFD.expect_s = SHRINK_EXPECT_S
        return problems

    def _collect(self, got: dict[tuple[int, str], str], wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            got[(report.call_id, report.kind)] = report.result

    def _await_observation(self, expected: Observation, deadline: float) -> Observation:
        """Poll until the FD shows `expected` or the deadline passes (a blocked
        closer's own release has no report to wait for, so its effect is polled)."""
        while True:
            observed = self.observe()
            if observed == expected or time.monotonic() >= deadline:
                return observed
            time.sleep(POLL_S)

    # -- teardown ----------------------------------------------------------

    def shutdown(self) -> list[str]:
        """End every borrow, close the FD, stop the threads, close the number.

        Never raises: it also runs after a failure, when production may be
        stuck. Returns what went wrong (threads that would not stop).
        """
        left: list[str] = []
        try:
            for worker in self.workers:
                for _ in range(worker.depth):
                    worker.commands.put((-1, Command(worker.index, "end_borrow", "return"), None))
            fd = self.fd
            if fd is not None and fd.state is rcfd.State.OPEN:
                deadline = time.monotonic() + RealFD.expect_s
                while fd.borrow_count and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                try:
                    fd.close(timeout=RealFD.expect_s)
                except CloseFuncError:
                    pass  # init(raises) asked for it
                except BaseException as exc:  # teardown after a failure: report, go on
                    left.append(f"close at teardown: {exc!r}")
            del fd
            for worker in self.workers:
                worker.commands.put(None)
            for worker in self.workers:
                worker.join(RealFD.expect_s)
                if worker.is_alive():
                    left.append(f"{worker.name} did not stop")
        finally:
            self.fd = None  # no cycle holds an FD: this is the last reference
            if not self.raw_closed:
                with contextlib.suppress(OSError):
                    os.close(self.rawfd)
                self.raw_closed = True
            self._warnings_cm.__exit__(None, None, None)
        return left
