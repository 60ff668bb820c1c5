"""The transition table of specs/rcfd.md, read as data, and a `step` that obeys it.

`table_step` answers from the Markdown table alone (it never calls
rcfd._lifecycle.step), so a test or CrossHair can check that the code and the
spec say the same thing for every input.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import NamedTuple

SPEC = Path(__file__).resolve().parent.parent / "specs" / "rcfd.md"
_WHEN = re.compile(r"^(borrows|caller) (==|>) (\d+)$")


class Row(NamedTuple):
    state: str  # State name, e.g. "OPEN"
    event: str  # Event name, e.g. "CLOSE"
    when: str  # "-", "<borrows|caller> <==|>> <int>" or "in close_func"
    next_state: str
    borrows_after: str  # "0", "n", "n+1" or "n-1"
    outcome: str  # Outcome name


@functools.cache
def rows() -> tuple[Row, ...]:
    text = SPEC.read_text()
    begin = text.index("<!-- transition-table:begin -->")
    end = text.index("<!-- transition-table:end -->")
    parsed = []
    for line in text[begin:end].splitlines()[3:]:  # skip marker, header, rule
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6:
            raise ValueError(f"{SPEC}: malformed table row: {line!r}")
        parsed.append(Row(*cells))
    return tuple(parsed)


def holds(when: str, borrows: int, caller: int, in_close_func: bool = False) -> bool:
    if when == "-":
        return True
    if when == "in close_func":
        return in_close_func
    match = _WHEN.match(when)
    if match is None:
        raise ValueError(f"{SPEC}: cannot read condition {when!r}")
    value = borrows if match[1] == "borrows" else caller
    bound = int(match[3])
    return value == bound if match[2] == "==" else value > bound


def table_step(
    state: str, borrows: int, caller: int, event: str, in_close_func: bool = False
) -> tuple[str, int, str]:
    """(next state, borrows after, outcome) names by the first matching row.

    Raises LookupError where the table has no row (a pair that cannot happen).
    """
    for row in rows():
        if row.state == state and row.event == event and holds(
            row.when, borrows, caller, in_close_func
        ):
            after = {"0": 0, "n": borrows, "n+1": borrows + 1, "n-1": borrows - 1}
            return row.next_state, after[row.borrows_after], row.outcome
    raise LookupError(f"specs/rcfd.md has no row for {state} x {event}")
