"""`make verify`: run every check in order, then report what each covered.

Each check is a command; its summary line is read from its own output so the
report says what was covered (tests run, contracts confirmed, ...), not just
pass/fail. The report ends with PASS only if every check passed.
"""

from __future__ import annotations

import re
import subprocess
import sys
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


CHECKS = [
    Check("ruff", [PY, "-m", "ruff", "check", "."], last_match(r"^(All checks passed!|Found .*)$")),
    Check(
        "mypy --strict",
        [PY, "-m", "mypy", "rcfd", "model", "tests", "tools"],
        last_match(r"^(Success: .*|Found .*)$"),
    ),
    Check(
        "unit tests",
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        last_match(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$"),
    ),
    Check(
        "model vs production (stateful)",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_model_vs_fd.py"],
        last_match(r"^(model-vs-fd: .*|\d+ failed.*)$"),
    ),
    Check(
        "trace replay",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_traces.py"],
        last_match(r"^(traces: .*|\d+ failed.*)$"),
    ),
]


def main() -> int:
    results: list[tuple[str, bool, float, str]] = []
    for check in CHECKS:
        print(f"\n== {check.name}: {' '.join(check.argv[1:])}", flush=True)
        start = time.monotonic()
        proc = subprocess.run(
            check.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        elapsed = time.monotonic() - start
        sys.stdout.write(proc.stdout)
        results.append((check.name, proc.returncode == 0, elapsed, check.summarize(proc.stdout)))
    print("\n== verify report")
    width = max(len(name) for name, *_ in results)
    for name, ok, elapsed, summary in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {elapsed:6.1f}s  {summary}")
    failed = [name for name, ok, *_ in results if not ok]
    print("verify: " + ("PASS" if not failed else f"FAIL ({', '.join(failed)})"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
