"""Conformance traces for ports, generated from the model: specs/traces/*.json.

Each scenario of model.scenarios is run on the model (model.lifecycle),
which supplies every expected result and the FD after each step; the
guarantees (model.guarantees) are checked after every step, and every
transition is matched to its row of specs/rcfd.md's table by id. Each trace
is tagged with what a runtime needs to replay it (TAGS). The format is
documented in specs/traces.md.

    python -m model.traces           # rewrite specs/traces/*.json
    python -m model.traces --check   # exit 1 if the files differ from the model
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from model.guarantees import violations
from model.lifecycle import FDModel
from model.scenarios import SCENARIOS, Scenario
from model.spec_table import matching_row, rows, table_step
from model.vocabulary import Step, TableEvent

TRACES = Path(__file__).resolve().parent.parent / "specs" / "traces"
FORMAT = "rcfd-trace/2"

# What a runtime must have to replay a trace; a port without it skips the
# traces tagged so (specs/traces.md, "Capability tags").
TAGS = {
    "needs-finalizer": "the FD is closed by its finalizer (a drop that finds it OPEN, or "
    "finds borrows held by garbage)",
    "needs-cycle-finalizer": "the finalizer runs on an FD in a reference cycle (with a "
    "generator holding a borrow, or with a close_func that refers to its FD)",
    "needs-thread-identity": "a close is refused because of what the calling thread holds "
    "or runs (a borrow, close_func): the FD knows which thread calls",
    "needs-async-exceptions": "a borrow's fn is left by an interruption that is not an "
    "ordinary error (Python: KeyboardInterrupt; Go, Rust: a panic)",
    "needs-borrow-object": "a borrow is held by an object (a suspended generator) rather "
    "than by a running fn, and released where that object is closed",
}

# Rows no sequence of public calls reaches, by id, and why (specs/traces.md
# repeats this).
UNREACHABLE: dict[str, str] = {
    "UNINIT.FINISH": "FINISH comes only from the caller told RUN_CLOSE, in CLOSING",
    "OPEN.FINISH": "FINISH comes only from the caller told RUN_CLOSE, in CLOSING",
    "CLOSING.FINISH": "RUN_CLOSE is given at zero borrows, and none can start "
    "in CLOSING, so FINISH never meets a borrow",
    "CLOSED.FINISH": "close_func runs once, so FINISH comes once",
}


def row_id(event: TableEvent) -> str:
    """The id of the row of specs/rcfd.md's table that `event` goes through.

    Raises ValueError if the model's step disagrees with that row.
    """
    inputs = (event.state, event.borrows, event.caller, event.event, event.in_close_func)
    try:
        row = matching_row(*inputs)
    except LookupError:
        raise ValueError(f"no row of specs/rcfd.md for {event}") from None
    spec = table_step(*inputs)
    if spec != (event.next_state, event.borrows_after, event.outcome):
        raise ValueError(f"the model's {event} disagrees with specs/rcfd.md row {row.id}: {spec}")
    return row.id


def unreachable_rows() -> dict[str, str]:
    ids = {row.id for row in rows()}
    stale = UNREACHABLE.keys() - ids
    if stale:
        raise ValueError(f"UNREACHABLE names rows specs/rcfd.md lacks: {sorted(stale)}")
    return dict(UNREACHABLE)


def tags(scenario: Scenario, steps: list[Step], model: FDModel) -> list[str]:
    """What a runtime needs to replay `scenario` (TAGS), from what its run did."""
    found = set()
    for step in steps:
        call = step.started.command
        outcomes = {e.outcome for e in step.events}
        if outcomes & {"REFUSE_CLOSE_IN_BORROW", "REFUSE_CLOSE_IN_CLOSE_FUNC"}:
            found.add("needs-thread-identity")
        if call.call == "end_borrow" and call.arg == "interrupt":
            found.add("needs-async-exceptions")
        if call.call in ("hold_borrow", "release_held"):
            found.add("needs-borrow-object")
        if call.call == "drop" and outcomes != {"IGNORE"}:
            found.add("needs-finalizer")
            if any(e.event == "RELEASE" for e in step.events) or model.resurrected:
                found.add("needs-cycle-finalizer")
    return sorted(found)


def trace(scenario: Scenario) -> dict[str, object]:
    """Run `scenario` on the model: the trace file's content."""
    model = FDModel(scenario.threads)
    steps: list[dict[str, object]] = []
    ran: list[Step] = []
    for index, command in enumerate(scenario.commands):
        step = model.apply(command)
        ran.append(step)
        broken = violations(model)
        if broken:
            raise AssertionError(f"{scenario.name} step {index}: the model breaks {broken}")
        started = "fn running" if step.entered else "waits" if step.blocks else "returned"
        returns = sorted(step.completed, key=lambda c: c.id)  # a set: sorted for diffs
        steps.append(
            {
                "step": index,
                "thread": command.thread,
                "call": command.call,
                "arg": command.arg,
                "started": started,
                "paused": [{"thread": c.thread, "callback": c.kind} for c in step.paused],
                "returns": [
                    {"step": c.id, "thread": c.thread, "call": c.command.call, "result": c.result}
                    for c in returns
                ],
                "after": asdict(model.observe()),
                "table": [{**asdict(e), "row": row_id(e)} for e in step.events],
            }
        )
    return {
        "format": FORMAT,
        "name": scenario.name,
        "description": scenario.description,
        "guarantees": list(scenario.guarantees),
        "tags": tags(scenario, ran, model),
        "threads": scenario.threads,
        "steps": steps,
    }


def render(scenario: Scenario) -> str:
    """The trace as JSON laid out for reading and diffing: one line per field
    of the file and per field of each step."""
    content = trace(scenario)
    fields = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in content.items() if k != "steps"]
    steps = content["steps"]
    assert isinstance(steps, list)
    rendered = [
        "  {" + ",\n   ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in step.items()) + "}"
        for step in steps
    ]
    return "{\n" + ",\n".join(fields) + ',\n "steps": [\n' + ",\n".join(rendered) + "\n ]\n}\n"


def expected_files() -> dict[str, str]:
    """File name -> content, for every scenario, in order."""
    return {f"{i:02d}_{s.name}.json": render(s) for i, s in enumerate(SCENARIOS, start=1)}


def main(argv: list[str]) -> int:
    files = expected_files()
    if "--check" in argv:
        have = {p.name: p.read_text() for p in TRACES.glob("*.json")}
        stale = sorted(n for n in files.keys() | have.keys() if files.get(n) != have.get(n))
        for name in stale:
            print(f"stale: specs/traces/{name}")
        return 1 if stale else 0
    TRACES.mkdir(parents=True, exist_ok=True)
    for old in TRACES.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (TRACES / name).write_text(text)
    print(f"wrote {len(files)} traces to {TRACES}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
