"""Every release in CLOSING wakes the closer, not only the last one."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="wake-on-every-release",
    title="the closer is woken before the count reaches zero",
    guarantees=(4, 5),
    explanation=(
        "A release in CLOSING that is not the last one still wakes the closer "
        "(the classic 'notify on every decrement' written as if the waiter rechecks "
        "its condition, when this one does not). With two borrows running, the "
        "first to return wakes close(), which returns while the other borrow still "
        "uses the number and before close_func has even run."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "with lock:\n    self._zero(fd, me)\nif self.claimer != me:\n    return\n",
            "with lock:\n"
            "    self._zero(fd, me)\n"
            "if self.claimer != me:\n"
            "    if self.wakers:\n"
            "        self.wakers.pop(0)()  # mutant: wake the closer on any release\n"
            "    return\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "borrow"),
            Step("T3", "close"),
            Step("T1", "return"),
            Step("T2", "return"),
        )
    ),
)
