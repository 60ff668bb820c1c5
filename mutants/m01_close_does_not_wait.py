"""close() calls close_func at once instead of waiting for running borrows."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="close-does-not-wait",
    title="close() does not wait for running borrows",
    guarantees=(1, 4),
    explanation=(
        "The release that may run the close no longer asks whether the count reached "
        "zero, only whether a close has begun. The closer's own borrow is released "
        "right after on_closing, so close() calls close_func straight away: 'refuse "
        "new users, then close' forgets the users already inside. It is the most "
        "common bug in hand-written descriptor wrappers. A borrower still running "
        "reads or writes a number that is closed and, once the kernel reuses it, "
        "someone else's file."
    ),
    edits=(
        # The release that follows on_closing is the closer's own: with the
        # count test gone, its zero check claims the close whatever else runs.
        Edit(
            "rcfd/_closing.py",
            "if self.stage is not Stage.DRAINING or fd.borrow_count:",
            "if self.stage is not Stage.DRAINING:  # mutant: do not wait for zero borrows",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T1", "return"),
        )
    ),
)
