"""`make verify`: run every check in order, then report what each covered.

Each check is a command; its summary line is read from its own output so the
report says what was covered (tests run, contracts confirmed, ...), not just
pass/fail. The report ends with PASS only if every check passed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass(frozen=True)
class Check:
    name: str
    argv: list[str]
    summarize: Callable[[str], str]  # output -> what it covered
    # The tool behind the check (CrossHair, interleave-test) exists for 3.12+
    # only: on an older Python the check is reported SKIP, never PASS.
    needs: tuple[int, int] = (3, 11)


def last_match(pattern: str) -> Callable[[str], str]:
    def summarize(output: str) -> str:
        found = re.findall(pattern, output, flags=re.MULTILINE)
        return found[-1].strip() if found else "(no summary line)"

    return summarize


# Run as checks of their own, after the unit tests (see CHECKS).
OWN_CHECKS = ("tests/test_model_vs_fd.py", "tests/test_traces.py")
# The exploration in tests/interleavings is the "interleavings" check (tools/explore.py:
# the same DFS, more random and PCT schedules); the checker's own tests beside it are
# unit tests. So verify runs every test of `make test` once (the Makefile deselects the
# same id for `make quick`).
EXPLORATION = "tests/interleavings/test_interleavings.py::test_every_schedule_keeps_the_guarantees"
TYPED = [d for d in ("rcfd", "model", "tests", "tools", "examples", "bench") if (ROOT / d).is_dir()]
# Files that import interleave-test, which is not installed before 3.12.
NEEDS_312 = ["--exclude", r"^(tests/interleavings/|tools/explore\.py$)"]

CHECKS = [
    Check("ruff", [PY, "-m", "ruff", "check", "."], last_match(r"^(All checks passed!|Found .*)$")),
    Check(
        "mypy --strict",
        [PY, "-m", "mypy", *TYPED, *(NEEDS_312 if sys.version_info < (3, 12) else [])],
        last_match(r"^(Success: .*|Found .*)$"),
    ),
    # PEP 316 contracts of step() and step() == the table of specs/rcfd.md;
    # fails unless every condition is "Confirmed over all paths".
    Check(
        "crosshair contracts",
        [PY, "tools/crosshair_check.py"],
        last_match(r"^crosshair: (.*)$"),
        needs=(3, 12),
    ),
    Check(
        "unit tests",
        [
            PY,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            *(f"--ignore={path}" for path in OWN_CHECKS),
            f"--deselect={EXPLORATION}",
        ],
        last_match(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$"),
    ),
    Check(
        "model vs production (stateful)",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_model_vs_fd.py"],
        last_match(r"^(model-vs-fd: .*|\d+ failed.*)$"),
    ),
    # Every schedule with <= 1 preemption (line granularity) of each scenario,
    # then 100 random and 100 PCT schedules (bytecode granularity), seed 0.
    Check(
        "interleavings",
        [PY, "tools/explore.py"],
        last_match(r"^explore: (\d+ scenarios.*)$"),
        needs=(3, 12),
    ),
    Check(
        "trace replay",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_traces.py"],
        last_match(r"^(traces: .*|\d+ failed.*)$"),
    ),
    # The traces through the Python FD's driver program, as a port runs them
    # (conformance/PROTOCOL.md); about 2s.
    Check(
        "conformance runner",
        [PY, "-m", "conformance.runner", "--", PY, "-m", "conformance.drivers.rcfd_driver"],
        last_match(r"^conformance: (.*)$"),
    ),
]


# No single check may take longer: a hung test becomes a FAIL, not a stuck verify.
LIMIT = 600


def run(argv: list[str], limit: float) -> tuple[bool, str]:
    """Run one check, echoing its output as it comes; (passed, output)."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a kill takes its children too
    )
    timer = threading.Timer(limit, os.killpg, (proc.pid, signal.SIGKILL))
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (Ctrl-C): do not leave the check running
            os.killpg(proc.pid, signal.SIGKILL)
    return returncode == 0, "".join(lines)


def main() -> int:
    results: list[tuple[str, str, float, str]] = []  # name, PASS/FAIL/SKIP, seconds, summary
    began = time.monotonic()
    for check in CHECKS:
        if sys.version_info < check.needs:
            needed = ".".join(map(str, check.needs))
            results.append((check.name, "SKIP", 0.0, f"needs Python {needed}+"))
            continue
        print(f"\n== {check.name}: {' '.join(check.argv[1:])}", flush=True)
        start = time.monotonic()
        ok, output = run(check.argv, LIMIT)
        elapsed = time.monotonic() - start
        summary = check.summarize(output)
        if elapsed >= LIMIT:
            summary = f"killed after {LIMIT}s: it hung or is too slow ({summary})"
        results.append((check.name, "PASS" if ok else "FAIL", elapsed, summary))
    print("\n== verify report")
    width = max(len(name) for name, *_ in results)
    for name, status, elapsed, summary in results:
        print(f"{status}  {name:<{width}}  {elapsed:6.1f}s  {summary}")
    failed = [name for name, status, *_ in results if status == "FAIL"]
    skipped = [name for name, status, *_ in results if status == "SKIP"]
    verdict = "PASS" if not failed else f"FAIL ({', '.join(failed)}; their output is above)"
    if skipped:
        verdict += f"; SKIPPED {', '.join(skipped)}: run `make verify` on Python 3.12+ for them"
    print(
        f"verify: {verdict} in {time.monotonic() - began:.0f}s on Python {sys.version.split()[0]}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
