"""`make explain MUTANT=name`: one catalog mutant's counterexample as a timeline.

Applies the mutant to a copy of the tree, replays the mutant's scenario
(mutants/<module>.py) against the mutated FD with real threads driven one
step at a time (mutants/_harness.py), and prints one row per step, one column
per thread, the FD's state and borrow count after the step, how often
close_func ran, and what broke (model.guarantees' checks over the replay's
history), then every event of that history. `--original` also replays the
same steps on the unmutated code, to compare; `--events` prints the events
also when nothing broke. It replays on the borrow path rcfd picks here
(RCFD_NOGIL=1: the no-GIL path), and says so when that path never runs the
code the mutant patches (mutants/_paths.py): such a replay shows nothing broken.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `mutants` and `tools` importable
    sys.path.insert(0, str(ROOT))

from mutants import CATALOG, find  # noqa: E402
from mutants._harness import GUARANTEES, Replay, Violation, replay  # noqa: E402
from mutants._mutant import Mutant, apply  # noqa: E402
from mutants._paths import NAMES, PATHS, Analysis, not_run, paths_run  # noqa: E402
from tools.mutation import assert_uses_copy, copy_tree, environment  # noqa: E402
from tools.verify import borrow_path  # noqa: E402


def render(result: Replay, events: bool = False) -> str:
    seen = {who for row in result.rows for who in row.cells}
    threads = [t for t in (*result.threads, "T0", "child", "gc", "harness") if t in seen]
    threads = list(dict.fromkeys([*result.threads, *threads]))
    header = ["#", *threads, "state", "borrows", "close_func", "broken"]
    rows = [header]
    for row in result.rows:
        step = "end" if row.step > result.steps else str(row.step)
        cells = [step, *[row.cells.get(t, "") for t in threads]]
        broken = sum(1 for v in result.violations if v.step == row.step)
        cells += [row.state, row.borrows, row.close_func, f"{broken} (below)" if broken else ""]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines = ["\n".join(out), ""]
    for v in sorted(result.violations, key=_in_order):
        where = "at the end" if v.step > result.steps else f"at step {v.step}"
        message = v.message.removeprefix(f"{where}: ")  # a check may say where itself
        lines.append(f"BROKEN {where}: {message}")
    if not result.violations:
        lines.append("no guarantee broken")
    if events or result.violations:
        lines += ["", "every event (the #n above), with the FD's state after it:", result.timeline]
    # The same on every run: a warning may name this process's pid (os.fork's).
    return re.sub(r"\(pid=\d+\)", "(pid=...)", "\n".join(lines))


def _in_order(v: Violation) -> tuple[int, int]:
    """Where a violation happened: its step, then its event (`at #N`; else last)."""
    event = re.match(r"at #(\d+)", v.message)
    return v.step, int(event[1]) if event else sys.maxsize


def inside(name: str, events: bool) -> int:
    """Run in the (mutated or not) copy: replay and print the timeline."""
    mutant = find(name)
    result = replay(mutant.scenario, wait=5.0)
    print(render(result, events))
    return 0


def the_change(mutant: Mutant, tree: Path) -> str:
    diffs = []
    for path in sorted({edit.path for edit in mutant.edits}):
        before = (ROOT / path).read_text().splitlines(keepends=True)
        after = (tree / path).read_text().splitlines(keepends=True)
        diffs.append("".join(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}", n=2)))
    return "".join(diffs)


def replay_in(tree: Path, name: str, events: bool = False) -> str:
    proc = subprocess.run(
        [sys.executable, str(tree / "tools" / "explain.py"), "--inside", name]
        + ["--events"] * events,
        cwd=tree, env=environment(tree), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.stdout + proc.stderr
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="the mutant (tools/mutation.py --list)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--original", action="store_true", help="also replay unmutated code")
    parser.add_argument("--events", action="store_true", help="also print every event")
    args = parser.parse_args()
    if not args.name:
        print("usage: make explain MUTANT=<name>; the catalog:")
        for m in CATALOG:
            print(f"  {m.name:40} {m.title}")
        return 2
    if args.inside:
        return inside(args.name, args.events)
    mutant = find(args.name)
    wrap = textwrap.TextWrapper(width=88)
    print(f"mutant {mutant.name}: {mutant.title}")
    for number in mutant.guarantees:
        print(f"  breaks guarantee {number}: {GUARANTEES[number]}")
    print()
    print(wrap.fill(mutant.explanation))
    path, analysis = borrow_path(), Analysis(ROOT)
    if path not in paths_run(mutant, analysis):
        other = next(p for p in PATHS if p != path)
        switch = "with RCFD_NOGIL=1" if other == "nogil" else "without RCFD_NOGIL"
        print()
        print(wrap.fill(
            f"n/a on {NAMES[path]}: it patches only {not_run(mutant, analysis, path)}, which "
            f"{NAMES[path]} never runs, so nothing below breaks; run this {switch} to see "
            f"it on {NAMES[other]}."
        ))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rcfd-explain-") as tmp:
        tree = copy_tree(Path(tmp) / "mutated")
        apply(mutant, tree)
        assert_uses_copy(tree)
        print("\nthe change:\n")
        print(textwrap.indent(the_change(mutant, tree), "    "))
        print("timeline (real threads, one step at a time; state and borrows after the step):\n")
        print(replay_in(tree, mutant.name, args.events))
        if args.original:
            clean = copy_tree(Path(tmp) / "original")
            print("the same steps on the unmutated rcfd:\n")
            print(replay_in(clean, mutant.name, args.events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
