"""`with fd.borrow()` releases only when the block exits normally."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="no-release-on-exception-in-with",
    title="with fd.borrow() does not release the borrow when the block raises",
    guarantees=(3, 4),
    explanation=(
        "Borrow.__exit__ releases only when exc_type is None, as if __exit__ were "
        "a 'normal end' hook. A block that raises keeps its borrow forever, so the "
        "FD can never close. The same bug as no-release-on-exception, in the "
        "context-manager path, which is separate code and needs its own test."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "tid = self._tid\n",
            "if exc_type is not None:\n"
            "    return  # mutant: __exit__ as a 'normal end' hook\n"
            "tid = self._tid\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "with"),
            Step("T1", "raise"),
            Step("T2", "close", timeout=0.5),
        )
    ),
)
