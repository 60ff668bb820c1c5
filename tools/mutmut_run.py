"""`make mutmut`: automatic mutation testing of rcfd/ with mutmut (pinned in pyproject).

mutmut writes its mutated tree into ./mutants/, which here is the hand-written
catalog, so it runs in a scratch copy (mutants/.work/mutmut/, ignored by git):
the tree is copied there, the catalog goes where the mutated tree's tests
import it from (mutants/mutants/), and the copy's pyproject.toml gets a
[tool.mutmut] section. Results are kept between runs (mutmut only re-tests
what changed) unless --fresh.

The tree is the working tree, or with --rev a commit's (plus the working
tree's tests/test_mutmut_*.py, the survivor tests being written), so that
edits others make in the checkout meanwhile stay out of the run. Tests that
start Python in a subprocess import the mutated copy too (PYTHONPATH), not the
checkout the venv's editable install points at. RCFD_NOGIL=1 in the
environment runs rcfd's no-GIL path and keeps its own results
(mutants/.work/mutmut-nogil/).

The tests given to mutmut are the fast, deterministic part of the suite:
tests/ minus what NOT_PER_MUTANT leaves out, each with its reason (the soak
and the signal hammers, and tests that fail under mutmut on the unmutated
code); mutmut already runs, per mutant, only the tests that reach the mutated
function. Prints the score (killed + timeout) / (total - skipped), as
mutmut's own badge does, a table of it per module, and the survivors (with
--show, each with its diff): every survivor must be killed by a new test or
listed in mutants/EQUIVALENT.md with the reason it cannot be.

mutmut mutates only top-level functions and the methods written directly in
a class body, without a decorator other than staticmethod/classmethod: it
does not reach a property, nor a method defined under an `if` in the class
body (rcfd/_fd.py's GIL-path FD.do and Borrow.__enter__/__exit__), nor code
that runs only at import, in a forked child or at interpreter exit (its
record of which tests reach a function is taken in its own process, after
the import). mutants/EQUIVALENT.md lists what that leaves out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# RCFD_NOGIL=1 (rcfd/_nogil.py's switch: the locked borrow on a GIL build) runs
# a different FD.do and Borrow, so mutmut's record of which tests reach which
# function differs: that run keeps its own results.
NOGIL = os.environ.get("RCFD_NOGIL") == "1"
WORK = ROOT / "mutants" / ".work" / ("mutmut-nogil" if NOGIL else "mutmut")
MUTMUT = Path(sys.executable).parent / "mutmut"
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "*.egg-info", "build", ".work",
)  # fmt: skip
NOT_PER_MUTANT = [
    # tests/reliability: the soak is minutes of stress; the signal hammers
    # (test_signals, test_interrupt_points: a trace function raising at each
    # bytecode, which mutmut's trampolines shift) and the races on reused
    # numbers (test_number_reuse, test_bpf_map) catch a bug only when the
    # scheduler lands on it, which is not a kill; the fuzz test is Hypothesis
    # over helper threads (see test_model_vs_fd below); the shutdown test's
    # FDs live in a child interpreter. The others run: real forked children
    # (test_fork: mutmut cannot see into them, but the parent's calls count),
    # and interrupts made deterministic by doubles (test_interrupt_*_steps).
    "--ignore=tests/reliability/test_soak.py",
    "--ignore=tests/reliability/test_signals.py",
    "--ignore=tests/reliability/test_interrupt_points.py",
    "--ignore=tests/reliability/test_number_reuse.py",
    "--ignore=tests/reliability/test_bpf_map.py",
    "--ignore=tests/reliability/test_fuzz_public_api.py",
    "--ignore=tests/reliability/test_shutdown_finalizers.py",
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
    # Runs each example in a subprocess with -S (no site-packages): the mutated
    # tree imports mutmut's trampoline, which only the venv's site-packages has,
    # so every example fails on the unmutated code; and mutmut cannot see what
    # a subprocess calls anyway.
    "--ignore=tests/test_examples.py",
    # Compares the source text of the release's inline copies in rcfd/_fd.py;
    # mutmut's copy of that file holds every mutant of each copy beside it.
    "--deselect=tests/test_hot_path.py::test_the_inline_copies_of_the_release_are_identical",
    # Order-dependent: asserts that no test seam is installed, but the catalog's
    # harness (mutants/_harness.py, _Replayer) enters rcfd_seam.installed() and
    # never leaves it, so it fails after tests/test_mutation_kills.py, which
    # mutmut (fast tests first) runs before it.
    "--deselect=tests/test_history_checks.py::test_the_seam_logs_a_real_fds_life_with_its_counts",
    # Checks that close_func's unreceived error is warned at the user's line
    # (rcfd._registry.user_stacklevel walks out of rcfd's frames); under mutmut
    # its trampolines are frames outside rcfd, so it fails on the unmutated code.
    "--deselect=tests/test_mutmut_fd.py::test_close_funcs_unreceived_error_is_warned_at_the_users_line",
    # Tests mutants/_paths.py, which reads rcfd/'s source text to tell which
    # borrow path runs each catalog mutant's code; mutmut's copy of rcfd/
    # holds every mutant beside each function, so it fails unmutated (and it
    # calls no rcfd code a mutant could change).
    "--ignore=tests/test_mutant_paths.py",
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


def config(tests: list[str], source: Path) -> str:
    also_copy = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in source.iterdir()
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


def snapshot(rev: str) -> Path:
    """The tree of commit `rev` in a scratch directory, with the working tree's
    tests/test_mutmut_*.py over it (the survivor tests being written for this
    run), so that edits others are making meanwhile in rcfd/ or tests/ stay out."""
    tree = WORK.parent / (WORK.name + "-snapshot")
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for test in sorted((ROOT / "tests").glob("test_mutmut_*.py")):
        shutil.copy2(test, tree / "tests" / test.name)
    return tree


def prepare(fresh: bool, tests: list[str], source: Path) -> None:
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
    for path in source.iterdir():
        if path.name in (".git", "mutants") or path.name.startswith(".venv"):
            continue
        if path.is_dir():
            shutil.copytree(path, WORK / path.name, ignore=IGNORE, dirs_exist_ok=True)
        else:
            shutil.copy2(path, WORK / path.name)
    catalog = WORK / "mutants" / "mutants"
    if catalog.exists():
        shutil.rmtree(catalog)
    shutil.copytree(source / "mutants", catalog, ignore=IGNORE)
    pyproject = WORK / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + config(tests, source))
    conftest = WORK / "tests" / "conftest.py"
    existing = conftest.read_text() if conftest.exists() else ""
    conftest.write_text(existing + COLLECT_FIRST)


def stats() -> dict[str, int]:
    subprocess.run([str(MUTMUT), "export-cicd-stats"], cwd=WORK, check=True, capture_output=True)
    data: dict[str, int] = json.loads((WORK / "mutants" / "mutmut-cicd-stats.json").read_text())
    return data


def results() -> list[tuple[str, str]]:
    """(mutant, status) for every mutant, killed ones included."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=WORK,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found.append((name, status))
    return found


