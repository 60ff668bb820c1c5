"""Which code of rcfd/ each borrow path runs, read from the source.

rcfd picks its borrow path once, at import (`rcfd._nogil.ENABLED`): "gil", or
"nogil" (a free-threaded build without the GIL, or RCFD_NOGIL=1). A catalog
mutant that patches only code one path never runs is "n/a" there
(tools/mutation.py), decided from the code, never from a mutant's result. Code
of one path only is:

- a branch of an `if` that no values of the tests around it (and of the
  `elif`s before it) reach with `_nogil.ENABLED` fixed, each test taken as a
  boolean of its `and`/`or`/`not` operands;
- a function (not nested) that only such code reaches: a private method, or
  any function of rcfd/_nogil.py, is live on a path if a reference to it
  (`.name`; for rcfd/_nogil.py's also `_nogil.name` or `name`) sits in code
  that path runs, outside itself. Matched by name, so the analysis can take
  one path's code for shared, never the other way round (rcfd makes no
  reference by getattr with a string).

Every other function is an entry point, run by both paths unless in a branch
of one. Code neither path runs is listed by `dead_on_both`, which
tests/test_mutant_paths.py requires empty.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mutants._mutant import Mutant

PATHS = ("gil", "nogil")
NAMES = {"gil": "the GIL path", "nogil": "the no-GIL path"}
SWITCH = "_nogil.ENABLED"  # how rcfd's modules spell it; rcfd/_nogil.py itself says ENABLED
BOUND_BY_REFERENCE = "rcfd/_nogil.py"  # its functions are reached only by reference

# A branch's conditions: each test around it, and what it came out.
Conditions = tuple[tuple[ast.expr, bool], ...]


@dataclass(frozen=True)
class Function:
    file: str  # relative to the repository root
    qualname: str
    name: str
    first: int  # its first line (decorators included) and last line
    last: int
    module_level: bool
    decorated: bool  # a decorator may register it (a pytest fixture): an entry point

    def by_reference(self) -> bool:
        """Reached only through references (not an entry point)."""
        if self.decorated:
            return False
        if self.file == BOUND_BY_REFERENCE and self.module_level:
            return True
        return self.name.startswith("_") and not self.name.startswith("__")

    def referenced_by(self, spelled: str) -> bool:
        """Whether a name as spelled (`name`, `_nogil.name`, `x.name`, `.name`) is this one."""
        if self.file == BOUND_BY_REFERENCE and self.module_level:
            return spelled in (self.name, f"_nogil.{self.name}")
        return spelled.rpartition(".")[2] == self.name


class Analysis:
    """rcfd/'s code, and per path the lines that path never runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        trees = {
            source.relative_to(root).as_posix(): ast.parse(source.read_text())
            for source in sorted((root / "rcfd").glob("*.py"))
        }
        self.functions = [f for rel, tree in trees.items() for f in _functions(rel, tree)]
        # (file, line, the name as spelled) of every name and attribute
        self.references = [
            (rel, node.lineno, _spelled(node))
            for rel, tree in trees.items()
            for node in ast.walk(tree)
            if isinstance(node, ast.Name | ast.Attribute)
        ]
        # path -> file -> lines that path never runs; path -> the functions it never runs
        self.dead: dict[str, dict[str, set[int]]] = {}
        self.dead_functions: dict[str, list[Function]] = {}
        for path in PATHS:
            dead = {rel: set[int]() for rel in trees}
            for rel, tree in trees.items():
                switch = (SWITCH, "ENABLED") if rel == BOUND_BY_REFERENCE else (SWITCH,)
                _walk(tree.body, (), dict.fromkeys(switch, path == "nogil"), dead[rel])
            live = self._live(dead)
            self.dead_functions[path] = [f for f in self.functions if f not in live]
            for f in self.dead_functions[path]:
                dead[f.file].update(range(f.first, f.last + 1))
            self.dead[path] = dead

    def _live(self, dead: dict[str, set[int]]) -> set[Function]:
        """The functions run, given the lines of dead branches: the entry points,
        then (until none is added) each function a live reference reaches."""
        live: set[Function] = set()

        def runs(file: str, line: int) -> bool:
            around = _enclosing(self.functions, file, line)
            return line not in dead[file] and (around is None or around in live)

        def reached(f: Function) -> bool:
            """Not in a dead branch, and an entry point or referenced from code
            run outside itself."""
            return f.first not in dead[f.file] and (not f.by_reference() or any(
                f.referenced_by(spelled) and runs(file, line)
                and not (file == f.file and f.first <= line <= f.last)
                for file, line, spelled in self.references
            ))  # fmt: skip

        while added := {f for f in self.functions if f not in live and reached(f)}:
            live |= added
        return live

    def dead_on_both(self) -> list[str]:
        """Functions neither path runs (each a mistake here, or dead code)."""
        gil, nogil = ({f"{f.file}:{f.qualname}" for f in self.dead_functions[p]} for p in PATHS)
        return sorted(gil & nogil)

    def runs(self, path: str, file: str, first: int, last: int) -> bool:
        """Whether `path` runs any of lines first..last of `file` (a file
        outside rcfd/, or a line outside every function and branch, is run)."""
        dead = self.dead[path].get(file, set())
        return any(line not in dead for line in range(first, last + 1))

    def where(self, path: str, file: str, line: int) -> str:
        """What `path` does not run at that line, in words ("_fd.FD._release")."""
        module = Path(file).stem
        if dead := _enclosing(self.dead_functions[path], file, line):
            return f"{module}.{dead.qualname}"
        around = _enclosing(self.functions, file, line)
        return f"a branch of {module}.{around.qualname if around else 'module level'}"


