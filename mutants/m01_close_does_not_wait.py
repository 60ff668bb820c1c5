"""close() calls close_func at once instead of waiting for running borrows."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="close-does-not-wait",
    title="close() does not wait for running borrows",
    guarantees=(1, 4),
    explanation=(
        "The closer, having refused new borrows, drops its own borrow and calls "
        "close_func straight away instead of leaving that to whichever release brings "
        "the count to zero. It is the most common bug in hand-written descriptor "
        "wrappers: 'refuse new users, then close' forgets the users already inside. "
        "A borrower still running reads or writes a number that is closed, and after "
        "the kernel reuses it, someone else's file; its release then runs the close "
        "a second time."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "            finally:\n"
            "                self._release(tid)\n"
            "        return closer, owner\n",
            "            finally:\n"
            "                with self._lock:\n"
            "                    self._holders.remove(tid)\n"
            "                self._run_close()\n"
            "        return closer, owner\n",
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
