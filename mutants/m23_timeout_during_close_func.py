"""close(timeout) raises TimeoutError even when only close_func is left to wait for."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="timeout-during-close-func",
    title="the timeout bounds close_func too, not only the borrows",
    guarantees=(8,),
    explanation=(
        "A timed-out closer gives up even when the count had already reached zero "
        "and close_func is running in the thread of the last borrow. The caller gets "
        "TimeoutError and thinks 'borrows are stuck, the FD is still CLOSING', while "
        "in fact the close is done or about to be; it may then tear down the "
        "resource under close_func. The deadline is for borrows, not for close_func."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "duty = close_step(self.stage, CloseEvent.GIVE_UP, fd.borrow_count, timed_out, False)",
            "duty = close_step(self.stage, CloseEvent.GIVE_UP, fd.borrow_count, False, False)"
            "  # mutant: the deadline is final",
        ),
    ),
    scenario=Scenario(
        close_func="pauses",
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close", timeout=2.0),
            Step("T1", "return"),
            Step("T2", "await"),
            Step("-", "finish"),
        ),
    ),
)
