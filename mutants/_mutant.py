"""What a catalog mutant is, and how it is applied to a copy of rcfd/.

A mutant is a list of exact-snippet replacements. Exact snippets, not line
numbers or a diff with fuzz: rcfd/_fd.py is still being edited (performance,
fork and signal handling), and a mutant whose snippet moved must fail LOUDLY
("mutant X no longer applies") so that someone re-targets it, rather than
silently mutate something else or nothing at all.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from mutants._harness import Scenario


class MutantDoesNotApply(Exception):
    """A snippet of a mutant is missing from (or ambiguous in) the current source."""


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in `path` (relative to the repository root).

    `count` is how many times `old` must occur; every occurrence is replaced.
    Any other number of occurrences means the code changed under the mutant.
    """

    path: str
    old: str
    new: str
    count: int = 1


@dataclass(frozen=True)
class Mutant:
    name: str  # kebab-case; `make explain MUTANT=<name>`
    title: str  # the bug in one line
    guarantees: tuple[int, ...]  # the numbers in specs/rcfd.md "Guarantees" it breaks
    explanation: str  # one paragraph: what the bug is, why it is realistic, what breaks
    edits: tuple[Edit, ...]
    scenario: Scenario  # the shortest replay that shows it (make explain)
    killers: tuple[str, ...] = field(default=())  # checks expected to catch it (documentation)


def apply(mutant: Mutant, root: Path) -> list[Path]:
    """Apply `mutant` in place to the tree at `root` (a copy, never the checkout).

    Raises MutantDoesNotApply naming the mutant, the file and the snippet when a
    snippet is missing or occurs a different number of times than expected, and
    when the result is not valid Python (a snippet edited into nonsense).
    """
    touched: dict[Path, str] = {}
    for edit in mutant.edits:
        target = root / edit.path
        text = touched.get(target)
        if text is None:
            if not target.is_file():
                raise MutantDoesNotApply(
                    f"mutant {mutant.name} no longer applies: {edit.path} does not exist"
                )
            text = target.read_text()
        found = text.count(edit.old)
        if found != edit.count:
            what = "snippet not found" if found == 0 else f"snippet found {found} times"
            raise MutantDoesNotApply(
                f"mutant {mutant.name} no longer applies: {what} in {edit.path} "
                f"(expected {edit.count}); re-target mutants/ to the new code. Snippet:\n"
                + _indent(edit.old)
            )
        touched[target] = text.replace(edit.old, edit.new)
    for target, text in touched.items():
        try:
            ast.parse(text, filename=str(target))
        except SyntaxError as exc:
            raise MutantDoesNotApply(
                f"mutant {mutant.name} produces invalid Python in {target.name}: {exc}"
            ) from exc
        if text == target.read_text():
            raise MutantDoesNotApply(f"mutant {mutant.name} changes nothing in {target.name}")
        target.write_text(text)
    return sorted(touched)


def _indent(text: str) -> str:
    return "".join("    | " + line + "\n" for line in text.splitlines())
