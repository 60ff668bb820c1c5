"""Which code of rcfd/ each borrow path runs, read from the source.

rcfd picks its borrow path once, at import (`rcfd._nogil.ENABLED`): the GIL
path ("gil"), or the path without the GIL ("nogil": a free-threaded build
running without it, or RCFD_NOGIL=1). A catalog mutant that patches only code
one path never runs cannot be killed on that path, so `make mutants` reports
it "n/a" there instead of running it (tools/mutation.py). Which path runs a
piece of code is decided here from the code, never from a mutant's result.

Two kinds of code belong to one path only:

- a branch of an `if` whose test reads the switch (`if _nogil.ENABLED:`,
  `if not _nogil.ENABLED:`, `if x and _nogil.ENABLED: ... elif x: ...`),
  evaluated with the switch set each way; a branch after a test that failed
  knows what failed (past `if x and _nogil.ENABLED` on the no-GIL path, x is
  false, so `elif x:` never runs there);
- a function that only such code reaches: a private method (`_release`), or
  any function of rcfd/_nogil.py (rcfd/_fd.py binds FD.do and Borrow's
  methods from it, rcfd/_closing.py imports its release), is live on a path
  if some reference to it (`.name`; for rcfd/_nogil.py's functions
  `_nogil.name`, or `name` in that module or one that imports it from there)
  sits in code that path runs. References are matched by name, so an
  unrelated attribute of the same name keeps a function live on both paths:
  the analysis can take one path's code for shared, not the other way round.
  Only rcfd/_nogil.py's functions need their module named (`_nogil.do`, not
  `self.do`: FD has methods of the same names), and a reference rcfd makes
  some other way (getattr with a string) would be missed: there is none.

Every other function (a public method, a dunder, a decorated function such
as a pytest fixture, a public function of another module) is an entry
point, run by both paths unless it sits in a branch of one path only. Code
that neither path runs would be a mistake of this analysis (or dead code):
`dead_on_both` lists it, and tests/test_mutant_paths.py requires it empty.
"""

from __future__ import annotations

import ast
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


@dataclass(frozen=True)
class Function:
    file: str  # relative to the repository root
    qualname: str
    name: str
    first: int  # its first line (decorators included) and last line
    last: int
    parent: str  # the qualname of the function it is nested in, "" if none
    module_level: bool
    decorated: bool  # a decorator may register it (a pytest fixture): an entry point

    def by_reference(self) -> bool:
        """Reached only through references (not an entry point)."""
        if self.decorated:
            return False
        if self.file == BOUND_BY_REFERENCE and self.module_level:
            return True
        return self.name.startswith("_") and not self.name.startswith("__")


@dataclass(frozen=True)
class Reference:
    file: str
    line: int
    name: str  # the attribute's or the name's
    module: str  # `_nogil` for `_nogil.name`; "" for a bare name or another attribute
    bare: bool  # a Name, not an Attribute


