"""A second, concurrent close() calls close_func again after waiting."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="second-close-closes-again",
    title="a second concurrent close() calls close_func again",
    guarantees=(1,),
    explanation=(
        "The second closer waits for the first, as it should, and then closes the "
        "number 'to be sure' before reporting ClosedFDError. By then the number is "
        "closed and may already belong to another open() in another thread: closing "
        "it again closes that stranger's file. Idempotent-looking cleanup is the "
        "usual source of double closes."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "if self.owner_waker is not waker:\n"
            "    raise fd._error(Outcome.REFUSE_CLOSED, call)\n",
            "if self.owner_waker is not waker:\n"
            "    fd._close_func(fd._rawfd)  # mutant: make sure it is closed\n"
            "    raise fd._error(Outcome.REFUSE_CLOSED, call)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T3", "close"),
            Step("T1", "return"),
        )
    ),
)
