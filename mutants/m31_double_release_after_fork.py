"""After fork, a borrow of a thread that is gone is released twice."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="double-release-after-fork",
    title="the fork hook drops a vanished thread's borrow but not its Borrow: a second release",
    guarantees=(3, 11),
    explanation=(
        "fork() copies only the calling thread, so the child's FD must forget the "
        "borrows of every other thread (nobody will release them there). A generator "
        "suspended inside `with fd.borrow()` is copied too, and the child can resume "
        "it: its exit then releases the borrow of a thread that does not exist in "
        "the child, which the hook already dropped. Without marking that Borrow as "
        "dropped, the release runs a second time: array.remove raises ValueError "
        "out of the generator's close (or, had another borrow of the same thread "
        "been counted, it would remove that one's entry). rcfd's hook marks such a "
        "Borrow, and its exit releases nothing."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            'if getattr(self, "_tid", me) != me:\n    self._tid = 0\n',
            'if getattr(self, "_tid", me) != me:\n    pass  # mutant: the FD forgot it already\n',
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T2", "hold"),  # a generator entered on T2 holds a borrow
            Step("T1", "fork"),  # the child (T1 only) closes the generator, then the FD
            Step("T2", "release"),
            Step("T1", "close"),
        ),
    ),
)
