"""A module-level list of open FDs keeps every FD alive: no finalizer ever runs."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="finalizer-never-runs",
    title="the finalizer keeps the FD alive (never runs)",
    guarantees=(9,),
    explanation=(
        "A module-level list of open FDs, added for debugging, holds a strong "
        "reference to each one: an FD the program forgot is never unreachable, so "
        "__del__ never runs, nothing warns and nothing closes the number. The leak "
        "is silent, which is the one thing the finalizer exists to prevent."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            'T = TypeVar("T")\n',
            'T = TypeVar("T")\n_LIVE: list[FD] = []  # mutant: every open FD, for debugging\n',
        ),
        Edit(
            "rcfd/_fd.py",
            "self._holders = holders\n",
            "self._holders = holders\n_LIVE.append(self)\n",
            count=2,  # init(), and FD(rawfd)'s own fresh init
        ),
    ),
    scenario=Scenario(steps=(Step("-", "drop"),)),
)