class Analysis:
    """rcfd/'s code, and per path the lines that path never runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[str, ast.Module] = {}
        for source in sorted((root / "rcfd").glob("*.py")):
            rel = source.relative_to(root).as_posix()
            self.trees[rel] = ast.parse(source.read_text(), filename=rel)
        self.functions = [f for rel, tree in self.trees.items() for f in _functions(rel, tree)]
        self.references = [r for rel, tree in self.trees.items() for r in _references(rel, tree)]
        self.imported = {rel: _imported_from_nogil(tree) for rel, tree in self.trees.items()}
        # path -> file -> lines that path never runs; path -> qualnames of dead functions
        self.dead: dict[str, dict[str, set[int]]] = {}
        self.dead_functions: dict[str, list[Function]] = {}
        for path in PATHS:
            self._analyse(path)

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

    # -- the analysis -----------------------------------------------------------

    def _analyse(self, path: str) -> None:
        enabled = path == "nogil"
        dead: dict[str, set[int]] = {}
        for rel, tree in self.trees.items():
            facts = {SWITCH: enabled, **({"ENABLED": enabled} if rel == BOUND_BY_REFERENCE else {})}
            lines: set[int] = set()
            _walk(tree.body, facts, lines)
            dead[rel] = lines
        # Functions: entry points are live unless their lines are dead; a
        # function reached by reference is live once a live reference reaches it.
        live: set[str] = set()

        def key(f: Function) -> str:
            return f"{f.file}:{f.qualname}"

        by_key = {key(f): f for f in self.functions}

        def line_live(file: str, line: int) -> bool:
            if line in dead[file]:
                return False
            inner = _enclosing(self.functions, file, line)
            return inner is None or key(inner) in live

        changed = True
        while changed:
            changed = False
            for f in self.functions:
                if key(f) in live or f.first in dead[f.file]:
                    continue
                parent = by_key.get(f"{f.file}:{f.parent}") if f.parent else None
                if parent is not None and key(parent) not in live:
                    continue
                if not f.by_reference() or any(
                    line_live(r.file, r.line)
                    and not (r.file == f.file and f.first <= r.line <= f.last)
                    for r in self._references_to(f)
                ):
                    live.add(key(f))
                    changed = True
        self.dead_functions[path] = [f for f in self.functions if key(f) not in live]
        for f in self.dead_functions[path]:
            dead[f.file].update(range(f.first, f.last + 1))
        self.dead[path] = dead

    def _references_to(self, f: Function) -> Iterator[Reference]:
        for r in self.references:
            if r.name != f.name:
                continue
            if f.file != BOUND_BY_REFERENCE or not f.module_level:
                yield r  # any `name` or `.name`, anywhere in rcfd/
            elif r.module == "_nogil" or (
                r.bare and (r.file == f.file or f.name in self.imported[r.file])
            ):
                yield r


def _enclosing(functions: list[Function], file: str, line: int) -> Function | None:
    """The innermost of `functions` around that line, if any."""
    around = [f for f in functions if f.file == file and f.first <= line <= f.last]
    return max(around, key=lambda f: f.first) if around else None


def _value(test: ast.expr, facts: dict[str, bool]) -> bool | None:
    """The test's value from what is known (None: it depends on the run)."""
    known = facts.get(ast.unparse(test))
    if known is not None:
        return known
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _value(test.operand, facts)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [_value(v, facts) for v in test.values]
        decisive, other = (False, True) if isinstance(test.op, ast.And) else (True, False)
        if decisive in values:
            return decisive
        if all(v is other for v in values):
            return other
    return None


def _learn(test: ast.expr, outcome: bool, facts: dict[str, bool]) -> dict[str, bool]:
    """What holds inside the branch where `test` came out `outcome`."""
    new = {**facts, ast.unparse(test): outcome}
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _learn(test.operand, not outcome, new)
    if isinstance(test, ast.BoolOp):
        decisive = not isinstance(test.op, ast.And)  # a true `or`, a false `and`, decides
        if outcome != decisive:  # every operand came out not decisive
            for value in test.values:
                new = _learn(value, outcome, new)
        else:  # one operand decided: if all others are known not to, it is that one
            unknown = [v for v in test.values if _value(v, new) is not (not decisive)]
            if len(unknown) == 1:
                new = _learn(unknown[0], decisive, new)
    return new


def _first_line(stmt: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(stmt, "decorator_list", [])
    return min([d.lineno for d in decorators] + [stmt.lineno])


def _span(body: list[ast.stmt]) -> range:
    first = min(_first_line(s) for s in body)
    last = max(s.end_lineno or s.lineno for s in body)
    return range(first, last + 1)


def _walk(body: list[ast.stmt], facts: dict[str, bool], dead: set[int]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.If):
            value = _value(stmt.test, facts)
            if value is False:
                dead.update(_span(stmt.body))
            else:
                _walk(stmt.body, _learn(stmt.test, True, facts), dead)
            if value is True and stmt.orelse:
                dead.update(_span(stmt.orelse))
            elif stmt.orelse:
                _walk(stmt.orelse, _learn(stmt.test, False, facts), dead)
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(stmt, field, None)
            if not isinstance(inner, list):
                continue
            for item in inner:
                if isinstance(item, ast.stmt):
                    _walk([item], facts, dead)
                elif isinstance(item, ast.ExceptHandler | ast.match_case):
                    _walk(item.body, facts, dead)


def _functions(rel: str, tree: ast.Module) -> Iterator[Function]:
    def visit(node: ast.AST, prefix: str, parent: str, module_level: bool) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{child.name}"
                first = _first_line(child)
                last = child.end_lineno or child.lineno
                yield Function(
                    rel, qualname, child.name, first, last, parent, module_level,
                    bool(child.decorator_list),
                )  # fmt: skip
                yield from visit(child, f"{qualname}.", qualname, False)
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.", parent, False)
            else:
                yield from visit(child, prefix, parent, module_level)

    return visit(tree, "", "", True)


def _references(rel: str, tree: ast.Module) -> Iterator[Reference]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            module = node.value.id if isinstance(node.value, ast.Name) else ""
            yield Reference(rel, node.lineno, node.attr, module, False)
        elif isinstance(node, ast.Name):
            yield Reference(rel, node.lineno, node.id, "", True)


def _imported_from_nogil(tree: ast.Module) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "rcfd._nogil"
        for alias in node.names
    }


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
