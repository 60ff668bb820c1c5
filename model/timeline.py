"""A run of the model as a table a person reads top to bottom: one row per
step, with the thread, the call, what returned in that step and the FD after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.vocabulary import Command, Observation, Step


def describe(obs: Observation) -> str:
    r = obs.registry
    text = f"{obs.state} borrows={obs.borrows} close_func={obs.close_func_calls}"
    text += f" on_closing={obs.on_closing_calls}"
    if obs.closers_waiting:
        text += f" closers_waiting={obs.closers_waiting}"
    if r.initialized or r.in_flight:
        text += (
            f" reg(init={r.initialized} closed={r.closed} failed={r.close_failed}"
            f" detached={r.detached} finalized={r.finalized} in_flight={r.in_flight})"
        )
    if obs.resource_warnings or obs.runtime_warnings:
        text += f" warnings(resource={obs.resource_warnings} runtime={obs.runtime_warnings})"
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
        return f"#{index:<3} {row.command!s:<24} {returned:<52} | {describe(row.after)}"

    def render(self, problems: tuple[str, ...] = ()) -> str:
        header = f"{'step':<4} {'thread call':<24} {'returned in this step':<52} | FD after"
        lines = [header, "-" * len(header)]
        lines += [self.line(i, row) for i, row in enumerate(self.rows)]
        if problems:
            lines.append(f"^^^ step #{len(self.rows) - 1} disagrees with the model:")
            lines += [f"    {p}" for p in problems]
        return "\n".join(lines)