COLUMNS = ("killed", "timeout", "survived", "no tests", "suspicious", "not checked")

# mutmut selects, per mutant, the tests that reached its function in mutmut's
# own process, after the import. It never selects a test for code that runs
# only at import (rcfd._lifecycle's TABLE), in a forked child (fork repair) or
# in a subprocess, or on the other borrow path (rcfd/_nogil.py on a GIL
# build): those mutants show "no tests", or "survived" untested. --recheck
# runs each of them once more in a fresh interpreter with the mutant active
# from the import on (mutmut's MUTANT_UNDER_TEST, which forked children and
# subprocesses inherit), against the whole per-mutant selection (rcfd._nogil's
# on the no-GIL path only, the others on both), stopping at the first failure:
# "killed (recheck)". The selection must first pass with no mutant active.
# (The shutdown test stays out: at interpreter exit mutmut's trampoline reads
# os.environ, which is gone by then, so it fails unmutated.)
RECHECK_TESTS = ["tests/", *NOT_PER_MUTANT]
RECHECK_TIMEOUT = 900  # seconds per mutant: the selection passes in ~70 s unmutated
# A MUTANT_UNDER_TEST that names no mutant (the trampolines call the
# original); recheck_one runs it on both paths.
UNMUTATED = ("rcfd.unmutated",)


