"""After a close(timeout) gives up, the last borrow no longer closes the FD."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="deferred-close-lost",
    title="the close after a timeout never happens",
    guarantees=(8,),
    explanation=(
        "The last release runs the close only if a closer is still waiting ('no one "
        "to wake, nothing to do'). After close(timeout=...) gave up, nobody waits, so "
        "when the last borrow returns the FD stays CLOSING for good: the descriptor "
        "leaks, and every later close() raises or waits forever. The timeout bounds "
        "the wait, not the close: the close must still happen."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "with lock:\n    self._zero(fd, me)\n",
            "with lock:\n"
            "    if self.owner_waker is not None:  # mutant: no one to wake, nothing to do\n"
            "        self._zero(fd, me)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close", timeout=0.3),
            Step("T2", "await"),
            Step("T1", "return"),
        )
    ),
)
