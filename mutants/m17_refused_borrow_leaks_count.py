"""A refused borrow has already counted itself."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="refused-borrow-leaks-count",
    title="a rejected borrow changes the count on its way out",
    guarantees=(10, 4),
    explanation=(
        "do() counts the borrow before it raises the refusal (an 'optimistic "
        "increment'), and the refusal path forgets to undo the increment. A borrow "
        "refused while CLOSING leaves a phantom borrow behind, so the count never "
        "reaches zero and the close never finishes: one rejected call hangs every "
        "closer."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "raise self._refusal(Event.BORROW)\n",
            "holders += (tid,)  # mutant: counted before the refusal, never undone\n"
            "raise self._refusal(Event.BORROW)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T3", "borrow"),
            Step("T1", "return"),
        )
    ),
)