def _enclosing(functions: list[Function], file: str, line: int) -> Function | None:
    """The one of `functions` around that line, if any."""
    return next((f for f in functions if f.file == file and f.first <= line <= f.last), None)


def _spelled(node: ast.Name | ast.Attribute) -> str:
    if isinstance(node, ast.Name):
        return node.id
    return f"{node.value.id if isinstance(node.value, ast.Name) else ''}.{node.attr}"


def _atoms(test: ast.expr) -> Iterator[str]:
    """The operands of `test`'s and, or and not (as written)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        yield from _atoms(test.operand)
    elif isinstance(test, ast.BoolOp):
        for value in test.values:
            yield from _atoms(value)
    else:
        yield ast.unparse(test)


def _value(test: ast.expr, atoms: dict[str, bool]) -> bool:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return not _value(test.operand, atoms)
    if isinstance(test, ast.BoolOp):
        values = [_value(v, atoms) for v in test.values]
        return all(values) if isinstance(test.op, ast.And) else any(values)
    return atoms[ast.unparse(test)]


def _reachable(conditions: Conditions, known: dict[str, bool]) -> bool:
    """Whether some values of the unknown operands meet every condition."""
    unknown = sorted({a for test, _ in conditions for a in _atoms(test)} - known.keys())
    return any(
        all(_value(test, {**known, **dict(zip(unknown, values, strict=True))}) is outcome
            for test, outcome in conditions)
        for values in itertools.product((False, True), repeat=len(unknown))
    )  # fmt: skip


def _first_line(stmt: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(stmt, "decorator_list", [])
    return min([d.lineno for d in decorators] + [stmt.lineno])


def _walk(body: list[ast.stmt], around: Conditions, known: dict[str, bool], dead: set[int]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.If):  # an elif is an If alone in its orelse
            for branch, outcome in ((stmt.body, True), (stmt.orelse, False)):
                inside = (*around, (stmt.test, outcome))
                if branch and not _reachable(inside, known):
                    first = min(_first_line(s) for s in branch)
                    dead.update(range(first, max(s.end_lineno or s.lineno for s in branch) + 1))
                elif branch:
                    _walk(branch, inside, known, dead)
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for item in getattr(stmt, field, ()):
                inner = isinstance(item, ast.ExceptHandler | ast.match_case)
                _walk(item.body if inner else [item], around, known, dead)


def _functions(rel: str, node: ast.AST, prefix: str = "") -> Iterator[Function]:
    """The functions of a module and of its classes (not those nested in a function)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield Function(
                rel, f"{prefix}{child.name}", child.name, _first_line(child),
                child.end_lineno or child.lineno, not prefix, bool(child.decorator_list),
            )  # fmt: skip
        elif isinstance(child, ast.ClassDef):
            yield from _functions(rel, child, f"{prefix}{child.name}.")
        else:
            yield from _functions(rel, child, prefix)


def patched_lines(mutant: Mutant, root: Path) -> list[tuple[str, int, int]]:
    """(file, first line, last line) of each place the mutant's edits replace."""
    from mutants._mutant import _find

    found = []
    for edit in mutant.edits:
        text = (root / edit.path).read_text()
        for start, end in _find(text, edit.old):
            first = text.count("\n", 0, start) + 1
            found.append((edit.path, first, text.count("\n", 0, max(start, end - 1)) + 1))
    return found


def paths_run(mutant: Mutant, analysis: Analysis) -> tuple[str, ...]:
    """The paths that run some of the code the mutant patches."""
    places = patched_lines(mutant, analysis.root)
    return tuple(p for p in PATHS if any(analysis.runs(p, *place) for place in places))


def not_run(mutant: Mutant, analysis: Analysis, path: str) -> str:
    """What the mutant patches that `path` never runs, in words."""
    places = patched_lines(mutant, analysis.root)
    names = [analysis.where(path, file, first) for file, first, _ in places]
    return ", ".join(dict.fromkeys(names))
