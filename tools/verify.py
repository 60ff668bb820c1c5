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


def last_match(pattern: str) -> Callable[[str], str]:
    def summarize(output: str) -> str:
        found = re.findall(pattern, output, flags=re.MULTILINE)
        return found[-1].strip() if found else "(no summary line)"

    return summarize


# Run as checks of their own, after the unit tests (see CHECKS).
OWN_CHECKS = ("tests/test_model_vs_fd.py", "tests/test_traces.py", "tests/interleavings")
TYPED = [d for d in ("rcfd", "model", "tests", "tools", "examples", "bench") if (ROOT / d).is_dir()]

CHECKS = [
    Check("ruff", [PY, "-m", "ruff", "check", "."], last_match(r"^(All checks passed!|Found .*)$")),
    Check(
        "mypy --strict",
        [PY, "-m", "mypy", *TYPED],
        last_match(r"^(Success: .*|Found .*)$"),
    ),
    # PEP 316 contracts of step() and step() == the table of specs/rcfd.md;
    # fails unless every condition is "Confirmed over all paths".
    Check(
        "crosshair contracts",
        [PY, "tools/crosshair_check.py"],
        last_match(r"^crosshair: (.*)$"),
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
    ),
    Check(
        "trace replay",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_traces.py"],
        last_match(r"^(traces: .*|\d+ failed.*)$"),
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
    results: list[tuple[str, bool, float, str]] = []
    began = time.monotonic()
    for check in CHECKS:
        print(f"\n== {check.name}: {' '.join(check.argv[1:])}", flush=True)
        start = time.monotonic()
        ok, output = run(check.argv, LIMIT)
        elapsed = time.monotonic() - start
        summary = check.summarize(output)
        if elapsed >= LIMIT:
            summary = f"killed after {LIMIT}s: it hung or is too slow ({summary})"
        results.append((check.name, ok, elapsed, summary))
    print("\n== verify report")
    width = max(len(name) for name, *_ in results)
    for name, ok, elapsed, summary in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {elapsed:6.1f}s  {summary}")
    failed = [name for name, ok, *_ in results if not ok]
    verdict = "PASS" if not failed else f"FAIL ({', '.join(failed)}; their output is above)"
    print(
        f"verify: {verdict} in {time.monotonic() - began:.0f}s on Python {sys.version.split()[0]}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
