"""specs/rcfd.md's transition table and rcfd._lifecycle.step say the same thing."""

from __future__ import annotations

import itertools

import pytest

from rcfd._lifecycle import Event, State, step
from tools.spec_table import holds, rows, table_step


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
