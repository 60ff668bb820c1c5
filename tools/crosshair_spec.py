"""rcfd._lifecycle.step and the transition table of specs/rcfd.md, as one contract.

CrossHair (`tools/crosshair_check.py`) proves the postcondition of
`step_as_table` over every input its preconditions allow, borrows unbounded:
step()'s answer, spelled with names, is the first matching row of the table.
Names and ints, not enum members, are compared, so that a wrong member
cannot compare equal to the right one.
"""

from __future__ import annotations

from model.spec_table import rows, table_step
from rcfd._lifecycle import Event, State, step

# Read the Markdown now, once: under CrossHair the contract then does pure
# matching on constant rows, with no file I/O inside the analysis.
ROWS = rows()

__all__ = ["step_as_table", "table_step"]  # table_step is used by the postcondition

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
