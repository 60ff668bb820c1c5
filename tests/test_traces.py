"""specs/traces/*.json replayed against the production FD, as a port would.

The replay reads only the JSON (specs/traces.md): each step's call goes to a
real thread, and the step's "returns", "started" and "after" are checked
with bounded waits (tests/_model_harness.py). Two more tests keep the files
honest: they are what `python -m model.traces` generates from the model, and
together they reach every row of specs/rcfd.md's transition table that a
program can reach, and show every guarantee.

    .venv/3.13/bin/python -m pytest -q -s -p no:cacheprovider tests/test_traces.py
prints "traces: <N> traces, <M> steps replayed, ..." on success.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model.lifecycle import Command, Observation, Registry
from model.spec_table import rows
from model.traces import FORMAT, TRACES, expected_files, unreachable_rows
from tests._model_harness import EXPECT_S, Expectation, RealFD

FILES = sorted(TRACES.glob("*.json"))
REPLAYED: dict[str, int] = {}  # trace name -> steps replayed, for the summary


def load(path: Path) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(path.read_text())
    assert content["format"] == FORMAT, f"{path.name}: unknown format {content['format']!r}"
    return content


def observation(after: dict[str, Any]) -> Observation:
    return Observation(**{**after, "registry": Registry(**after["registry"])})


def timeline(steps: list[dict[str, Any]], upto: int) -> str:
    lines = []
    for step in steps[: upto + 1]:
        who = "--" if step["call"] == "drop" else f"T{step['thread']}"
        returned = "; ".join(
            f"T{r['thread']} {r['call']}#{r['step']} -> {r['result']}" for r in step["returns"]
        )
        lines.append(
            f"#{step['step']:<3} {who} {step['call']}({step['arg']})".ljust(32)
            + f"{step['started']:<11} {returned or '-'}"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_replay(path: Path) -> None:
    trace = load(path)
    steps: list[dict[str, Any]] = trace["steps"]
    RealFD.expect_s = EXPECT_S
    real = RealFD(trace["threads"])
    names = {s["step"]: f"T{s['thread']} {s['call']}#{s['step']}" for s in steps}
    running: set[int] = set()
    try:
        for step in steps:
            returns = {r["step"]: r["result"] for r in step["returns"]}
            if step["started"] != "returned":
                running.add(step["step"])
            running -= returns.keys()
            expect = Expectation(
                entered=frozenset({step["step"]} if step["started"] == "fn running" else ()),
                waits=step["started"] == "waits",
                returns=returns,
                names=names,
                after=observation(step["after"]),
                running=frozenset(running),
            )
            real.send(step["step"], Command(step["thread"], step["call"], step["arg"]))
            problems = real.settle(expect)
            assert not problems, (
                f"{path.name} ({trace['description']})\n"
                + timeline(steps, step["step"])
                + f"\n^^^ step #{step['step']} disagrees with the trace:\n    "
                + "\n    ".join(problems)
            )
    finally:
        real.shutdown()
    REPLAYED[trace["name"]] = len(steps)


def test_traces_are_what_the_model_generates() -> None:
    have = {p.name: p.read_text() for p in FILES}
    want = expected_files()
    stale = sorted(n for n in want.keys() | have.keys() if want.get(n) != have.get(n))
    assert not stale, f"regenerate with `python -m model.traces`; stale: {stale}"


def test_traces_cover_every_row_and_guarantee() -> None:
    covered: set[int] = set()
    guarantees: set[int] = set()
    for path in FILES:
        trace = load(path)
        guarantees |= set(trace["guarantees"])
        covered |= {e["row"] for s in trace["steps"] for e in s["table"]}
    unreachable = unreachable_rows()
    table = dict(enumerate(rows(), start=1))
    missing = {i: table[i] for i in table if i not in covered and i not in unreachable}
    assert not missing, f"table rows no trace reaches: {missing}"
    reached = {i: table[i] for i in covered & unreachable.keys()}
    assert not reached, f"rows listed as unreachable are reached: {reached}"
    assert guarantees == set(range(1, 11)), (
        f"guarantees no trace shows: {set(range(1, 11)) - guarantees}"
    )
    print(
        f"\ntraces: {len(FILES)} traces, {sum(REPLAYED.values())} steps replayed, "
        f"{len(covered)}/{len(table)} table rows covered, {len(unreachable)} unreachable "
        f"(rows {', '.join(map(str, sorted(unreachable)))}), guarantees 1-10 shown"
    )
