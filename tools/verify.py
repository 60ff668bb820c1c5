"""`make verify`: run every check in order, then report what each covered.

Each check is a command; its summary line is read from its own output so the
report says what was covered (tests run, contracts confirmed, ...), not just
pass/fail. The report ends with PASS only if every check passed.

A verify that passed records how long each check took, with a digest of the
tree it ran on (TIMES, under .venv/, one file per Python and borrow path):
`make mutants` orders its checks by those times instead of running every
check once more on the unmodified code, when the tree it copies has the same
digest (tools/mutation.py). Nothing is recorded if a check failed or was
skipped, or if the tree changed while verify ran.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
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
    # It reads the source and never runs rcfd, so it says the same on both
    # borrow paths: the no-GIL verify (RCFD_NOGIL=1) reports it SAME and leaves
    # it to `make verify`, which CI runs too (.ci/run).
    source_only: bool = False


def last_match(pattern: str) -> Callable[[str], str]:
    def summarize(output: str) -> str:
        found = re.findall(pattern, output, flags=re.MULTILINE)
        return found[-1].strip() if found else "(no summary line)"

    return summarize


# Run as checks of their own, after the unit tests (see CHECKS).
OWN_CHECKS = ("tests/test_model_vs_fd.py", "tests/test_traces.py", "tests/test_mutation_kills.py")
# The exploration in tests/interleavings is the "interleavings" check (tools/explore.py:
# the same DFS, more random and PCT schedules); the checker's own tests beside it are
# unit tests. So verify runs every test of `make test` once (the Makefile deselects the
# same id for `make quick`).
EXPLORATION = "tests/interleavings/test_interleavings.py::test_every_schedule_keeps_the_guarantees"
# The same run as the "conformance runner" check (every trace through the Python
# driver): `make test` runs it as a test, verify as that check, not twice.
PYTHON_DRIVER = "tests/test_conformance.py::test_the_python_driver_passes_every_trace"
TYPED = [d for d in ("rcfd", "model", "tests", "tools", "examples", "bench") if (ROOT / d).is_dir()]
# Files that import interleave-test, which is not installed before 3.12.
NEEDS_312 = ["--exclude", r"^(tests/interleavings/|tools/explore\.py$)"]

CHECKS = [
    Check(
        "ruff",
        [PY, "-m", "ruff", "check", "."],
        last_match(r"^(All checks passed!|Found .*)$"),
        source_only=True,
    ),
    Check(
        "mypy --strict",
        [PY, "-m", "mypy", *TYPED, *(NEEDS_312 if sys.version_info < (3, 12) else [])],
        last_match(r"^(Success: .*|Found .*)$"),
        source_only=True,
    ),
    # PEP 316 contracts of step() and step() == the table of specs/rcfd.md;
    # fails unless every condition is "Confirmed over all paths".
    Check(
        "crosshair contracts",
        [PY, "tools/crosshair_check.py"],
        last_match(r"^crosshair: (.*)$"),
        needs=(3, 12),
        source_only=True,
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
            f"--deselect={PYTHON_DRIVER}",
        ],
        last_match(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$"),
    ),
    # The catalog's scenarios replayed on the real FD (mutants/), with the rest
    # of that file; apart so that `make mutants`, which runs it as a check of
    # its own on each mutant, finds its time here.
    Check(
        "catalog scenarios",
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_mutation_kills.py"],
        last_match(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$"),
    ),
    Check(
        "model vs production (stateful)",
        [PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_model_vs_fd.py"],
        last_match(r"^(model-vs-fd: .*|\d+ failed.*)$"),
    ),
    # Every schedule with <= 1 preemption of each scenario (bytecode granularity
    # for the two-thread ones, line for the others), then 100 random and 100
    # PCT schedules (bytecode granularity), seed 0; one process per CPU.
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

# What the tree's digest leaves out: what tools/mutation.py does not copy
# (version control, virtualenvs, caches, scratch, build output, make bench's
# figures). Never a module a check imports (tests/test_verify_times.py): the
# copy would fail that check for every mutant alike.
UNCOPIED = (
    ".git", ".venv*", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "*.egg-info", "build", ".work", "mutants_out", "results.json",
)  # fmt: skip


def borrow_path() -> str:
    """The borrow path this process's rcfd runs: "nogil" or "gil" (rcfd._nogil)."""
    from rcfd import _nogil

    return "nogil" if _nogil.ENABLED else "gil"


def times_file(path: str | None = None) -> Path:
    """Where a passing verify on this Python and borrow path records its times."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return ROOT / ".venv" / "verify-times" / f"{version}-{path or borrow_path()}.json"


def tree_digest(root: Path) -> str:
    """A digest of every file under `root` that tools/mutation.py copies (its
    path and its bytes): the code and the checks both."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _uncopied(d))
        for name in sorted(files):
            if _uncopied(name):
                continue
            file = Path(folder, name)
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _uncopied(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in UNCOPIED)


def record_times(tree: str, times: dict[str, float]) -> Path:
    target = times_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "tree": tree,
        "executable": sys.executable,
        "path": borrow_path(),
        "checks": times,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    scratch = target.with_suffix(f".{os.getpid()}")
    scratch.write_text(json.dumps(record, indent=1) + "\n")
    scratch.replace(target)  # whole, or not at all
    return target


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
    results: list[tuple[str, str, float, str]] = []  # name, PASS/FAIL/SKIP/SAME, seconds, summary
    began = time.monotonic()
    tree = tree_digest(ROOT)
    with_times = times_file()
    with_times.unlink(missing_ok=True)  # a record is of the last verify, and only if it passed
    nogil = borrow_path() == "nogil"
    for check in CHECKS:
        if check.source_only and nogil:
            results.append((check.name, "SAME", 0.0, "reads the source: `make verify` runs it"))
            continue
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
        f" ({'RCFD_NOGIL=1: the no-GIL path' if nogil else 'the GIL path'})"
    )
    if failed or skipped:
        return 1 if failed else 0
    if tree_digest(ROOT) != tree:
        print("verify: the tree changed while verify ran: no times recorded for make mutants")
    else:
        ran = [(name, elapsed) for name, status, elapsed, _ in results if status == "PASS"]
        times = {name: round(elapsed, 1) for name, elapsed in ran}
        print(f"verify: times recorded for make mutants in {record_times(tree, times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
