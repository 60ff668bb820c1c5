"""What a catalog mutant is, and how it is applied to a copy of rcfd/.

A mutant is a list of snippet replacements. Snippets, not line numbers or a
diff with fuzz: rcfd/_fd.py is still being edited (performance, fork and
signal handling), and a mutant whose snippet is gone must fail LOUDLY
("mutant X no longer applies") so that someone re-targets it, rather than
silently mutate something else or nothing at all.

Two kinds of snippet. One that does not end in a newline is an exact
substring (`holders.count(_get_ident())`). One that ends in a newline is a
run of whole lines matched by their code alone: indentation, blank lines,
comment-only lines and trailing `  # comments` are ignored, so re-indenting a
block (wrapping it in a try) or rewording a comment does not break the
mutant, while any change to the code itself does. Its replacement is
re-indented to where the match was found, keeping its own relative indentation.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
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
        spans = _find(text, edit.old)
        found = len(spans)
        if found != edit.count:
            what = "snippet not found" if found == 0 else f"snippet found {found} times"
            raise MutantDoesNotApply(
                f"mutant {mutant.name} no longer applies: {what} in {edit.path} "
                f"(expected {edit.count}); re-target mutants/ to the new code. Snippet:\n"
                + _indent(edit.old)
            )
        touched[target] = _replace(text, spans, edit)
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


def _code(line: str) -> str:
    """A line's code: no indentation, no trailing `  # comment`; "" if none."""
    code = line.split("  #", 1)[0].strip()
    return "" if code.startswith("#") else code


def _find(text: str, old: str) -> list[tuple[int, int]]:
    """(start, end) character spans of each match of `old` in `text`."""
    if not old.endswith("\n"):
        spans, at = [], text.find(old)
        while at != -1:
            spans.append((at, at + len(old)))
            at = text.find(old, at + len(old))
        return spans
    want = [c for c in map(_code, old.splitlines()) if c]
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans = []
    for first in range(len(lines)):
        if _code(lines[first]) != want[0]:
            continue
        at, matched = first, 0
        while at < len(lines) and matched < len(want):
            code = _code(lines[at])
            if code:
                if code != want[matched]:
                    break
                matched += 1
            at += 1
        if matched == len(want):
            spans.append((offsets[first], offsets[at]))
    return spans


def _replace(text: str, spans: list[tuple[int, int]], edit: Edit) -> str:
    for start, end in reversed(spans):
        new = edit.new
        if edit.old.endswith("\n"):
            found = text[start:end]
            shift = _width(found) - _width(edit.old)
            new = "".join(
                (" " * max(0, _width(line) + shift) + line.lstrip(" ")) if line.strip() else line
                for line in edit.new.splitlines(keepends=True)
            )
        text = text[:start] + new + text[end:]
    return text


def _width(text: str) -> int:
    """The indentation of the first line of `text` that has code."""
    for line in text.splitlines():
        if _code(line):
            return len(line) - len(line.lstrip(" "))
    return 0


def _indent(text: str) -> str:
    return "".join("    | " + line + "\n" for line in text.splitlines())
