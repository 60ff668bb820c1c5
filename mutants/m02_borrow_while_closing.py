"""A borrow may start while the FD is CLOSING."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="borrow-while-closing",
    title="a borrow may start while CLOSING",
    guarantees=(2, 4),
    explanation=(
        "The borrow check refuses only UNINIT and CLOSED ('the number is still "
        "valid while CLOSING, so why not'). But a borrow that starts after close() "
        "began uses a number that is about to be closed, and a steady stream of such "
        "borrows keeps the count above zero so that close() never returns: the "
        "closer starves. Go's rc blocks such borrowers; internal/poll and rcfd "
        "refuse them at once."
    ),
    edits=(
        # The refusal is kept for UNINIT and CLOSED, so the snippet is the raise
        # alone: whatever the condition above it becomes, CLOSING gets through.
        Edit(
            "rcfd/_fd.py",
            "raise self._refusal(Event.BORROW)\n",
            "if self._state is not State.CLOSING:  # mutant: CLOSING lets borrows in\n"
            "    raise self._refusal(Event.BORROW)\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "raise fd._refusal(Event.BORROW)\n",
            "if fd._state is not State.CLOSING:  # mutant: CLOSING lets borrows in\n"
            "    raise fd._refusal(Event.BORROW)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T3", "borrow"),
            Step("T1", "return"),
            Step("T3", "return"),
        )
    ),
)
