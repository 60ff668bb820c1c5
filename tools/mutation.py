"""`make mutants`: every catalog mutant (mutants/) must be killed by the checks.

1. Every mutant must still apply to the current rcfd/ (else: exit 2, naming it).
2. The borrow path this run checks is the one rcfd picks here (RCFD_NOGIL=1:
   the no-GIL path; `make mutants-nogil`). A mutant that patches only code
   that path never runs (mutants/_paths.py reads which from the source) is
   "n/a" on it: listed, not run, never counted as killed.
3. The checks of tools/verify.py (minus lint and types, which say nothing about
   behaviour), cheapest first, those that only read the source (CrossHair)
   after those that run rcfd. Their times come from the record of a `make
   verify` on this Python and path that passed on a tree with the same digest
   as the copy this run checks (tools/verify.py, TIMES): that verify was
   this baseline. Without such a record they run once on an unmutated copy
   of the tree: all must pass, else exit 1, and their times there order them.
4. For each applicable mutant: a fresh copy of the tree, the mutant applied,
   the checks run in that order until one fails (the mutant is killed) or
   none does (it survived). Each stops at its own first failure (pytest -x,
   the conformance runner's -x), and the catalog's scenarios begin with the
   mutant's own. A check that exceeds its time limit (3 times its recorded
   time, at least 90 s) counts as failing: a hang is what several of these
   bugs cause.
5. A table: mutant, killed/SURVIVED/n/a, the check that killed it, how long.
   Exit 1 if any mutant survived.

The checks run one mutant at a time (--jobs 1, the default): several of them
drive real threads with bounded waits, and on a 2-core machine running two at
once would only trade time for flakiness. The copies live in a temporary
directory; the checkout itself is never modified.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `mutants` and `tools` importable
    sys.path.insert(0, str(ROOT))

from mutants import CATALOG, find  # noqa: E402
from mutants._mutant import Mutant, MutantDoesNotApply, apply  # noqa: E402
from mutants._paths import NAMES, PATHS, Analysis, not_run, paths_run  # noqa: E402
from tests.test_mutation_kills import test_scenario_breaks_nothing_on_the_real_fd  # noqa: E402
from tools.verify import (  # noqa: E402
    CHECKS,
    UNCOPIED,
    Check,
    borrow_path,
    times_file,
    tree_digest,
)

# Not behavioural: a mutant is a behaviour change, and these would only tell
# whether the mutant was typed neatly.
NOT_KILLERS = ("ruff", "mypy")
# The catalog's own scenario replays are a check of their own in verify too
# (listed separately in the table, so that it shows which mutants the rest of
# `make verify` catches without them); verify's unit tests leave them out.
KILL_TESTS = "tests/test_mutation_kills.py"
CATALOG_CHECK = next(c for c in CHECKS if KILL_TESTS in c.argv)
# On a mutant, that check replays the mutant's own scenario first (then the whole
# file, that one again included: --keep-duplicates), so that with -x it need not
# get through the scenarios of the mutants listed before it to fail.
OWN_SCENARIO = KILL_TESTS + "::" + test_scenario_breaks_nothing_on_the_real_fd.__name__ + "[{}]"
# What is copied: the tree minus VCS data, virtualenvs, caches and scratch
# (the same files the digest of a verify's record covers).
IGNORE = shutil.ignore_patterns(*UNCOPIED)


@dataclass(frozen=True)
class Result:
    mutant: str
    killed: bool
    killer: str  # the check that failed, "" if none did
    seconds: float
    detail: str  # last lines of the killer's output
    not_run: str = ""  # n/a on this path: what it patches that the path never runs

    @property
    def word(self) -> str:
        return "n/a" if self.not_run else "killed" if self.killed else "SURVIVED"


def copy_tree(dest: Path, source: Path = ROOT) -> Path:
    shutil.copytree(source, dest, ignore=IGNORE)
    return dest


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy's rcfd must win over the editable install of the checkout.
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def argv_for(check: Check, tree: Path, mutant: Mutant | None = None) -> list[str]:
    """The check's command, pointed at `tree`, stopping at its first failure:
    pytest -x, the conformance runner's -x (a mutant is killed by one failure;
    the rest of the run would only take longer to say so). The catalog's check
    on `mutant` replays that mutant's scenario first (OWN_SCENARIO)."""
    # Paths into the checkout become paths into the copy; the interpreter (in
    # the checkout's .venv) stays.
    argv = [
        arg if arg == sys.executable else arg.replace(str(ROOT), str(tree)) for arg in check.argv
    ]
    if "pytest" in argv:
        at = argv.index("pytest") + 1
        argv[at:at] = ["-x", "--timeout=120"]
    if "conformance.runner" in argv:
        at = argv.index("conformance.runner") + 1
        argv[at:at] = ["-x"]
    if check is CATALOG_CHECK and mutant is not None:
        at = argv.index(KILL_TESTS)
        argv[at:at] = ["--keep-duplicates", OWN_SCENARIO.format(mutant.name)]
    return argv


