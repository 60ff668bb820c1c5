"""Which borrow path runs the code each catalog mutant patches (mutants/_paths.py).

`make mutants` reports a mutant "n/a" on a path that never runs the code it
patches, and runs it nowhere else: so the reading of rcfd/'s source that
decides it is tested here, on rcfd/ itself (every catalog mutant, and no code
that neither path runs) and on small sources that isolate each rule.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from mutants import CATALOG
from mutants._harness import Scenario
from mutants._mutant import Edit, Mutant, apply
from mutants._paths import Analysis, not_run, paths_run

ROOT = Path(__file__).resolve().parent.parent

# What the GIL path alone runs: FD.do, Borrow.__enter__/__exit__ (the GIL
# path's, under `if not _nogil.ENABLED`), FD._release; the no-GIL path alone:
# rcfd/_nogil.py's borrow and release.
GIL_ONLY = {
    "no-release-on-exception": "_fd.FD.do",
    "no-release-on-exception-in-with": "_fd.Borrow.__exit__",
    "no-release-on-interrupt": "_fd.FD.do",
    "no-release-on-interrupt-in-with": "_fd.Borrow.__exit__",
    "lost-wakeup": "_fd.FD.do",
    "refused-borrow-leaks-count": "_fd.FD.do",
}
NOGIL_ONLY = {
    "nogil-insert-outside-the-lock": "_nogil.take",
    "nogil-unrecorded-borrow-given-back": "_nogil.do, _nogil.borrow_enter",
    "nogil-recorded-release-taken-again": "_nogil.give_back_again",
    "nogil-recovery-skips-the-decision": "_nogil.give_back_again",
}


@pytest.fixture(scope="module")
def rcfd_source() -> Analysis:
    return Analysis(ROOT)


@pytest.mark.parametrize("mutant", CATALOG, ids=[m.name for m in CATALOG])
def test_each_catalog_mutant_runs_on_the_paths_that_run_its_code(
    mutant: Mutant, rcfd_source: Analysis
) -> None:
    paths = paths_run(mutant, rcfd_source)
    if mutant.name in GIL_ONLY:
        assert paths == ("gil",)
        assert not_run(mutant, rcfd_source, "nogil") == GIL_ONLY[mutant.name]
    elif mutant.name in NOGIL_ONLY:
        assert paths == ("nogil",)
        assert not_run(mutant, rcfd_source, "gil") == NOGIL_ONLY[mutant.name]
    else:
        assert paths == ("gil", "nogil")


@pytest.mark.parametrize("mutant", CATALOG, ids=[m.name for m in CATALOG])
def test_each_catalog_mutant_applies_to_the_code_as_it_is(mutant: Mutant, tmp_path: Path) -> None:
    """Every edit of every catalog mutant finds its snippet (make mutants
    refuses a mutant that does not apply; this says so in the unit tests,
    before a change to rcfd/ reaches CI)."""
    for path in {edit.path for edit in mutant.edits}:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    apply(mutant, tmp_path)


def test_every_function_of_rcfd_runs_on_some_path(rcfd_source: Analysis) -> None:
    # A function neither path runs is a misreading here (or dead code): a
    # mutant of it would be n/a everywhere, and never run.
    assert rcfd_source.dead_on_both() == []
    gil_only = {f.qualname for f in rcfd_source.dead_functions["nogil"]}
    assert gil_only == {"FD.do", "FD._release", "Borrow.__enter__", "Borrow.__exit__"}


FD_SOURCE = """
    from rcfd import _nogil
    from rcfd._nogil import give


    class FD:
        if _nogil.ENABLED:
            do = _nogil.do
        else:

            def do(self):
                _nogil.shared(self)
                return self._release()

        def _release(self):
            x = 1  # only the GIL path's do() calls it

        def close(self):
            self.do()  # FD.do, not _nogil.do
            if self.owned and _nogil.ENABLED:
                give()
            elif self.owned:
                x = 2  # on the no-GIL path, owned is false here
            elif self.other:
                x = 3


    @fixture
    def _auto():
        x = 7  # a decorator registers it: an entry point
"""
NOGIL_SOURCE = """
    ENABLED = False


    def do(fd):
        shared(fd)
        return take(fd)


    def take(fd):
        x = 4


    def give():
        x = 5


    def shared(fd):
        x = 6
"""


@pytest.mark.parametrize(
    ("line", "paths"),
    [
        ("x = 1", ("gil",)),  # a private method only one path's code calls
        ("x = 2", ("gil",)),  # an elif past `if owned and ENABLED`
        ("x = 3", ("gil", "nogil")),
        ("x = 4", ("nogil",)),  # _nogil.take: only _nogil.do calls it, bound on the no-GIL path
        ("x = 5", ("nogil",)),  # imported from _nogil, called in a no-GIL branch
        ("x = 6", ("gil", "nogil")),  # _nogil.shared: called by both paths' do()
        ("x = 7", ("gil", "nogil")),
    ],
)
def test_the_reading_of_the_switch_and_of_references(
    tmp_path: Path, line: str, paths: tuple[str, ...]
) -> None:
    (tmp_path / "rcfd").mkdir()
    (tmp_path / "rcfd" / "_fd.py").write_text(textwrap.dedent(FD_SOURCE))
    (tmp_path / "rcfd" / "_nogil.py").write_text(textwrap.dedent(NOGIL_SOURCE))
    analysis = Analysis(tmp_path)
    module = "_fd" if line in FD_SOURCE else "_nogil"
    edit = Edit(f"rcfd/{module}.py", line, line.replace("x", "y"))
    assert paths_run(Mutant("m", "", (), "", (edit,), Scenario(steps=())), analysis) == paths
    assert analysis.dead_on_both() == []
