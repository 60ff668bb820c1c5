"""Reading specs/traces/*.json (the format is specs/traces.md's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conformance.replay import Expectation

FORMAT = "rcfd-trace/2"
TRACES = Path(__file__).resolve().parent.parent / "specs" / "traces"


def load(path: Path) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(path.read_text())
    if content.get("format") != FORMAT:
        raise ValueError(f"{path.name}: format {content.get('format')!r}, not {FORMAT!r}")
    return content


def expectations(trace: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Expectation]]:
    """Each step with what it must do; `running` follows the calls that
    started and have not returned yet."""
    steps: list[dict[str, Any]] = trace["steps"]
    names = {s["step"]: f"T{s['thread']} {s['call']}#{s['step']}" for s in steps}
    running: set[int] = set()
    for step in steps:
        if step["started"] != "returned":
            running.add(step["step"])
        running -= {r["step"] for r in step["returns"]}
        yield step, Expectation.of_trace_step(step, names, frozenset(running))


def timeline(steps: list[dict[str, Any]], upto: int) -> str:
    """The steps up to `upto`, one line each: who called what, what returned."""
    lines = []
    for step in steps[: upto + 1]:
        returned = "; ".join(
            f"T{r['thread']} {r['call']}#{r['step']} -> {r['result']}" for r in step["returns"]
        )
        paused = "".join(f"; T{p['thread']} {p['callback']} paused" for p in step["paused"])
        lines.append(
            f"#{step['step']:<3} T{step['thread']} {step['call']}({step['arg']})".ljust(32)
            + f"{step['started']:<11} {returned or '-'}{paused}"
        )
    return "\n".join(lines)
