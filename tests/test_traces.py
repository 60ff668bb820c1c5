"""specs/traces/*.json replayed against the production FD, as a port would.

The replay reads only the JSON (specs/traces.md): each step's call goes to a
real thread, and the step's "returns", "started", "paused" and "after" are
checked with bounded waits (conformance.replay, as the conformance runner
does through a driver; here in-process, tests/_model_harness.py). Two more
tests keep the files honest: they are what `python -m model.traces`
generates from the model, and together they reach every row of
specs/rcfd.md's transition table that a program can reach, show every
guarantee and carry every capability tag.

    .venv/3.13/bin/python -m pytest -q -s -p no:cacheprovider tests/test_traces.py
prints "traces: <N> traces, <M> steps replayed, ..." on success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.tracefile import FORMAT, load, timeline
from conformance.tracefile import expectations as step_expectations
from model.spec_table import rows
from model.traces import FORMAT as WRITTEN
from model.traces import TAGS, TRACES, expected_files, unreachable_rows
from model.vocabulary import Command
from tests._model_harness import EXPECT_S, RealFD

FILES = sorted(TRACES.glob("*.json"))
REPLAYED: dict[str, int] = {}  # trace name -> steps replayed, for the summary


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_replay(path: Path) -> None:
    trace = load(path)
    steps: list[dict[str, Any]] = trace["steps"]
    RealFD.expect_s = EXPECT_S
    real = RealFD(trace["threads"])
    try:
        for step, expect in step_expectations(trace):
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
    assert WRITTEN == FORMAT, "model.traces writes a format conformance.tracefile cannot read"
    have = {p.name: p.read_text() for p in FILES}
    want = expected_files()
    stale = sorted(n for n in want.keys() | have.keys() if want.get(n) != have.get(n))
    assert not stale, f"regenerate with `python -m model.traces`; stale: {stale}"


def test_traces_cover_every_row_guarantee_and_tag() -> None:
    covered: set[str] = set()
    guarantees: set[int] = set()
    tags: set[str] = set()
    for path in FILES:
        trace = load(path)
        guarantees |= set(trace["guarantees"])
        tags |= set(trace["tags"])
        covered |= {e["row"] for s in trace["steps"] for e in s["table"]}
    unreachable = unreachable_rows()
    table = {row.id: row for row in rows()}
    missing = {i: table[i] for i in table if i not in covered and i not in unreachable}
    assert not missing, f"table rows no trace reaches: {missing}"
    reached = {i: table[i] for i in covered & unreachable.keys()}
    assert not reached, f"rows listed as unreachable are reached: {reached}"
    assert guarantees == set(range(1, 11)), (
        f"guarantees no trace shows: {set(range(1, 11)) - guarantees}"
    )
    assert tags == TAGS.keys(), f"tags no trace carries: {TAGS.keys() - tags}"
    print(
        f"\ntraces: {len(FILES)} traces, {sum(REPLAYED.values())} steps replayed, "
        f"{len(covered)}/{len(table)} table rows covered, {len(unreachable)} unreachable "
        f"({', '.join(sorted(unreachable))}), guarantees 1-10 shown"
    )


def test_traces_md_documents_the_whole_vocabulary() -> None:
    """Every call and argument, result, `after` field and tag the traces use
    is in specs/traces.md's tables, so a porter meets no undocumented word."""
    import dataclasses

    from model import vocabulary

    text = (TRACES.parent / "traces.md").read_text()
    cells = {cell.strip() for line in text.splitlines() for cell in line.split("|")}
    words = {w for cell in cells for w in cell.replace("/", " ").split()}
    missing = [f"call `{c}`" for c in vocabulary.CALL_ARGS if f"`{c}`" not in cells]
    missing += [
        f"{c}({a})"
        for c, args in vocabulary.CALL_ARGS.items()
        for a in args
        if a and f"`{a}`" not in words
    ]
    results = [v for k, v in vars(vocabulary).items() if k.startswith(("OK", "ERR_"))]
    missing += [f"result `{r}`" for r in results if f"`{r}`" not in cells]
    fields = [f.name for f in dataclasses.fields(vocabulary.Observation)]
    missing += [f"after `{f}`" for f in fields if f"`{f}`" not in cells]
    missing += [f"tag `{t}`" for t in TAGS if f"`{t}`" not in cells]
    assert not missing, f"specs/traces.md does not document: {missing}"
