"""A no-GIL release recovered after an interrupt skips the close's decision."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="nogil-recovery-skips-the-decision",
    title="a no-GIL release recovered after an interrupt skips the close's decision",
    guarantees=(4, 8),
    explanation=(
        "The recovery of an interrupted no-GIL release (give_back_again) drops the "
        "borrow if the drop was not recorded, then lets the close decide. Deciding "
        "only when it dropped looks tidy: a recorded drop means the interrupted "
        "release got past it, and the decision resumes itself after an interrupt "
        "inside it. But between the drop and the decision's own handler lie check "
        "points (the lock's `with` ending, _decide starting): an "
        "interrupt there leaves the decision unmade, and if that release was the "
        "last borrow nobody else will make it. The close never runs, the FD stays "
        "CLOSING for good, and close() never returns, even with a timeout: the "
        "deadline bounds the wait for borrows, and none is left, so the closer "
        "waits for the close_func it believes running (the harness interrupts at "
        "'before-decide', the decision's first step, which only the no-GIL path has)."
    ),
    edits=(
        Edit(
            "rcfd/_nogil.py",
            "    return\ntry:\n    _decide(fd)\n",
            "    return\ntry:\n    pass  # mutant: a recorded drop was decided\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close", timeout=1.0),  # waits for T1: the holders are frozen
            Step("T1", "return", interrupt="before-decide"),  # its tombstone is recorded
        )
    ),
)
