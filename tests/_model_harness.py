"""The real rcfd.FD as an in-process port: the model's commands, or a trace's
steps, carried out by conformance.drivers.rcfd_threads (one real thread per
logical thread) and compared by conformance.replay.settle, the same code the
conformance runner uses through a driver program.

Used by tests/test_model_vs_fd.py (commands chosen by Hypothesis, expected
results from the model) and by tests/test_traces.py (commands and expected
results read from specs/traces/*.json). Besides agreeing with the model,
each step's history (every call, fn and callback the driver saw) must keep
the guarantees by itself: model.guarantees.history_violations, the checker
the interleavings and the catalog's replays use.
"""

from __future__ import annotations

import queue
import sys
import time
from dataclasses import asdict

from conformance.drivers.rcfd_threads import RcfdThreads
from conformance.replay import EXPECT_S, Expectation, Report, settle
from model.guarantees import history_violations
from model.vocabulary import Call, Command, Observation, Step

__all__ = ["EXPECT_S", "RealFD", "expectation"]

SHRINK_EXPECT_S = 0.5  # the wait once a run has disagreed (see RealFD.expect_s)


def expectation(
    steps: list[Step], after: Observation, running: list[Call], calls: list[Call]
) -> Expectation:
    """The model's `steps` (one, or two raced) as one expectation."""
    completed = [call for step in steps for call in step.completed]
    return Expectation(
        entered=frozenset(step.started.id for step in steps if step.entered),
        paused={c.thread: c.kind for step in steps for c in step.paused},
        waits=any(step.blocks and not step.entered for step in steps),
        returns={call.id: str(call.result) for call in completed},
        names={call.id: str(call) for call in calls},
        after=asdict(after),
        running=frozenset(call.id for call in running),
    )


class RealFD:
    """The production side, as a conformance.replay.Port."""

    # A missing return costs the whole wait, and Hypothesis replays a failing
    # run hundreds of times while shrinking it: once a step has disagreed,
    # later runs of the same test (the shrinking ones) wait less. Set it back
    # to EXPECT_S before each test.
    expect_s = EXPECT_S

    def __init__(self, threads: int) -> None:
        self.reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self.pending: list[Report] = []  # taken by race(), not yet settled
        self.fd = RcfdThreads(threads, self.reports.put)

    def next_report(self, timeout: float) -> Report | None:
        if self.pending:
            return self.pending.pop(0)
        try:
            return self.reports.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def observe(self) -> dict[str, object]:
        return self.fd.observe()

    def send(self, call_id: int, command: Command) -> None:
        self.fd.send(call_id, command.thread, command.call, command.arg)

    def race(self, first: tuple[int, Command], second: tuple[int, Command]) -> Report | None:
        """Start two calls together, with the GIL handed over as often as
        CPython allows, so that one can run in the middle of the other; the
        first report about `first` (None if none comes in time). Every report
        taken here is kept for settle."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            self.fd.race(*((i, c.thread, c.call, c.arg) for i, c in (first, second)))
            deadline = time.monotonic() + RealFD.expect_s
            while time.monotonic() < deadline:
                try:
                    report = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                self.pending.append(report)
                if report.call_id == first[0] and report.kind != "anomaly":
                    return report
        finally:
            sys.setswitchinterval(interval)
        return None

    def settle(self, expect: Expectation) -> list[str]:
        """Wait for what this step must do; the disagreements found, and what
        the production FD's history so far breaks (model.guarantees)."""
        problems = settle(self, expect, RealFD.expect_s).problems
        problems += [f"guarantee: {p}" for p in history_violations(self.fd.history, "running")]
        if problems:
            RealFD.expect_s = SHRINK_EXPECT_S
        return problems

    def shutdown(self) -> list[str]:
        return self.fd.shutdown(RealFD.expect_s)