def assert_uses_copy(tree: Path) -> None:
    """Fail loudly if `import rcfd` in the copy would find the checkout instead."""
    out = subprocess.run(
        [sys.executable, "-c", "import rcfd; print(rcfd.__file__)"],
        cwd=tree, env=environment(tree), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(out).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"mutants: the copy in {tree} imports rcfd from {out}, not its own")


def run_check(
    check: Check, tree: Path, limit: float, mutant: Mutant | None = None
) -> tuple[bool, float, str]:
    """(passed, seconds, output tail). Over `limit` seconds counts as a failure."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv_for(check, tree, mutant), cwd=tree, env=environment(tree),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=limit,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return False, time.monotonic() - start, f"(no result after {limit:.0f}s: hung)\n{out}"
    return proc.returncode == 0, time.monotonic() - start, proc.stdout


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_catalog(mutants: list[Mutant], source: Path, scratch: Path) -> None:
    broken = []
    for mutant in mutants:
        tree = scratch / f"apply-{mutant.name}"
        shutil.copytree(source / "rcfd", tree / "rcfd", ignore=IGNORE)
        try:
            apply(mutant, tree)
        except MutantDoesNotApply as exc:
            broken.append(str(exc))
    if broken:
        print("\n\n".join(broken), file=sys.stderr)
        raise SystemExit(2)


def recorded(checks: list[Check], snapshot: Path) -> tuple[list[tuple[Check, float]], str]:
    """The checks ordered by the times a passing verify recorded on the same
    tree, Python and path; ([], why not) if there is no such record."""
    source = times_file()
    try:
        record = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        return [], f"no record of a passing verify ({source}: {type(exc).__name__})"
    if record.get("executable") != sys.executable or record.get("path") != borrow_path():
        return [], f"{source} is of another Python or path"
    if record.get("tree") != tree_digest(snapshot):
        return [], f"the verify of {source} ran on other code (the tree's digest differs)"
    times = record.get("checks", {})
    if missing := [c.name for c in checks if c.name not in times]:
        return [], f"{source} has no time for {', '.join(missing)}"
    timed = sorted(((c, float(times[c.name])) for c in checks), key=lambda pair: pair[1])
    return timed, f"times of the passing verify of {record.get('finished')}, same tree"


def baseline(checks: list[Check], scratch: Path) -> list[tuple[Check, float]]:
    tree = copy_tree(scratch / "unmutated", scratch / "snapshot")
    assert_uses_copy(tree)
    timed = []
    for check in checks:
        print(f"== baseline: {check.name} ...", end=" ", flush=True)
        ok, seconds, output = run_check(check, tree, limit=1800)
        print(f"{'pass' if ok else 'FAIL'} ({seconds:.1f}s)", flush=True)
        if not ok:
            print(tail(output, 60))
            raise SystemExit(f"mutants: the unmutated code fails {check.name}; fix that first")
        timed.append((check, seconds))
    timed.sort(key=lambda pair: pair[1])
    return timed


def run_mutant(mutant: Mutant, checks: list[tuple[Check, float]], scratch: Path) -> Result:
    tree = copy_tree(scratch / mutant.name, scratch / "snapshot")
    start = time.monotonic()
    try:
        apply(mutant, tree)
        assert_uses_copy(tree)
        for check, base in checks:
            ok, _, output = run_check(check, tree, limit=max(90.0, 3 * base), mutant=mutant)
            if not ok and "ERROR: not found: " in output:  # pytest's, for a test id: not a kill
                raise SystemExit(f"mutants: pytest has no {OWN_SCENARIO.format(mutant.name)} "
                                 f"(the catalog test's ids changed?):\n{tail(output)}")  # fmt: skip
            if not ok:
                return Result(mutant.name, True, check.name, time.monotonic() - start, tail(output))
        return Result(mutant.name, False, "", time.monotonic() - start, "")
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def table(results: list[Result]) -> str:
    rows = [("mutant", "result", "killed by", "time")]
    rows += [
        (r.mutant, r.word, r.killer or "-", "-" if r.not_run else f"{r.seconds:.1f}s")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def markdown(mutants: list[Mutant], analysis: Analysis) -> str:
    module = {m.name: f"m{i:02d}" for i, m in enumerate(CATALOG, 1)}
    lines = ["| # | mutant | the bug | breaks | path |", "| --- | --- | --- | --- | --- |"]
    for mutant in mutants:
        breaks = ", ".join(
            {0: "registry", 11: "errors"}.get(g, str(g)) for g in mutant.guarantees
        )
        lines.append(
            f"| {module[mutant.name]} | `{mutant.name}` | {mutant.title} | {breaks} "
            f"| {runs_on(mutant, analysis)} |"
        )
    return "\n".join(lines)


def runs_on(mutant: Mutant, analysis: Analysis) -> str:
    """Which borrow paths run the code the mutant patches, in words."""
    paths = paths_run(mutant, analysis)
    return "both" if len(paths) == len(PATHS) else " ".join(
        {"gil": "GIL only", "nogil": "no-GIL only"}[p] for p in paths
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only these mutants (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--list", action="store_true", help="list the catalog and exit")
    parser.add_argument("--show", action="store_true", help="print each killer's output tail")
    parser.add_argument(
        "--catalog-last",
        action="store_true",
        help="run the catalog's scenario replays after every other check, not by speed",
    )
    parser.add_argument("--markdown", action="store_true", help="the catalog as a Markdown table")
    parser.add_argument(
        "--rerun-baseline",
        action="store_true",
        help="run every check on the unmutated code even if a verify recorded its times",
    )
    args = parser.parse_args()
    mutants = [find(name) for name in args.names] if args.names else list(CATALOG)
    path = borrow_path()
    if args.list or args.markdown:
        analysis = Analysis(ROOT)
        for mutant in mutants if args.list else ():
            print(f"{mutant.name:40} {runs_on(mutant, analysis):12} {mutant.title}")
        if args.markdown:
            print(markdown(mutants, analysis))
        return 0
    started = time.monotonic()
    # The checks that verify runs on this Python and path (the no-GIL verify
    # leaves those that only read the source to the GIL one), minus lint and types.
    checks = [
        c for c in CHECKS
        if not any(word in c.name for word in NOT_KILLERS) and sys.version_info >= c.needs
        and not (c.source_only and path == "nogil")
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rcfd-mutants-") as tmp:
        scratch = Path(tmp)
        # One snapshot of the checkout for the whole run: others may edit it
        # meanwhile, and the baseline and every mutant must see the same code.
        snapshot = copy_tree(scratch / "snapshot")
        check_catalog(mutants, snapshot, scratch)
        analysis = Analysis(snapshot)
        if dead := analysis.dead_on_both():
            raise SystemExit(f"mutants: neither borrow path runs {', '.join(dead)}: "
                             "mutants/_paths.py misreads rcfd/, or that code is dead")  # fmt: skip
        skipped = {
            m.name: not_run(m, analysis, path)
            for m in mutants if path not in paths_run(m, analysis)
        }  # fmt: skip
        print(f"== {NAMES[path]} ({'RCFD_NOGIL=1' if path == 'nogil' else 'no RCFD_NOGIL'}): "
              f"{len(mutants) - len(skipped)} mutants apply, {len(skipped)} do not")  # fmt: skip
        ordered, why = ([], "--rerun-baseline") if args.rerun_baseline else recorded(
            checks, snapshot
        )
        if ordered:
            print(f"== check order from verify ({why}); no baseline run")
        else:
            print(f"== baseline on the unmutated code ({why})")
            ordered = baseline(checks, scratch)
        # Those that only read the source (CrossHair: step()'s contracts) after those
        # that run the mutated rcfd, each group cheapest first: a mutant is a change
        # of behaviour, and none of the catalog's edits the code CrossHair proves.
        ordered.sort(key=lambda pair: pair[0].source_only)
        if args.catalog_last:
            ordered.sort(key=lambda pair: pair[0] is CATALOG_CHECK)
        print("== check order: " + ", ".join(f"{c.name} ({s:.0f}s)" for c, s in ordered))

        def one(mutant: Mutant) -> Result:
            if mutant.name in skipped:
                result = Result(mutant.name, False, "", 0.0, "", skipped[mutant.name])
                print(f"== {mutant.name}: n/a on {NAMES[path]} (it patches only "
                      f"{result.not_run})", flush=True)  # fmt: skip
                return result
            result = run_mutant(mutant, ordered, scratch)
            verdict = f"killed by {result.killer}" if result.killed else "SURVIVED"
            print(f"== {mutant.name}: {verdict} ({result.seconds:.1f}s)", flush=True)
            if args.show and result.detail:
                print(result.detail)
            return result

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, mutants))
    print()
    print(table(results))
    applicable = [r for r in results if not r.not_run]
    survivors = [r.mutant for r in applicable if not r.killed]
    total = time.monotonic() - started
    if skipped:
        print(f"\nnot applicable on {NAMES[path]} (each patches only code it never runs; "
              "not run, not counted):")  # fmt: skip
        for r in results:
            if r.not_run:
                print(f"  {r.mutant}: {r.not_run}")
    print(
        f"\nmutants on {NAMES[path]}: {len(applicable) - len(survivors)}/{len(applicable)} "
        f"killed, {len(results) - len(applicable)} n/a, in {total:.0f}s"
        + (f"; SURVIVED: {', '.join(survivors)}" if survivors else "")
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