def recheck_one(name: str) -> str:
    """On the GIL path, then (if it survived there) on the no-GIL path: code
    shared by both may branch on the path (FD._after_fork makes the lock a
    borrow takes only without the GIL). rcfd._nogil's run on the no-GIL path only."""
    nogil = name.startswith("rcfd._nogil.")
    for flag in ("1",) if nogil else ("", "1"):
        env = dict(os.environ, MUTANT_UNDER_TEST=name, PYTHONPATH=str(WORK / "mutants"))
        env["RCFD_NOGIL"] = flag
        argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        try:
            run = subprocess.run(
                [*argv, "--timeout=60", *RECHECK_TESTS],
                cwd=WORK / "mutants",  # mutmut's mutated tree, as its own runs use
                env=env,
                capture_output=True,
                timeout=RECHECK_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return "timeout (recheck)"
        if run.returncode != 0:
            return "killed (recheck)"
    return "survived"


def recheck(
    found: list[tuple[str, str]], children: int, only: list[str]
) -> list[tuple[str, str]]:
    """`found` with every "survived" or "no tests" mutant (of those matching
    the globs `only`, if any) run again (RECHECK_TESTS)."""
    from concurrent.futures import ThreadPoolExecutor
    from fnmatch import fnmatchcase

    again = [
        name
        for name, status in found
        if status in ("survived", "no tests")
        and (not only or any(fnmatchcase(name, glob) for glob in only))
    ]
    print(f"\nrecheck: {len(again)} mutants in fresh interpreters ({children} at a time)")
    with ThreadPoolExecutor(children) as pool:
        baseline = dict(zip(UNMUTATED, pool.map(recheck_one, UNMUTATED), strict=True))
        if any(verdict != "survived" for verdict in baseline.values()):
            raise SystemExit(f"recheck: the selection fails with no mutant active: {baseline}")
        verdicts = dict(zip(again, pool.map(recheck_one, again), strict=True))
    return [(name, verdicts.get(name, status)) for name, status in found]


def per_module(found: list[tuple[str, str]]) -> str:
    """A table: per module of rcfd/, its mutants by status, and its score
    (killed + timeout) / checked, checked being all but "not checked"/"skipped"."""
    counts: dict[str, dict[str, int]] = {}
    for name, status in found:
        module = name.split(".x", 1)[0]  # rcfd._fd.xǁFDǁclose__mutmut_3 -> rcfd._fd
        row = counts.setdefault(module, dict.fromkeys((*COLUMNS, "other"), 0))
        status = {"killed (recheck)": "killed", "timeout (recheck)": "timeout"}.get(status, status)
        row[status if status in COLUMNS else "other"] += 1
    lines = [
        f"{'module':<20} {'total':>5} "
        + " ".join(f"{c:>11}" for c in (*COLUMNS, "other"))
        + f" {'score':>7}"
    ]
    for module, row in sorted(counts.items()):
        checked = sum(v for k, v in row.items() if k != "not checked")
        if not checked:
            continue
        caught = row["killed"] + row["timeout"]
        lines.append(
            f"{module:<20} {sum(row.values()):>5} "
            + " ".join(f"{row[c]:>11}" for c in (*COLUMNS, "other"))
            + f" {100.0 * caught / checked:>6.1f}%"
        )
    return "\n".join(lines)


def rev_name(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()[:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--rev",
        help="mutate this commit's tree (plus the working tree's tests/test_mutmut_*.py), "
        "not the working tree",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run every survivor and unreached mutant again in a fresh interpreter "
        "(RECHECK_TESTS: code mutmut cannot attribute a test to)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="no mutmut run: report (and --recheck) the last run's results",
    )
    parser.add_argument("mutants", nargs="*", help="mutmut mutant names or globs (default: all)")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.report:
        code = run_mutmut(args.fresh, args.rev, args.max_children, args.mutants)
        if code:
            return code
    report(args.recheck, args.max_children, args.show, started, args.mutants)
    return 0


def run_mutmut(fresh: bool, rev: str | None, children: int, mutants: list[str]) -> int:
    tests = ["tests/", *NOT_PER_MUTANT]
    source = ROOT if rev is None else snapshot(rev)
    prepare(fresh, tests, source)
    if rev is not None:
        print(f"mutating {rev} ({rev_name(rev)})")
    # Tests that start Python in a subprocess (the conformance driver, the
    # README's blocks) import the mutated tree too, not the checkout that the
    # venv's editable install points at (which others may be editing).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORK / "mutants"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    run = subprocess.run(
        [str(MUTMUT), "run", "--max-children", str(children), *mutants],
        cwd=WORK,
        env=env,
    )
    if run.returncode != 0:
        print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
    return run.returncode


def report(again: bool, children: int, show: bool, started: float, only: list[str]) -> None:
    s = stats()
    checked = sum(s[k] for k in ("killed", "timeout", "survived", "suspicious", "no_tests"))
    caught = s["killed"] + s["timeout"]
    score = 100.0 * caught / checked if checked else 0.0
    found = results()
    left = [(name, status) for name, status in found if status not in ("killed", "not checked")]
    print(
        f"\nmutmut: {s['killed']} killed, {s['timeout']} timed out, {s['survived']} survived, "
        f"{s['no_tests']} not reached by any test, {s['suspicious']} suspicious, of "
        f"{checked} checked ({s['total'] - checked} not checked, {s['skipped']} skipped): "
        f"score {score:.1f}% ({time.monotonic() - started:.0f}s)"
    )
    print("\nPer module (modules with no mutant checked are left out):\n" + per_module(found))
    if again:
        found = recheck(found, children, only)
        done = ("killed", "killed (recheck)", "not checked")
        left = [(name, status) for name, status in found if status not in done]
        print("\nPer module, after the recheck:\n" + per_module(found))
    for name, status in left:
        print(f"  {status}: {name}")
        if show:
            diff = subprocess.run(
                [str(MUTMUT), "show", name], cwd=WORK, capture_output=True, text=True
            ).stdout
            print("    " + diff.replace("\n", "\n    "))


if __name__ == "__main__":
    sys.exit(main())
