"""rcfd._lifecycle.step and the transition table of specs/rcfd.md, as one contract.

CrossHair (`tools/crosshair_check.py`) proves the postcondition of
`step_as_table` over every input its preconditions allow, borrows unbounded:
step()'s answer, spelled with names, is the first matching row of the table.
Names and ints, not enum members, are compared, so that a wrong member
cannot compare equal to the right one.
"""

from __future__ import annotations

from model.spec_table import close_table_step, closing_rows, rows, table_step
from rcfd._lifecycle import CloseEvent, Event, Stage, State, close_step, step

# Read the Markdown now, once: under CrossHair the contract then does pure
# matching on constant rows, with no file I/O inside the analysis.
ROWS = rows()
CLOSING_ROWS = closing_rows()

# the *_table_step functions are used by the postconditions
__all__ = ["close_step_as_table", "close_table_step", "step_as_table", "table_step"]

# Note: step() keeps its own contracts when called from here, and CrossHair
# drops the paths on which a callee's postcondition fails (it reports them
# against the callee). Those paths are not lost: the same run checks step()'s
# contracts in rcfd/_lifecycle.py, and tools/crosshair_check.py fails unless
# every condition of both files is confirmed. (A code copy of step() would
# not escape this: CrossHair reads PEP 316 contracts from the source lines.)


def step_as_table(
    state: State, borrows: int, caller: int, event: Event, in_close_func: bool
) -> tuple[str, int, str]:
    """step(state, borrows, caller, event, in_close_func) as (next state,
    borrows after, outcome) names.

    The preconditions are those of step(): the inputs an FD can present.

    pre: 0 <= caller <= borrows
    pre: not in_close_func or (state == State.CLOSING and borrows == 0)
    pre: state != State.UNINIT or borrows == 0
    pre: state != State.CLOSED or borrows == 0
    pre: event != Event.RELEASE or caller > 0
    post: __return__ == table_step(state.name, borrows, caller, event.name, in_close_func)
    """
    transition = step(state, borrows, caller, event, in_close_func)
    return transition.state.name, transition.borrows, transition.outcome.name


def close_step_as_table(
    stage: Stage, event: CloseEvent, borrows: int, timed_out: bool, owner_waits: bool
) -> tuple[str, str]:
    """close_step(...) as (next stage, duty) names: the CLOSING table's row.

    The preconditions are those of close_step().

    pre: borrows >= 0
    pre: event != CloseEvent.ZERO or borrows == 0
    pre: event != CloseEvent.DECIDE or stage == Stage.RUNNING
    pre: event != CloseEvent.FINISH or stage != Stage.DRAINING
    pre: stage == Stage.DRAINING or borrows == 0
    post: __return__ == close_table_step(stage.name, event.name, borrows, timed_out, owner_waits)
    """
    transition = close_step(stage, event, borrows, timed_out, owner_waits)
    return transition.stage.name, transition.duty.name
