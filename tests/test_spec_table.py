"""specs/rcfd.md's transition table, specs/transitions.json and
rcfd._lifecycle.step say the same thing."""

from __future__ import annotations

import itertools

import pytest

from model.spec_table import (
    JSON_TABLE,
    after,
    close_holds,
    close_table_step,
    closing_rows,
    from_json,
    holds,
    matching_row,
    parse_markdown,
    rows,
    table_step,
    to_json,
)
from rcfd._lifecycle import CloseEvent, Event, Outcome, Stage, State, close_step, step


def reachable_inputs() -> list[tuple[State, int, int, Event, bool]]:
    """Every (state, borrows, caller, event, in_close_func) the FD can present,
    up to 3 borrows. Only the thread running close_func is in_close_func, in
    CLOSING at zero borrows (close_func never runs under a borrow)."""
    inputs = []
    for state, event in itertools.product(State, Event):
        for borrows in range(4):
            if borrows and state in (State.UNINIT, State.CLOSED):
                continue
            for caller in range(borrows + 1):
                if event is Event.RELEASE and caller == 0:
                    continue
                inputs.append((state, borrows, caller, event, False))
        if state is State.CLOSING and event is not Event.RELEASE:
            inputs.append((state, 0, 0, event, True))
    return inputs


@pytest.mark.parametrize("state, borrows, caller, event, in_close_func", reachable_inputs())
def test_step_matches_spec_table(
    state: State, borrows: int, caller: int, event: Event, in_close_func: bool
) -> None:
    code = step(state, borrows, caller, event, in_close_func)
    spec = table_step(state.name, borrows, caller, event.name, in_close_func)
    assert (code.state.name, code.borrows, code.outcome.name) == spec, (
        f"{state.name} x {event.name} (borrows={borrows}, caller={caller}, "
        f"in_close_func={in_close_func}): code says {code}, specs/rcfd.md says {spec}"
    )


def test_every_table_row_is_exercised() -> None:
    used = set()
    for state, borrows, caller, event, in_close_func in reachable_inputs():
        for index, row in enumerate(rows()):
            if (row.state, row.event) == (state.name, event.name) and holds(
                row.when, borrows, caller, in_close_func
            ):
                used.add(index)
                break
    unused = [rows()[i] for i in range(len(rows())) if i not in used]
    assert not unused, f"rows no reachable input selects (dead or shadowed): {unused}"


def test_table_covers_every_state_event_pair() -> None:
    pairs = {(row.state, row.event) for row in rows()}
    missing = [
        (s.name, e.name)
        for s, e in itertools.product(State, Event)
        if (s.name, e.name) not in pairs and e is not Event.RELEASE
    ]
    assert not missing, f"specs/rcfd.md lacks rows for {missing}"


# -- specs/transitions.json ------------------------------------------------------


def test_json_table_is_what_the_markdown_says() -> None:
    assert JSON_TABLE.read_text() == to_json(rows()), (
        "specs/transitions.json is stale: regenerate it with `python -m model.spec_table`"
    )
    assert from_json(JSON_TABLE.read_text()) == rows()


@pytest.mark.parametrize("state, borrows, caller, event, in_close_func", reachable_inputs())
def test_step_matches_json_table(
    state: State, borrows: int, caller: int, event: Event, in_close_func: bool
) -> None:
    """A port that reads only the JSON table gets step()'s answer."""
    table = from_json(JSON_TABLE.read_text())
    row = matching_row(state.name, borrows, caller, event.name, in_close_func, table)
    code = step(state, borrows, caller, event, in_close_func)
    spec = (row.next_state, after(row, borrows), row.outcome)
    assert (code.state.name, code.borrows, code.outcome.name) == spec, (
        f"{state.name} x {event.name} (borrows={borrows}, caller={caller}, "
        f"in_close_func={in_close_func}): code says {code}, row {row.id} says {spec}"
    )


def test_row_ids_survive_an_inserted_row() -> None:
    """Ids name a row by what it matches, not by where it is: a row inserted
    before others leaves every other id as it was."""
    text = (JSON_TABLE.parent / "rcfd.md").read_text()
    marker = "| UNINIT | INIT | - | OPEN | 0 | OK |\n"
    grown = text.replace(marker, "| OPEN | BORROW | caller > 2 | OPEN | n | WAIT |\n" + marker)
    before = [row.id for row in parse_markdown(text)]
    now = [row.id for row in parse_markdown(grown)]
    assert now[0] == "OPEN.BORROW[caller > 2]" and now[1:] == before


