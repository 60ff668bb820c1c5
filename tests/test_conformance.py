"""The conformance runner (conformance/) passes the Python FD through its own
driver, and fails a driver that plants a bug, breaks the protocol, or
lacks a capability only by skipping what needs it.

Each test runs `python -m conformance.runner -- <driver>` as a port would,
in a subprocess, and reads its report.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance import runner as the_runner
from conformance.drivers import rcfd_driver
from conformance.drivers.plants import PLANTS
from conformance.tracefile import TRACES, load

# Run by module name, as a port's user would; imported, so that mypy checks them.
DRIVER = [sys.executable, "-m", rcfd_driver.__name__]
FILES = sorted(TRACES.glob("*.json"))


def runner(*args: str, driver: list[str] = DRIVER) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", the_runner.__name__, *args, "--", *driver],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_python_driver_passes_every_trace() -> None:
    code, report = runner()
    summary = report.strip().splitlines()[-1]
    assert code == 0, report
    assert summary.startswith(
        f"conformance: {len(FILES)} traces: {len(FILES)} passed, 0 failed, 0 skipped;"
    ), report
    assert "guarantees kept 10/10" in summary, report
    for g in the_runner.GUARANTEES:
        assert f"\n{g:>2}  kept (" in report, report


# plant -> (traces to replay, a trace that must fail, a guarantee it breaks,
# a line of the counterexample)
PLANTED = {
    "close-returns-early": (
        "close_waits_for_borrows",
        "close_waits_for_borrows",
        4,
        "T2 close#4: unexpected returned ok while it should still be running",
    ),
    "borrow-after-close": (
        "close_waits_for_borrows",
        "close_waits_for_borrows",
        2,
        "T0 begin_borrow#5: expected returned err:ClosedFD",
    ),
    "polling-second-closer": (
        "10_close_func_raises",
        "close_func_raises",
        5,
        "closers_waiting: expected 2, observed 1",
    ),
    "finalizer-ignores-garbage-borrows": (
        "garbage",
        "finalizer_first_with_a_borrow_held_by_garbage",
        9,
        "close_func_calls: expected 1, observed 0",
    ),
}


def test_every_plant_is_shown_failing() -> None:
    assert PLANTED.keys() == PLANTS.keys()


@pytest.mark.parametrize("plant", PLANTED)
def test_a_driver_with_a_planted_bug_fails(plant: str) -> None:
    only, trace, guarantee, line = PLANTED[plant]
    code, report = runner("--only", only, "--expect-s", "0.5", driver=[*DRIVER, "--plant", plant])
    assert code == 1, report
    assert f"FAIL  {trace}  (" in report, report
    broken = next(r for r in report.splitlines() if r.startswith(f"{guarantee:>2}  "))
    assert "BROKEN by" in broken and trace in broken, report
    assert line in report, report


def test_a_driver_that_breaks_the_protocol_fails_the_trace_not_the_runner() -> None:
    babbler = [sys.executable, "-c", "print('not json', flush=True); input()"]
    code, report = runner("--only", "basic_lifecycle", driver=babbler)
    assert code == 1, report
    assert "driver wrote 'not json'" in report, report


def test_a_driver_without_a_capability_skips_the_traces_that_need_it() -> None:
    needing = [p.stem for p in FILES if "needs-finalizer" in load(p)["tags"]]
    assert needing, "no trace needs a finalizer: the test would prove nothing"
    code, report = runner(driver=[*DRIVER, "--without", "needs-finalizer"])
    assert code == 0, report
    skipped = [r for r in report.splitlines() if r.startswith("skip  ")]
    assert len(skipped) == len(needing), report
    assert report.count("lacks ['needs-finalizer']") == len(needing), report
    assert f"{len(FILES) - len(needing)} passed, 0 failed, {len(needing)} skipped" in report


def test_exitfirst_stops_at_the_first_failed_trace_and_says_so() -> None:
    # As `make mutants` runs it: the first failure is reported whole, no trace runs
    # after it, and the summary counts those left out.
    code, report = runner(
        "-x", "--expect-s", "0.5", driver=[*DRIVER, "--plant", "close-returns-early"]
    )
    assert code == 1, report
    lines = report.splitlines()
    ran = [r for r in lines if r.startswith(("pass  ", "FAIL  ", "skip  "))]
    assert ran[-1].startswith("FAIL  ") and sum(r.startswith("FAIL  ") for r in ran) == 1, report
    assert "^^^ step #" in report and "BROKEN by" in report, report
    summary = lines[-1]
    assert f"stopped at the first failure (-x): {len(FILES) - len(ran)} traces not run" in summary
    assert len(FILES) > len(ran), report
