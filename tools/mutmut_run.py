"""`make mutmut`: automatic mutation testing of rcfd/ with mutmut (pinned in pyproject).

mutmut writes its mutated tree into ./mutants/, which here is the hand-written
catalog, so it runs in a scratch copy (mutants/.work/mutmut/, ignored by git):
the tree is copied there, the catalog goes where the mutated tree's tests
import it from (mutants/mutants/), and the copy's pyproject.toml gets a
[tool.mutmut] section. Results are kept between runs (mutmut only re-tests
what changed) unless --fresh.

The tests given to mutmut are the fast, deterministic part of the suite:
tests/ minus the reliability soak and stress tests, which exercise the same
code for minutes and would make the run take hours; mutmut already runs, per
mutant, only the tests that reach the mutated function. Prints the score
(killed + timeout) / (total - skipped), as mutmut's own badge does, and the
survivors, each with its diff: every survivor must be killed by a new test or
listed in mutants/EQUIVALENT.md with the reason it cannot be.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants" / ".work" / "mutmut"
MUTMUT = Path(sys.executable).parent / "mutmut"
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "*.egg-info", "build", ".work",
)  # fmt: skip
NOT_PER_MUTANT = [
    # Minutes of stress each, the same code paths as the unit tests.
    "--ignore=tests/reliability",
    # Compares a leak report's stack with the README's byte for byte; mutmut's
    # trampolines add their own frames to every stack, so it fails on every mutant.
    "--deselect=tests/test_plugin.py::test_the_readme_shows_what_the_plugin_prints",
    # Checks that the init stack ends at init's caller; under mutmut the last
    # frame is its trampoline, so it fails on the unmutated code.
    "--deselect=tests/test_mutation_kills.py::test_the_init_stack_ends_at_the_caller_of_init",
    # Hypothesis stateful model-vs-production (150 runs x 40 steps of real
    # threads): minutes per mutant; and under mutmut's load Hypothesis reports
    # its timing-dependent preconditions as FlakyStrategyDefinition on the
    # unmutated code. `make mutants` runs it as its own check instead.
    "--ignore=tests/test_model_vs_fd.py",
    # Exhaustive schedule exploration traces every line; through mutmut's
    # trampolines a single scenario exceeds the per-test timeout. `make
    # mutants` runs it (tools/explore.py) as its own check instead.
    "--ignore=tests/interleavings",
    # Asserts that gc.collect() raises no ResourceWarning at all; under mutmut it
    # also collects garbage of mutmut's own (with a ResourceWarning), unmutated.
    "--deselect=tests/test_finalizer.py::test_no_finalizer_after_close_or_detach_or_without_init",
]


# Several tests assert that no ResourceWarning appears while they run. Under
# mutmut, the FDs that other tests leak on purpose (to test the finalizer) stay
# reachable from mutmut's trampoline frames for a while, and their finalizer's
# ResourceWarning lands in whichever test runs the next gc.collect(). Collecting
# before every test puts those warnings back where they belong: between tests.
COLLECT_FIRST = """

import gc as _mutmut_gc

import pytest as _mutmut_pytest


@_mutmut_pytest.fixture(autouse=True)
def _mutmut_collect_first() -> None:
    _mutmut_gc.collect()
"""


def config(tests: list[str]) -> str:
    also_copy = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in ROOT.iterdir()
        if p.name not in ("rcfd", "mutants", "tests", "pyproject.toml")
        and not p.name.startswith(".")
        and not p.name.endswith(".egg-info")
    )
    return "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["rcfd/"]',
            # pytest.ini's 300 s per test would let a hung mutant cost 5 minutes.
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "--timeout=60"]',
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
            f"also_copy = {json.dumps(also_copy)}",
            "",
        ]
    )


def prepare(fresh: bool, tests: list[str]) -> None:
    if fresh and WORK.exists():
        shutil.rmtree(WORK)
    old_results = WORK / "mutants"
    keep = old_results.exists()
    if keep:
        # mutmut re-tests only what changed; refresh the sources around its results.
        for path in WORK.iterdir():
            if path.name != "mutants":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    WORK.mkdir(parents=True, exist_ok=True)
    for path in ROOT.iterdir():
        if path.name in (".git", "mutants") or path.name.startswith(".venv"):
            continue
        if path.is_dir():
            shutil.copytree(path, WORK / path.name, ignore=IGNORE, dirs_exist_ok=True)
        else:
            shutil.copy2(path, WORK / path.name)
    catalog = WORK / "mutants" / "mutants"
    if catalog.exists():
        shutil.rmtree(catalog)
    shutil.copytree(ROOT / "mutants", catalog, ignore=IGNORE)
    pyproject = WORK / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + config(tests))
    conftest = WORK / "tests" / "conftest.py"
    existing = conftest.read_text() if conftest.exists() else ""
    conftest.write_text(existing + COLLECT_FIRST)


def stats() -> dict[str, int]:
    subprocess.run([str(MUTMUT), "export-cicd-stats"], cwd=WORK, check=True, capture_output=True)
    data: dict[str, int] = json.loads((WORK / "mutants" / "mutmut-cicd-stats.json").read_text())
    return data


def survivors() -> list[tuple[str, str]]:
    out = subprocess.run(
        [str(MUTMUT), "results"], cwd=WORK, check=True, capture_output=True, text=True
    ).stdout
    found = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found.append((name, status))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument("mutants", nargs="*", help="mutmut mutant names or globs (default: all)")
    args = parser.parse_args()
    tests = ["tests/", *NOT_PER_MUTANT]
    started = time.monotonic()
    prepare(args.fresh, tests)
    run = subprocess.run(
        [str(MUTMUT), "run", "--max-children", str(args.max_children), *args.mutants], cwd=WORK
    )
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
        return run.returncode
    s = stats()
    checked = sum(s[k] for k in ("killed", "timeout", "survived", "suspicious", "no_tests"))
    caught = s["killed"] + s["timeout"]
    score = 100.0 * caught / checked if checked else 0.0
    left = [(name, status) for name, status in survivors() if status != "not checked"]
    print(
        f"\nmutmut: {s['killed']} killed, {s['timeout']} timed out, {s['survived']} survived, "
        f"{s['no_tests']} not reached by any test, {s['suspicious']} suspicious, of "
        f"{checked} checked ({s['total'] - checked} not checked, {s['skipped']} skipped): "
        f"score {score:.1f}% ({time.monotonic() - started:.0f}s)"
    )
    for name, status in left:
        print(f"  {status}: {name}")
        if args.show:
            diff = subprocess.run(
                [str(MUTMUT), "show", name], cwd=WORK, capture_output=True, text=True
            ).stdout
            print("    " + diff.replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
