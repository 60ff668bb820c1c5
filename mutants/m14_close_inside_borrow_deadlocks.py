"""close() inside a borrow of the same thread waits for that very borrow."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="close-inside-borrow-deadlocks",
    title="close inside a borrow deadlocks instead of raising",
    guarantees=(6,),
    explanation=(
        "The step is computed without the caller's own borrows (caller_borrows=0), "
        "so a thread that calls close() from inside fn (an error handler that 'cleans "
        "up') begins a close that waits for its own borrow: it never returns, or with "
        "a timeout fails with TimeoutError instead of the CloseInsideBorrowError that "
        "names the mistake. Go's rc deadlocks exactly like this; rcfd refuses."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "mine = self._borrows_of(me) > 0\n",
            "mine = False  # mutant: the caller's own borrows are not counted\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T1", "close", timeout=1.0),
            Step("T1", "return"),
        )
    ),
)
