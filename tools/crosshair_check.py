"""Prove the PEP 316 contracts with CrossHair; fail unless every one is confirmed.

    python tools/crosshair_check.py

Checks the contracts of step() (rcfd/_lifecycle.py) and the agreement of
step() with the transition table of specs/rcfd.md (tools/crosshair_spec.py).
CrossHair prints one line per condition with --report_all. Only "Confirmed
over all paths." passes: "Not confirmed" (the budget ran out),
"Unable to meet precondition" (the condition was never exercised) and any
error or counterexample fail. The number of conditions reported must equal
the number of `post:` lines in the files, so that a condition CrossHair
skipped silently fails too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("rcfd/_lifecycle.py", "tools/crosshair_spec.py")
COMMAND = [
    "crosshair",
    "check",
    "--analysis_kind=PEP316",
    "--per_condition_timeout=10",  # the default budget misses planted bugs
    "--report_all",
]
LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): (?P<level>\w+): (?P<message>.*)$")
CONFIRMED = "Confirmed over all paths."


def expected_conditions() -> int:
    """`post:` lines in the targets: each one a condition CrossHair must report."""
    return sum(
        len(re.findall(r"^\s*post(\[[^\]]*\])?:", (ROOT / t).read_text(), flags=re.M))
        for t in TARGETS
    )


def main() -> int:
    crosshair = Path(sys.executable).with_name("crosshair")
    if sys.version_info < (3, 12) or not crosshair.exists():
        print("crosshair_check: crosshair-tool is installed for Python 3.12+ only; skipped")
        return 1
    start = time.monotonic()
    proc = subprocess.run(
        [str(crosshair), *COMMAND[1:], *TARGETS],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    elapsed = time.monotonic() - start
    confirmed: list[str] = []
    problems: list[str] = []
    for raw in proc.stdout.splitlines():
        match = LINE.match(raw)
        if match is None:
            if raw.strip():
                problems.append(raw)  # tracebacks, counterexample details: show them all
            continue
        where = f"{Path(match['path']).resolve().relative_to(ROOT)}:{match['line']}"
        if match["level"] == "info" and match["message"] == CONFIRMED:
            confirmed.append(where)
        else:
            problems.append(f"{where}: {match['level']}: {match['message']}")
    expected = expected_conditions()
    for line in problems:
        print(line)
    if len(confirmed) != expected:
        problems.append(f"{len(confirmed)} condition(s) confirmed, but the files state {expected}")
        print(problems[-1])
    if proc.returncode != 0 and not problems:
        problems.append(f"crosshair exited with {proc.returncode}")
        print(problems[-1])
    verdict = "FAIL" if problems else "PASS"
    print(
        f"crosshair: {verdict}: {len(confirmed)}/{expected} conditions confirmed over all paths"
        f" in {', '.join(TARGETS)} ({elapsed:.1f}s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