def close_inputs() -> list[tuple[Stage, CloseEvent, int, bool, bool]]:
    """Every input close_step's preconditions allow, up to 2 borrows."""
    inputs = []
    for stage, event in itertools.product(Stage, CloseEvent):
        for borrows, timed_out, owner_waits in itertools.product(
            range(3), (False, True), (False, True)
        ):
            if borrows and (stage is not Stage.DRAINING or event is CloseEvent.ZERO):
                continue
            if event is CloseEvent.DECIDE and stage is not Stage.RUNNING:
                continue
            if event is CloseEvent.FINISH and stage is Stage.DRAINING:
                continue
            inputs.append((stage, event, borrows, timed_out, owner_waits))
    return inputs


@pytest.mark.parametrize("stage, event, borrows, timed_out, owner_waits", close_inputs())
def test_close_step_matches_the_closing_table(
    stage: Stage, event: CloseEvent, borrows: int, timed_out: bool, owner_waits: bool
) -> None:
    code = close_step(stage, event, borrows, timed_out, owner_waits)
    spec = close_table_step(stage.name, event.name, borrows, timed_out, owner_waits)
    assert (code.stage.name, code.duty.name) == spec, (
        f"{stage.name} x {event.name} (borrows={borrows}, timed_out={timed_out}, "
        f"owner_waits={owner_waits}): code says {code}, specs/rcfd.md says {spec}"
    )


def test_every_closing_row_is_exercised() -> None:
    used = set()
    for stage, event, borrows, timed_out, owner_waits in close_inputs():
        for index, row in enumerate(closing_rows()):
            if (row.stage, row.event) == (stage.name, event.name) and close_holds(
                row.when, borrows, timed_out, owner_waits
            ):
                used.add(index)
                break
    unused = [row for i, row in enumerate(closing_rows()) if i not in used]
    assert not unused, f"CLOSING rows no input selects (dead or shadowed): {unused}"


def test_the_fd_applies_step_and_close_step_as_read_at_import() -> None:
    """rcfd reads step() into TABLE, and the two fixed CLOSING transitions and
    a fresh FD's INIT into constants, once: they must equal the functions."""
    from rcfd._closing import CLAIM, FINISH
    from rcfd._fd import INIT_FRESH, OPEN_IDLE
    from rcfd._lifecycle import TABLE

    assert close_step(Stage.DRAINING, CloseEvent.ZERO, 0, False, False) == CLAIM
    assert close_step(Stage.RUNNING, CloseEvent.FINISH, 0, False, False) == FINISH
    assert INIT_FRESH == (State.OPEN, Outcome.OK)
    # An OPEN FD with no borrow running: what _step reads without the table,
    # and what close_alone does (BEGIN_CLOSE) without asking.
    for event, outcome in OPEN_IDLE.items():
        assert step(State.OPEN, 0, 0, event).outcome is outcome, event
    assert OPEN_IDLE[Event.CLOSE] is Outcome.BEGIN_CLOSE
    for state, borrows, caller, event, in_close_func in reachable_inputs():
        if event in (Event.BORROW, Event.RELEASE, Event.FINISH):
            continue  # applied inline (test_hot_path.py), FINISH by the close's own table
        key = (state, event, caller > 0, in_close_func, borrows == 0)
        expected = step(state, borrows, caller, event, in_close_func)
        assert TABLE[key] == (expected.state, expected.outcome), key


def test_the_table_holds_exactly_the_inputs_an_fd_can_present() -> None:
    """TABLE has a row for every input an FD can present for the events it
    reads from it, and none for an input no FD can present (a caller's borrow
    with no borrow running, borrows in UNINIT or CLOSED, close_func running
    outside CLOSING or under a borrow): a row there would hide a bug that
    reached it. (Kills mutmut's _table mutants that widen the filter.)"""
    from rcfd._lifecycle import TABLE

    read = (Event.INIT, Event.TRACK, Event.CLOSE, Event.DETACH, Event.FINALIZE)
    expected = {
        (state, event, caller > 0, in_close_func, borrows == 0)
        for state, borrows, caller, event, in_close_func in reachable_inputs()
        if event in read
    }
    assert set(TABLE) == expected
