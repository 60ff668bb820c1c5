"""`make verify` records how long each check took, and `make mutants` orders its
checks by those times instead of running them all once more on the unmodified
code, only when the record is of a verify that passed on the same tree (the
files tools/mutation.py copies), Python and borrow path: otherwise a check
that now fails on the unmodified code would "kill" every mutant.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import sys
from pathlib import Path

import pytest

from tools import mutation, verify


def small_tree(root: Path) -> Path:
    for name, text in {
        "rcfd/a.py": "x = 1\n",
        "tests/test_a.py": "def test_a() -> None:\n    pass\n",
        ".venv/lib/site.py": "not copied\n",
        "rcfd/__pycache__/a.pyc": "not copied\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_digest_is_of_what_mutation_copies(tmp_path: Path) -> None:
    source = small_tree(tmp_path / "source")
    digest = verify.tree_digest(source)
    copy = mutation.copy_tree(tmp_path / "copy", source)
    assert not (copy / ".venv").exists() and not (copy / "rcfd" / "__pycache__").exists()
    assert verify.tree_digest(copy) == digest  # what make mutants compares
    (source / ".venv" / "lib" / "site.py").write_text("changed, but not copied\n")
    assert verify.tree_digest(source) == digest
    (source / "tests" / "test_a.py").write_text("def test_a() -> None:\n    assert False\n")
    assert verify.tree_digest(source) != digest  # a check changed: its pass is not known
    (source / "tests" / "test_a.py").write_text("def test_a() -> None:\n    pass\n")
    assert verify.tree_digest(source) == digest
    (source / "tests" / "test_a.py").rename(source / "tests" / "test_b.py")
    assert verify.tree_digest(source) != digest


def test_mutants_take_times_only_from_a_verify_of_the_same_tree_python_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = small_tree(tmp_path / "tree")
    record = tmp_path / "times.json"
    monkeypatch.setattr(mutation, "times_file", lambda: record)
    names = ("unit tests", "catalog scenarios", "trace replay")
    checks = [c for c in verify.CHECKS if c.name in names]
    times = {"unit tests": 100.0, "catalog scenarios": 20.0, "trace replay": 5.0, "ruff": 1.0}

    def write(**change: object) -> None:
        fields = {
            "tree": verify.tree_digest(tree),
            "executable": sys.executable,
            "path": verify.borrow_path(),
            "checks": times,
            "finished": "then",
        }
        record.write_text(json.dumps({**fields, **change}))

    ordered, why = mutation.recorded(checks, tree)
    assert ordered == [] and "no record of a passing verify" in why
    write()
    ordered, why = mutation.recorded(checks, tree)
    assert [(c.name, s) for c, s in ordered] == [
        ("trace replay", 5.0),
        ("catalog scenarios", 20.0),
        ("unit tests", 100.0),
    ]
    other_path = "gil" if verify.borrow_path() == "nogil" else "nogil"
    cases: list[tuple[dict[str, object], str]] = [
        ({"tree": "0" * 64}, "ran on other code"),
        ({"executable": "/elsewhere/python"}, "of another Python or path"),
        ({"path": other_path}, "of another Python or path"),
        ({"checks": {"unit tests": 1.0}}, "has no time for catalog scenarios, trace replay"),
    ]
    for change, reason in cases:
        write(**change)
        ordered, why = mutation.recorded(checks, tree)
        assert ordered == [] and reason in why, (change, why)
    write()
    (tree / "rcfd" / "a.py").write_text("x = 2\n")  # the code changed since that verify
    assert mutation.recorded(checks, tree)[0] == []


def test_verify_records_its_times_only_when_every_check_passed_on_an_unchanged_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = small_tree(tmp_path / "tree")
    monkeypatch.setattr(verify, "ROOT", tree)  # cwd of each check, the tree digested
    record = verify.times_file()
    assert record.is_relative_to(tree / ".venv")

    def run(*snippets: str) -> int:
        checks = [
            verify.Check(f"check {n}", [sys.executable, "-c", code], lambda out: "")
            for n, code in enumerate(snippets)
        ]
        monkeypatch.setattr(verify, "CHECKS", checks)
        return verify.main()

    assert run("pass", "import time; time.sleep(0.2)") == 0
    written = json.loads(record.read_text())
    assert written["tree"] == verify.tree_digest(tree)
    assert (written["executable"], written["path"]) == (sys.executable, verify.borrow_path())
    assert list(written["checks"]) == ["check 0", "check 1"]
    assert written["checks"]["check 1"] >= 0.2
    assert run("pass", "raise SystemExit(1)") == 1
    assert not record.exists()  # the last verify failed: no record, not an older one
    edit = "open('rcfd/a.py', 'a').write('y = 2\\n')"  # the tree changes while verify runs
    assert run(edit) == 0
    assert not record.exists()
    assert "the tree changed while verify ran" in capsys.readouterr().out


def test_the_copy_holds_every_module_the_checks_import() -> None:
    """The copy a mutant runs in leaves out UNCOPIED; verify ran where nothing
    is left out. A module of the checks missing from the copy fails its
    import in every mutant's copy alike, and with a verify's times (no run on
    the unmutated copy) that failure would "kill" every mutant it reaches."""
    root = Path(verify.ROOT)
    imported: dict[str, str] = {}
    for folder in ("tests", "tools", "mutants", "model", "conformance", "examples"):
        for source in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text())):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module] if isinstance(node, ast.ImportFrom)
                    and node.module and not node.level else []
                )  # fmt: skip
                for name in names:
                    imported.setdefault(name.partition(".")[0], str(source.relative_to(root)))
    left_out = {
        top: where
        for top, where in imported.items()
        if (root / top).is_dir() and any(fnmatch.fnmatch(top, p) for p in verify.UNCOPIED)
    }
    assert not left_out, f"imported by the checks, not copied for a mutant: {left_out}"
