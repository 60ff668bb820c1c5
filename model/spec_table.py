"""The transition table of specs/rcfd.md, read as data, and a `step` that obeys it.

`table_step` answers from the Markdown table alone (it never calls
rcfd._lifecycle.step), so a test or CrossHair can check that the code and the
spec say the same thing for every input. specs/transitions.json is the same
table for ports (JSON), written from the Markdown by `python -m
model.spec_table` and kept equal to it by tests/test_spec_table.py.

Each row has a stable id, `STATE.EVENT` or `STATE.EVENT[when]` (for example
`CLOSING.RELEASE[borrows == 1]`): inserting a row changes no other row's id,
so traces cite rows by id, never by position. Within a (state, event) pair
the conditions differ, and `-` ends the pair, so ids are unique.

    python -m model.spec_table           # rewrite specs/transitions.json
    python -m model.spec_table --check   # exit 1 if it differs from specs/rcfd.md
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPEC = SPECS / "rcfd.md"
JSON_TABLE = SPECS / "transitions.json"
JSON_FORMAT = "rcfd-transitions/1"
_WHEN = re.compile(r"^(borrows|caller) (==|>) (\d+)$")
IN_CLOSE_FUNC = "in close_func"


class Row(NamedTuple):
    state: str  # State name, e.g. "OPEN"
    event: str  # Event name, e.g. "CLOSE"
    when: str  # "-", "<borrows|caller> <==|>> <int>" or "in close_func"
    next_state: str
    borrows_after: str  # "0", "n", "n+1" or "n-1"
    outcome: str  # Outcome name

    @property
    def id(self) -> str:
        """Stable under insertion: `OPEN.CLOSE`, `OPEN.CLOSE[caller > 0]`."""
        base = f"{self.state}.{self.event}"
        return base if self.when == "-" else f"{base}[{self.when}]"


def parse_markdown(text: str) -> tuple[Row, ...]:
    begin = text.index("<!-- transition-table:begin -->")
    end = text.index("<!-- transition-table:end -->")
    parsed = []
    for line in text[begin:end].splitlines()[3:]:  # skip marker, header, rule
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6:
            raise ValueError(f"{SPEC}: malformed table row: {line!r}")
        parsed.append(Row(*cells))
    ids = [row.id for row in parsed]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{SPEC}: two rows share an id: {twice}")
    return tuple(parsed)


@functools.cache
def rows() -> tuple[Row, ...]:
    """The rows of specs/rcfd.md, in order (the order matters within a pair)."""
    return parse_markdown(SPEC.read_text())


def holds(when: str, borrows: int, caller: int, in_close_func: bool = False) -> bool:
    if when == "-":
        return True
    if when == IN_CLOSE_FUNC:
        return in_close_func
    match = _WHEN.match(when)
    if match is None:
        raise ValueError(f"{SPEC}: cannot read condition {when!r}")
    value = borrows if match[1] == "borrows" else caller
    bound = int(match[3])
    return value == bound if match[2] == "==" else value > bound


def matching_row(
    state: str,
    borrows: int,
    caller: int,
    event: str,
    in_close_func: bool = False,
    table: tuple[Row, ...] | None = None,
) -> Row:
    """The first row of `table` (default: specs/rcfd.md) for these inputs.

    Raises LookupError where the table has no row (a pair that cannot happen).
    """
    for row in rows() if table is None else table:
        if (row.state, row.event) == (state, event) and holds(
            row.when, borrows, caller, in_close_func
        ):
            return row
    raise LookupError(f"specs/rcfd.md has no row for {state} x {event}")


def after(row: Row, borrows: int) -> int:
    return {"0": 0, "n": borrows, "n+1": borrows + 1, "n-1": borrows - 1}[row.borrows_after]


def table_step(
    state: str, borrows: int, caller: int, event: str, in_close_func: bool = False
) -> tuple[str, int, str]:
    """(next state, borrows after, outcome) names by the first matching row."""
    row = matching_row(state, borrows, caller, event, in_close_func)
    return row.next_state, after(row, borrows), row.outcome


# -- the CLOSING table ------------------------------------------------------------


class CloseRow(NamedTuple):
    stage: str  # Stage name, e.g. "DRAINING"
    event: str  # CloseEvent name, e.g. "ZERO"
    when: str  # "-" or atoms joined by " and ": "timed out", "owner waits", "borrows == K"
    next_stage: str
    duty: str  # Duty name


@functools.cache
def closing_rows() -> tuple[CloseRow, ...]:
    """The rows of specs/rcfd.md's CLOSING table, in order."""
    text = SPEC.read_text()
    begin = text.index("<!-- closing-table:begin -->")
    end = text.index("<!-- closing-table:end -->")
    parsed = []
    for line in text[begin:end].splitlines()[3:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5:
            raise ValueError(f"{SPEC}: malformed CLOSING row: {line!r}")
        parsed.append(CloseRow(*cells))
    return tuple(parsed)


def close_holds(when: str, borrows: int, timed_out: bool, owner_waits: bool) -> bool:
    if when == "-":
        return True
    for atom in when.split(" and "):
        if atom == "timed out":
            ok = timed_out
        elif atom == "owner waits":
            ok = owner_waits
        elif atom.startswith("borrows == "):
            ok = borrows == int(atom.removeprefix("borrows == "))
        else:
            raise ValueError(f"{SPEC}: cannot read CLOSING condition {when!r}")
        if not ok:
            return False
    return True


def close_table_step(
    stage: str, event: str, borrows: int, timed_out: bool, owner_waits: bool
) -> tuple[str, str]:
    """(next stage, duty) names by the first matching CLOSING row (LookupError
    where there is none: an input that cannot happen)."""
    for row in closing_rows():
        if (row.stage, row.event) == (stage, event) and close_holds(
            row.when, borrows, timed_out, owner_waits
        ):
            return row.next_stage, row.duty
    raise LookupError(f"specs/rcfd.md's CLOSING table has no row for {stage} x {event}")


# -- specs/transitions.json ----------------------------------------------------


def to_json(table: tuple[Row, ...]) -> str:
    """The table as a port reads it: rows in order, each with its id."""
    content = {
        "format": JSON_FORMAT,
        "source": "specs/rcfd.md, between the transition-table markers; regenerate with "
        "`python -m model.spec_table`",
        "inputs": ["state", "borrows", "caller", "event", "in_close_func"],
        "match": "the first row, in order, whose state and event are the input's and whose "
        "`when` holds; no row means the input cannot happen",
        "when": {
            "-": "always",
            "borrows == K / caller > K": "a comparison of the input with the integer K",
            IN_CLOSE_FUNC: "in_close_func is true",
        },
        "borrows_after": {"0": "0", "n": "borrows", "n+1": "borrows + 1", "n-1": "borrows - 1"},
    }
    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in content.items()]
    lines = [f"  {json.dumps({'id': row.id, **row._asdict()})}" for row in table]
    return "{\n" + ",\n".join(head) + ',\n "rows": [\n' + ",\n".join(lines) + "\n ]\n}\n"


def from_json(text: str) -> tuple[Row, ...]:
    content = json.loads(text)
    if content.get("format") != JSON_FORMAT:
        raise ValueError(f"{JSON_TABLE}: unknown format {content.get('format')!r}")
    table = []
    for entry in content["rows"]:
        row = Row(*(str(entry[f]) for f in Row._fields))
        if entry["id"] != row.id:
            raise ValueError(f"{JSON_TABLE}: row {entry} has id {entry['id']!r}, not {row.id!r}")
        table.append(row)
    return tuple(table)


def main(argv: list[str]) -> int:
    want = to_json(rows())
    if "--check" in argv:
        stale = not JSON_TABLE.exists() or JSON_TABLE.read_text() != want
        if stale:
            print(f"stale: {JSON_TABLE.relative_to(SPECS.parent)} (run python -m model.spec_table)")
        return 1 if stale else 0
    JSON_TABLE.write_text(want)
    print(f"wrote {len(rows())} rows to {JSON_TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
