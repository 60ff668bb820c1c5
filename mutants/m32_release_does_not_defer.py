"""A release re-entered inside the FD's own locked step decides there and then."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="release-does-not-defer",
    title="a release the collector runs inside a locked step decides inside it",
    guarantees=(4, 5),
    explanation=(
        "The collector runs at any allocation, so the finalizer of a garbage "
        "generator that holds a borrow can release it in the middle of one of the "
        "FD's own locked steps, on the same thread. With a plain lock the release "
        "would wait for that step: a deadlock. The FD's lock is reentrant, so the "
        "release can simply go on, which looks like the fix; but the step it "
        "interrupts has read the state already: a second close that counted the "
        "borrows, found the close in progress and is about to join it, joins a "
        "close the release has just finished, and waits for a wake-up that was "
        "given before it registered: it never returns. rcfd's release sees that its "
        "thread owns the lock, writes its tombstone and leaves the decision to the "
        "step's caller, which makes it once it is out (Closing.settle)."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "if lock._is_owned():\n    self.deferred = True\n    return\n",
            "pass  # mutant: the lock is reentrant: decide here\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T2", "hold"),  # a generator on T2 holds a borrow
            Step("T1", "close", timeout=0.2),  # times out: the borrow runs
            Step("T1", "await"),
            Step("-", "abandon"),  # the generator is garbage: only the collector ends it
            Step("T3", "close", pause="collect-in-lock"),  # collected in its locked step
        ),
    ),
)
