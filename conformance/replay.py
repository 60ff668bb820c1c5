"""One step of a trace replayed against a port, with bounded waits only.

A port is anything that performs calls on one FD and reports what happened
(`Port`): the Python FD in this process (tests/), or a driver program over
the JSON-lines protocol (conformance.driver_process). `settle` compares what
the port reports and shows after one step with what the step expects, and
returns the disagreements as sentences (empty when the step agrees).

The rules (specs/traces.md, "Replaying"): wait at most `wait_s` for every
report the step predicts (calls that return, fn entered, callbacks paused);
poll, within the same bound, until the FD shows `after` (some effects land
after the last report: a closer's own release, a release that runs
close_func); if the step's call `waits`, check for BLOCKED_S that it has not
returned; and any report the step does not predict is a disagreement.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from model.timeline import describe

EXPECT_S = 2.0  # how long a predicted return or state may take on a loaded box
BLOCKED_S = 0.03  # how long a call predicted to block must stay blocked (> EXPIRES_S)
EXPIRES_S = 0.02  # the timeout a driver gives close(timeout) for "expires"
POLL_S = 0.001

Kind = Literal["entered", "returned", "paused", "anomaly"]


@dataclass(frozen=True)
class Report:
    """What a port saw: call `call_id` returned `result` or entered its fn; a
    callback (`result` names it) paused on `thread`; an anomaly (`result`
    says what) seen by the port's own callbacks."""

    kind: Kind
    call_id: int = -1
    thread: int = -1
    result: str = "ok"

    def key(self) -> tuple[str, int]:
        return (self.kind, self.thread if self.kind == "paused" else self.call_id)


class Port(Protocol):
    def next_report(self, timeout: float) -> Report | None:
        """The next report, waiting at most `timeout` seconds; None if none came."""

    def observe(self) -> dict[str, object]:
        """The FD now, as a trace's `after` (specs/traces.md)."""


@dataclass(frozen=True)
class Expectation:
    """What one step must do."""

    entered: frozenset[int]  # borrows started in this step whose fn must be running
    paused: Mapping[int, str]  # thread -> callback that must have paused there
    waits: bool  # the call started in this step must still be running after it
    returns: Mapping[int, str]  # call id -> result, for each call that returns now
    names: Mapping[int, str]  # call id -> "T1 close#4", for messages
    after: Mapping[str, object]
    running: frozenset[int] = field(default_factory=frozenset)  # calls still running after

    @classmethod
    def of_trace_step(
        cls, step: Mapping[str, object], names: Mapping[int, str], running: frozenset[int]
    ) -> Expectation:
        returns = step["returns"]
        paused = step.get("paused", [])
        after = step["after"]
        assert isinstance(returns, list) and isinstance(paused, list)
        assert isinstance(after, dict)
        index = int(str(step["step"]))
        return cls(
            entered=frozenset({index} if step["started"] == "fn running" else ()),
            paused={int(p["thread"]): str(p["callback"]) for p in paused},
            waits=step["started"] == "waits",
            returns={int(r["step"]): str(r["result"]) for r in returns},
            names=names,
            after=after,
            running=running,
        )


@dataclass
class Settled:
    problems: list[str]
    returned: dict[int, str]  # call id -> result, for every call that returned


def settle(port: Port, expect: Expectation, wait_s: float = EXPECT_S) -> Settled:
    """Wait for what this step must do; the disagreements found."""
    want: dict[tuple[str, int], str] = {("returned", i): r for i, r in expect.returns.items()}
    want.update({("entered", i): "ok" for i in expect.entered})
    want.update({("paused", t): kind for t, kind in expect.paused.items()})
    got: dict[tuple[str, int], str] = {}
    anomalies: list[str] = []
    waited = wait_s
    deadline = time.monotonic() + wait_s
    while not want.keys() <= got.keys():
        report = port.next_report(max(0.0, deadline - time.monotonic()))
        if report is None:
            break
        if report.kind == "anomaly":
            anomalies.append(report.result)
            continue
        got[report.key()] = report.result
        if report.key() not in want:
            waited = 0.0  # the step already disagrees; waiting only slows shrinking
            deadline = time.monotonic()
            break
    observed = _await(port, expect.after, deadline)
    if expect.waits:
        anomalies += _collect(port, got, BLOCKED_S)  # the blocked call must not return now
    anomalies += _collect(port, got, 0.0)
    problems = [*_compare_reports(expect, want, got, waited), *_compare_after(expect, observed)]
    problems += [f"anomaly: {what}" for what in anomalies]
    returned = {k[1]: r for k, r in got.items() if k[0] == "returned"}
    return Settled(problems, returned)


def _await(port: Port, expected: Mapping[str, object], deadline: float) -> dict[str, object]:
    while True:
        observed = port.observe()
        if observed == expected or time.monotonic() >= deadline:
            return observed
        time.sleep(POLL_S)


def _collect(port: Port, got: dict[tuple[str, int], str], wait_s: float) -> list[str]:
    """Take every report that comes within `wait_s`; the anomalies among them."""
    anomalies: list[str] = []
    deadline = time.monotonic() + wait_s
    while True:
        report = port.next_report(max(0.0, deadline - time.monotonic()))
        if report is None:
            return anomalies
        if report.kind == "anomaly":
            anomalies.append(report.result)
        else:
            got[report.key()] = report.result


def _name(expect: Expectation, key: tuple[str, int]) -> str:
    if key[0] == "paused":
        return f"T{key[1]}"
    return expect.names.get(key[1], f"call #{key[1]}")


def _compare_reports(
    expect: Expectation,
    want: dict[tuple[str, int], str],
    got: dict[tuple[str, int], str],
    waited: float,
) -> list[str]:
    problems = []
    what = {"entered": "fn entered", "returned": "returned", "paused": "paused in"}
    for key, result in want.items():
        name = _name(expect, key)
        if key not in got:
            late = f" within {waited}s (still blocked?)" if waited else ""
            problems.append(f"{name}: expected {what[key[0]]} {result}, but nothing{late}")
        elif got[key] != result:
            problems.append(f"{name}: expected {what[key[0]]} {result}, got {got[key]}")
    for key, result in got.items():
        if key not in want:
            early = " while it should still be running" if key[1] in expect.running else ""
            problems.append(f"{_name(expect, key)}: unexpected {what[key[0]]} {result}{early}")
    return problems


def _compare_after(expect: Expectation, observed: Mapping[str, object]) -> list[str]:
    if observed == expect.after:
        return []
    lines = [f"FD after the step: expected {describe(expect.after)}"]
    lines.append(f"                   observed {describe(observed)}")
    for name in expect.after.keys() | observed.keys():
        want, have = expect.after.get(name), observed.get(name)
        if want != have:
            lines.append(f"    {name}: expected {want}, observed {have}")
    return lines
