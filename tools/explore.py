"""Explore the interleavings of the production FD's internal steps (issue 3, section 3).

For each scenario of tests/interleavings/scenarios.py: every schedule with at
most --preemptions preemptions (bounded-exhaustive DFS), at bytecode
granularity for the two-thread scenarios (--opcode-dfs-actors) and at line
granularity for the others, then --random and --pct seeded schedules at
bytecode granularity. Each
schedule's history is checked against the guarantees of specs/rcfd.md
(model.guarantees.history_violations, the checker of every harness). Prints, per
scenario, the schedules explored and PASS/FAIL; a failing schedule is
printed as a timeline, saved as JSON under --save, and can be rerun with

    python tools/explore.py --replay PATH

Needs Python 3.12+ (interleave-test is built on sys.monitoring).

    python tools/explore.py                    # make verify: preemptions<=1, 100 random, 100 PCT
    python tools/explore.py --preemptions 2 --random 2000 --pct 2000   # make explore-long
    python tools/explore.py --dfs-off          # only the random and PCT schedules

Scenarios run in --jobs processes (default: one per CPU), each printed in
its order as it completes.

Bytecode granularity preempts between any two instructions, finer than
CPython with the GIL (which switches threads only as a function starts, after
a call returns and on a backward jump). rcfd needs no atomicity beyond its
single C calls (an insert, a remove, a `+=`, the freeze) and its locks, so
nothing runs unsplit: every line and instruction of rcfd/ is a scheduling
point, FD._guard's included.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.interleavings.harness import Exploration, Scenario

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's rcfd and tests, before any installed copy


def _cpus() -> int:
    """The CPUs this process may run on (os.process_cpu_count from 3.13; a
    container or taskset may allow fewer than the machine has)."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preemptions", type=int, default=1, help="DFS preemption bound")
    parser.add_argument("--random", type=int, default=100, help="random schedules per scenario")
    parser.add_argument("--pct", type=int, default=100, help="PCT schedules per scenario")
    parser.add_argument("--seed", type=int, default=0, help="root seed of random and PCT")
    parser.add_argument(
        "--scenario", action="append", default=[], help="only these (repeatable; default all)"
    )
    parser.add_argument("--save", type=Path, default=ROOT / "build" / "interleavings")
    parser.add_argument("--replay", type=Path, help="rerun one saved failing schedule")
    parser.add_argument("--outcomes", action="store_true", help="list the call results seen")
    parser.add_argument(
        "--dfs-off", action="store_true", help="skip the DFS: only random and PCT schedules"
    )
    parser.add_argument(
        "--opcode-dfs-actors",
        type=int,
        default=2,
        help="scenarios with at most this many threads get their DFS at bytecode granularity",
    )
    parser.add_argument(
        "--jobs", type=int, default=_cpus(), help="processes (default: one per CPU it may use)"
    )
    args = parser.parse_args(argv)

    if sys.version_info < (3, 12):
        print("explore: needs Python 3.12+ (interleave-test uses sys.monitoring); skipped")
        return 1

    from tests.interleavings import harness
    from tests.interleavings.scenarios import BY_NAME, SCENARIOS

    print(f"explore: rcfd from {harness.RCFD_DIR}")
    if args.replay is not None:
        return replay(args.replay)

    unknown = [name for name in args.scenario if name not in BY_NAME]
    if unknown:
        print(f"explore: unknown scenario(s) {unknown}; known: {sorted(BY_NAME)}")
        return 2
    chosen = [BY_NAME[name] for name in args.scenario] if args.scenario else list(SCENARIOS)

    start = time.monotonic()
    names = [scenario.name for scenario in chosen]
    if args.jobs > 1 and len(names) > 1:
        # Scenarios are independent: one process each, printed in their order.
        # spawn, not fork: a worker must not inherit the parent's threads/locks.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            reports = pool.map(explore_one, names, [args] * len(names))
            failed, total = _print_reports(names, reports)
    else:
        failed, total = _print_reports(names, (explore_one(name, args) for name in names))
    elapsed = time.monotonic() - start
    print(
        f"explore: {len(chosen)} scenarios, {total} schedules, {len(failed)} failed"
        f" ({', '.join(failed) or 'none'}), {elapsed:.1f}s"
    )
    return 1 if failed else 0


