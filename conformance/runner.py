"""Replay every conformance trace through a driver program; report per trace
and per guarantee.

    python -m conformance.runner [--only NAME]... [--expect-s S] [-x] -- DRIVER [ARG]...
    python -m conformance.runner -- python -m conformance.drivers.rcfd_driver

The driver speaks conformance/PROTOCOL.md on its stdin and stdout. Each
trace of specs/traces/ is replayed step by step (conformance.replay, the
rules of specs/traces.md); a trace whose capability tags the driver lacks is
skipped and said so. A trace fails at its first step that disagrees, with
the steps so far as a timeline and what differed. The report lists every
trace, then every guarantee with the traces that show it: kept (all
passed), BROKEN (by which), or not shown (all skipped). Exit status 1 if a
trace failed or none ran.

-x (--exitfirst) stops at the first failed trace, as pytest -x does: the
driver is killed instead of asked to end (its teardown would wait out what
the failed step left blocked), and the traces after it are not run (the
summary counts them). `make mutants` runs the runner so; `make verify` runs
every trace.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.driver_process import DriverError, DriverProcess
from conformance.protocol import PROTOCOL
from conformance.replay import EXPECT_S, settle
from conformance.tracefile import TRACES, expectations, load, timeline

GUARANTEES = range(1, 11)


@dataclass
class Outcome:
    name: str
    guarantees: list[int]
    status: str  # "pass", "FAIL" or "skip"
    steps: int = 0  # steps replayed
    detail: list[str] = field(default_factory=list)


def replay(
    driver: DriverProcess, trace: dict[str, Any], expect_s: float, exitfirst: bool = False
) -> Outcome:
    """One trace; with `exitfirst`, a failed one is not ended (the caller kills the driver)."""
    outcome = Outcome(trace["name"], trace["guarantees"], "pass")
    steps: list[dict[str, Any]] = trace["steps"]
    driver.request("begin", trace=trace["name"], threads=trace["threads"])
    for step, expect in expectations(trace):
        call = {k: step[k] for k in ("thread", "call", "arg")}
        driver.send({"op": "call", "id": step["step"], **call})
        problems = settle(driver, expect, expect_s).problems
        outcome.steps += 1
        if problems:
            outcome.status = "FAIL"
            outcome.detail = [
                trace["description"],
                *timeline(steps, step["step"]).splitlines(),
                f"^^^ step #{step['step']} disagrees with the trace:",
                *(f"    {p}" for p in problems),
            ]
            break
    if exitfirst and outcome.status == "FAIL":
        return outcome
    left = [str(p) for p in driver.request("end").get("problems", [])]
    late = [r for r in driver.drain() if r.call_id >= 0 or r.kind == "anomaly"]
    if outcome.status == "pass":
        left += [f"{r.kind} {r.result} (call #{r.call_id}) after the last step" for r in late]
    if left and outcome.status == "pass":
        outcome.status = "FAIL"
        outcome.detail = ["after the last step, at the driver's teardown:", *left]
    return outcome


def run(
    argv: list[str], files: list[Path], expect_s: float, exitfirst: bool = False
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    driver = DriverProcess(argv)
    try:
        hello = driver.request("hello")
        if hello.get("protocol") != PROTOCOL:
            raise DriverError(f"driver speaks {hello.get('protocol')!r}, not {PROTOCOL!r}")
        capabilities = set(hello.get("capabilities", []))
        print(f"driver: {hello.get('driver', argv)}; capabilities: {sorted(capabilities)}")
        for path in files:
            trace = load(path)
            lacking = sorted(set(trace["tags"]) - capabilities)
            if lacking:
                outcomes.append(
                    Outcome(trace["name"], trace["guarantees"], "skip", 0, [f"lacks {lacking}"])
                )
                continue
            try:
                outcomes.append(replay(driver, trace, expect_s, exitfirst))
            except DriverError as exc:
                tail = [line.rstrip("\n") for line in list(driver.stderr)[-10:]]
                outcomes.append(
                    Outcome(trace["name"], trace["guarantees"], "FAIL", 0, [str(exc), *tail])
                )
                if not exitfirst:
                    driver.stop()
                    driver = DriverProcess(argv)  # a fresh one for the next trace
                    driver.request("hello")
            if exitfirst and outcomes[-1].status == "FAIL":
                driver.kill()  # its teardown would wait out what the failed step left blocked
                break
    finally:
        driver.stop()
    return outcomes


def report(outcomes: list[Outcome], elapsed: float, not_run: int = 0) -> str:
    """The report; `not_run` traces were left out by --exitfirst."""
    lines = ["== traces"]
    for o in outcomes:
        lines.append(f"{o.status:<4}  {o.name}  ({o.steps} steps; guarantees {o.guarantees})")
        lines += [f"        {d}" for d in o.detail]
    lines.append("== guarantees")
    kept = 0
    for g in GUARANTEES:
        showing = [o for o in outcomes if g in o.guarantees]
        broken = [o.name for o in showing if o.status == "FAIL"]
        ran = [o for o in showing if o.status != "skip"]
        if broken:
            lines.append(f"{g:>2}  BROKEN by {', '.join(broken)}")
        elif ran:
            kept += 1
            lines.append(f"{g:>2}  kept ({len(ran)} traces)")
        elif not_run:
            lines.append(f"{g:>2}  not shown (no trace showing it ran before -x stopped)")
        else:
            lines.append(f"{g:>2}  not shown (every trace showing it was skipped)")
    count = {s: sum(o.status == s for o in outcomes) for s in ("pass", "FAIL", "skip")}
    lines.append(
        f"conformance: {len(outcomes)} traces: {count['pass']} passed, {count['FAIL']} failed, "
        f"{count['skip']} skipped; {sum(o.steps for o in outcomes)} steps; "
        f"guarantees kept {kept}/{len(GUARANTEES)}; {elapsed:.1f}s"
        + (f"; stopped at the first failure (-x): {not_run} traces not run" if not_run else "")
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="traces whose name has this")
    parser.add_argument("--expect-s", type=float, default=EXPECT_S, help="bound of each wait")
    parser.add_argument("--traces", type=Path, default=TRACES)
    parser.add_argument(
        "-x", "--exitfirst", action="store_true", help="stop at the first failed trace"
    )
    args = parser.parse_args(argv[:split])
    files = sorted(args.traces.glob("*.json"))
    files = [f for f in files if not args.only or any(o in f.stem for o in args.only)]
    start = time.monotonic()
    outcomes = run(argv[split + 1 :], files, args.expect_s, args.exitfirst)
    print(report(outcomes, time.monotonic() - start, len(files) - len(outcomes)))
    ran = [o for o in outcomes if o.status != "skip"]
    return 1 if not ran or any(o.status == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
