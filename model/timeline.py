"""A run of the model as a table a person reads top to bottom: one row per
step, with the thread, the call, what returned in that step and the FD after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from model.vocabulary import Command, Observation, Step


def describe(after: Mapping[str, object]) -> str:
    """An FD observed (an Observation as a dict, or a trace's `after`) in one line."""
    text = f"{after.get('state')} borrows={after.get('borrows')}"
    text += f" close_func={after.get('close_func_calls')}"
    text += f" on_closing={after.get('on_closing_calls')}"
    if after.get("closers_waiting"):
        text += f" closers_waiting={after.get('closers_waiting')}"
    registry = after.get("registry")
    if isinstance(registry, dict) and any(registry.values()):
        text += " reg(" + " ".join(f"{k}={v}" for k, v in registry.items()) + ")"
    if after.get("resource_warnings") or after.get("runtime_warnings"):
        text += (
            f" warnings(resource={after.get('resource_warnings')}"
            f" runtime={after.get('runtime_warnings')})"
        )
    return text


@dataclass(frozen=True)
class Row:
    command: Command
    returned: tuple[str, ...]  # "T1 close#4 -> ok", "T0 begin_borrow#2 -> fn running"
    after: Observation


@dataclass
class Timeline:
    rows: list[Row] = field(default_factory=list)

    def add(self, command: Command, step: Step, after: Observation) -> Row:
        returned = [f"{call} -> {call.result}" for call in step.completed]
        if step.entered:
            returned.insert(0, f"{step.started} -> fn running")
        elif step.blocks:
            returned.insert(0, f"{step.started} -> waits")
        row = Row(command, tuple(returned), after)
        self.rows.append(row)
        return row

    @staticmethod
    def line(index: int, row: Row) -> str:
        returned = "; ".join(row.returned) or "-"
        return f"#{index:<3} {row.command!s:<24} {returned:<52} | {describe(asdict(row.after))}"

    def render(self, problems: tuple[str, ...] = ()) -> str:
        header = f"{'step':<4} {'thread call':<24} {'returned in this step':<52} | FD after"
        lines = [header, "-" * len(header)]
        lines += [self.line(i, row) for i, row in enumerate(self.rows)]
        if problems:
            lines.append(f"^^^ step #{len(self.rows) - 1} disagrees with the model:")
            lines += [f"    {p}" for p in problems]
        return "\n".join(lines)