def _print_reports(
    names: list[str], reports: Iterable[tuple[str, int, bool]]
) -> tuple[list[str], int]:
    """Print each scenario's report as it comes; (the failed ones, schedules in all)."""
    failed: list[str] = []
    total = 0
    for name, (text, schedules, passed) in zip(names, reports, strict=True):
        print(text, flush=True)
        total += schedules
        if not passed:
            failed.append(name)
    return failed, total


def explore_one(name: str, args: argparse.Namespace) -> tuple[str, int, bool]:
    """Explore one scenario: (what to print, schedules explored, passed)."""
    from tests.interleavings.scenarios import BY_NAME

    scenario = BY_NAME[name]
    runs = _search(scenario, args)
    bad = next((run for run in runs if run.failure is not None), None)
    schedules = sum(run.schedules for run in runs)
    return _report(scenario.name, runs, schedules, bad, args), schedules, bad is None


def _search(scenario: Scenario, args: argparse.Namespace) -> list[Exploration]:
    """The bounded DFS, then random and PCT schedules, stopping at a failure."""
    from tests.interleavings import harness

    runs = []
    if not args.dfs_off:
        # (A preemption between two C calls of one line is found only here: a
        # freeze split into two calls, planted, passed the line DFS and 1,000
        # PCT schedules, and failed this DFS at its 330th schedule.)
        fine = len(scenario.actors) <= args.opcode_dfs_actors
        runs.append(
            harness.explore(
                scenario,
                "dfs",
                granularity="opcode" if fine else "line",
                iterations=10**7,
                max_preemptions=args.preemptions,
            )
        )
    for strategy, count in (("random", args.random), ("pct", args.pct)):
        if count and (not runs or runs[-1].failure is None):
            runs.append(
                harness.explore(
                    scenario, strategy, granularity="opcode", iterations=count, seed=args.seed
                )
            )
    return runs


def _report(
    name: str,
    runs: list[Exploration],
    schedules: int,
    bad: Exploration | None,
    args: argparse.Namespace,
) -> str:
    """One line per scenario (and its outcomes); a failure's counterexample, saved."""
    from tests.interleavings import harness

    parts = [
        f"{run.label}: {run.schedules}{' (exhaustive)' if run.exhausted else ''}" for run in runs
    ]
    seconds = sum(run.seconds for run in runs)
    verdict = "PASS" if bad is None else "FAIL"
    lines = [
        f"{verdict}  {name:<20} {schedules:>6} schedules  {seconds:5.1f}s  " + "; ".join(parts)
    ]
    if args.outcomes:
        seen: dict[str, int] = {}
        for outcome, count in (o for run in runs for o in run.outcomes):
            seen[outcome] = seen.get(outcome, 0) + count
        for outcome, count in sorted(seen.items()):
            lines.append(f"        {count:>6} x {outcome}")
    if bad is not None and bad.failure is not None:
        path = harness.save_failure(bad, args.save)
        lines.append(f"\n--- {name}: {bad.label} failed on schedule {bad.schedules}\n")
        lines.append(harness.describe_failure(bad.failure))
        lines.append(f"\nsaved: {path}\nreplay: python tools/explore.py --replay {path}\n")
    return "\n".join(lines)


def replay(path: Path) -> int:
    import json

    from interleave_test import ReplayDivergence

    from tests.interleavings import harness
    from tests.interleavings.scenarios import BY_NAME

    record = json.loads(path.read_text())
    scenario = BY_NAME[record["scenario"]]
    decisions = len(record["schedule"]["choices"])
    print(f"replay: {scenario.name} ({record['search']}), {decisions} decisions")
    result = harness.replay(scenario, path)
    if result.failure is None:
        print("replay: PASS (the schedule no longer fails)")
        return 0
    print(harness.describe_failure(result.failure))
    if isinstance(result.failure.exception, ReplayDivergence):
        print("replay: DIVERGED (the code or Python version changed since it was recorded)")
    else:
        print("replay: FAIL (reproduced)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
