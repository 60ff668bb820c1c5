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
            "rcfd/_fd.py",
            "close_func_runs = not self.borrow_count\n"
            "if close_func_runs and isinstance(exc, TimeoutError):\n"
            "    return True\n",
            "# mutant: the deadline is final, even when no borrow is left\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "if closer.done:\n    if isinstance(exc, TimeoutError):\n        return True\n",
            "if closer.done:\n    pass  # mutant: the deadline is final\n",
        ),
    ),
    scenario=Scenario(
        close_func="blocks",
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close", timeout=2.0),
            Step("T1", "return"),
            Step("T2", "await"),
            Step("-", "finish"),
        ),
    ),
)
