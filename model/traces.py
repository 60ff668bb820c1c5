"""Conformance traces for ports, generated from the model: specs/traces/*.json.

Each scenario below is a short program of thread/call commands chosen to
show one guarantee of specs/rcfd.md or to reach rows of its transition
table; the model (model.lifecycle) supplies every expected result and the FD
after each step. The format is documented in specs/traces.md.

    python -m model.traces           # rewrite specs/traces/*.json
    python -m model.traces --check   # exit 1 if the files differ from the model
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from model.guarantees import violations
from model.lifecycle import Command, FDModel, TableEvent
from model.spec_table import holds, rows, table_step

TRACES = Path(__file__).resolve().parent.parent / "specs" / "traces"
FORMAT = "rcfd-trace/1"

# Rows no sequence of public calls reaches, and why (specs/traces.md repeats this).
UNREACHABLE: dict[tuple[str, str, str], str] = {
    ("OPEN", "FINALIZE", "-"): "not yet in the model: a borrow held by garbage (issue 12; "
    "tests/test_side_doors.py checks it against rcfd)",
    ("CLOSING", "CLOSE", "in close_func"): "not yet in the model: callbacks that call back "
    "into their FD (issue 12; tests/test_side_doors.py checks it against rcfd)",
    ("CLOSING", "DETACH", "in close_func"): "not yet in the model: callbacks that call back "
    "into their FD (issue 12; tests/test_side_doors.py checks it against rcfd)",
    ("CLOSING", "FINALIZE", "-"): "CLOSING lasts while borrows run (or close_func runs), "
    "and each of them holds a reference",
    ("UNINIT", "FINISH", "-"): "FINISH comes only from the caller told RUN_CLOSE, in CLOSING",
    ("OPEN", "FINISH", "-"): "FINISH comes only from the caller told RUN_CLOSE, in CLOSING",
    ("CLOSING", "FINISH", "-"): "RUN_CLOSE is given at zero borrows, and none can start "
    "in CLOSING, so FINISH never meets a borrow",
    ("CLOSED", "FINISH", "-"): "close_func runs once, so FINISH comes once",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    guarantees: tuple[int, ...]
    commands: tuple[Command, ...]
    threads: int = 3


def _c(thread: int, call: str, arg: str = "") -> Command:
    return Command(thread, call, arg)


INIT = _c(0, "init", "ok")
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "basic_lifecycle",
        "init, one borrow, close with no borrow running: close_func runs in close().",
        (1,),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "uninitialized_refusals",
        "Every call but init and track_lifetime is refused before init, changing nothing.",
        (10,),
        (
            _c(0, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(1, "track_lifetime"),
            _c(1, "track_lifetime"),
            INIT,
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "init_and_track_refusals",
        "init twice is MultipleInit; init once close began is ClosedFD; track_lifetime "
        "after init is MultipleInit; in OPEN, CLOSING and CLOSED, changing nothing.",
        (10,),
        (
            INIT,
            _c(1, "init", "ok"),
            _c(1, "track_lifetime"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "init", "ok"),
            _c(2, "track_lifetime"),
            _c(0, "end_borrow", "return"),
            _c(2, "init", "ok"),
            _c(2, "track_lifetime"),
        ),
    ),
    Scenario(
        "refused_after_close",
        "Once CLOSED, borrows, close and detach are refused with ClosedFD; close_func "
        "is not called again.",
        (1, 2, 5),
        (
            INIT,
            _c(0, "close", "none"),
            _c(1, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(1, "close", "none"),
            _c(2, "detach"),
        ),
    ),
    Scenario(
        "close_waits_for_borrows",
        "close() waits for the two running borrows; a borrow tried meanwhile is "
        "refused at once (it cannot starve the close); the last release runs close_func.",
        (1, 2, 4),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(2, "close", "none"),
            _c(0, "begin_borrow", "do"),
            _c(1, "end_borrow", "return"),
            _c(1, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "second_closer_waits",
        "A second close() waits for the first close to finish, then raises ClosedFD; "
        "so does a detach() that comes second.",
        (1, 5),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "close_inside_borrow",
        "close()/detach() by a thread that holds a borrow is refused at once, in OPEN "
        "and in CLOSING, changing nothing.",
        (6, 10),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(1, "close", "none"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "nested_borrows",
        "Borrows nest on one thread and each counts; the close waits for the outermost.",
        (1, 4),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "begin_borrow", "borrow"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "end_borrow", "return"),
            _c(0, "end_borrow", "raise"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "borrow_released_however_fn_exits",
        "A borrow ends when fn returns, raises, or raises a BaseException; do() "
        "passes fn's result or exception through.",
        (3,),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "raise"),
            _c(1, "begin_borrow", "borrow"),
            _c(1, "end_borrow", "interrupt"),
            _c(2, "begin_borrow", "do"),
            _c(2, "end_borrow", "return"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "end_borrow", "interrupt"),
        ),
    ),
    Scenario(
        "close_func_raises",
        "close_func raises: the FD is still CLOSED, the closer that began the close "
        "gets the error, a waiting closer gets ClosedFD, the registry counts close_failed.",
        (1, 5, 7),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "close", "none"),
            _c(0, "end_borrow", "return"),
            _c(1, "close", "none"),
        ),
    ),
    Scenario(
        "close_timeout_expires",
        "close(timeout) gives up while a borrow runs: TimeoutError, the FD stays "
        "CLOSING, and the last borrow closes it exactly once.",
        (1, 5, 8),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(2, "close", "expires"),
            _c(1, "begin_borrow", "do"),
            _c(2, "close", "none"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "close_timeout_not_needed",
        "close(timeout) with no borrow running closes at once.",
        (4, 8),
        (INIT, _c(1, "close", "expires")),
    ),
    Scenario(
        "timeout_then_close_func_raises",
        "The closer timed out, so when close_func raises nobody receives the error: "
        "it is reported as a RuntimeWarning and counted as close_failed.",
        (7, 8),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "detach_hands_the_number_back",
        "detach() waits for the borrows like close(), then hands the number back "
        "instead of calling close_func; a second detach waits, then gets ClosedFD.",
        (1, 5),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "detach"),
            _c(2, "detach"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "detach_after_close_timed_out",
        "A detach that arrives after a close began (and timed out) only waits: the "
        "close began as a close, so close_func runs and the detach gets ClosedFD.",
        (5, 8),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(1, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "finalizer_closes_a_dropped_fd",
        "An OPEN FD that becomes unreachable is closed by its finalizer: close_func "
        "once, a ResourceWarning, counted as finalized (a leak).",
        (9,),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
            _c(0, "drop"),
        ),
    ),
    Scenario(
        "finalizer_ignores_uninit",
        "Dropping an FD that was never initialized does nothing.",
        (9,),
        (_c(0, "track_lifetime"), _c(0, "drop")),
    ),
    Scenario(
        "finalizer_ignores_closed",
        "close() disarms the finalizer: dropping a closed FD does nothing.",
        (9,),
        (_c(0, "track_lifetime"), INIT, _c(0, "close", "none"), _c(0, "drop")),
    ),
    Scenario(
        "invalid_timeout_in_every_state",
        "A negative timeout is an invalid argument, refused before the state is "
        "looked at, in every state, changing nothing.",
        (10,),
        (
            _c(0, "close", "invalid"),
            INIT,
            _c(0, "close", "invalid"),
            _c(0, "begin_borrow", "do"),
            _c(0, "close", "invalid"),
            _c(1, "close", "none"),
            _c(2, "close", "invalid"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "invalid"),
        ),
    ),
)


def row_index(event: TableEvent) -> int:
    """The 1-based row of specs/rcfd.md's table that `event` goes through.

    Raises ValueError if the model's step disagrees with that row.
    """
    for index, row in enumerate(rows(), start=1):
        if (row.state, row.event) == (event.state, event.event) and holds(
            row.when, event.borrows, event.caller
        ):
            spec = table_step(event.state, event.borrows, event.caller, event.event)
            mine = (event.next_state, event.borrows_after, event.outcome)
            if spec != mine:
                raise ValueError(f"the model's {event} disagrees with specs/rcfd.md: {spec}")
            return index
    raise ValueError(f"no row of specs/rcfd.md for {event}")


def unreachable_rows() -> dict[int, str]:
    return {
        index: UNREACHABLE[(row.state, row.event, row.when)]
        for index, row in enumerate(rows(), start=1)
        if (row.state, row.event, row.when) in UNREACHABLE
    }


def trace(scenario: Scenario) -> dict[str, object]:
    """Run `scenario` on the model: the trace file's content."""
    model = FDModel(scenario.threads)
    steps: list[dict[str, object]] = []
    for index, command in enumerate(scenario.commands):
        step = model.apply(command)
        broken = violations(model)
        if broken:
            raise AssertionError(f"{scenario.name} step {index}: the model breaks {broken}")
        started = "fn running" if step.entered else "waits" if step.blocks else "returned"
        steps.append(
            {
                "step": index,
                "thread": command.thread,
                "call": command.call,
                "arg": command.arg,
                "started": started,
                "returns": [
                    {"step": c.id, "thread": c.thread, "call": c.command.call, "result": c.result}
                    for c in step.completed
                ],
                "after": asdict(model.observe()),
                "table": [{**asdict(e), "row": row_index(e)} for e in step.events],
            }
        )
    return {
        "format": FORMAT,
        "name": scenario.name,
        "description": scenario.description,
        "guarantees": list(scenario.guarantees),
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
