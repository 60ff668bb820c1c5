"""An interrupted no-GIL release is taken again whether or not it was recorded."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="nogil-recorded-release-taken-again",
    title="an interrupted no-GIL release drops the borrow again, though it was dropped",
    guarantees=(1, 3),
    explanation=(
        "A release interrupted on its way (KeyboardInterrupt) must still happen, "
        "exactly once. The GIL path resumes only the close's decision, which is "
        "idempotent; its drop is one C call that either happened or not. On the "
        "no-GIL path an interrupt can land before the drop (as the lock's `with` "
        "begins) or after it (as the `with` ends, as the decision starts), so the "
        "recovery (give_back_again) drops again only if the drop's own C call did "
        "not record it. 'The release raised, so do it again' drops twice when the "
        "interrupt came after: once a close froze the holders, the second "
        "tombstone cancels another thread's running borrow, and the count reaches "
        "zero while that borrow still uses the number: close_func runs under it."
    ),
    edits=(
        Edit(
            "rcfd/_nogil.py",
            "if not done:\n    give_back(fd, holders, tid, done)\n    return\n",
            "give_back(fd, holders, tid, done)  # mutant: interrupted, so release again\n"
            "return\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "borrow"),
            Step("T3", "close"),  # waits for both: the holders are frozen
            Step("T1", "return", interrupt="before-lock"),  # tombstone written, then the interrupt
            Step("T2", "return"),
        )
    ),
)
