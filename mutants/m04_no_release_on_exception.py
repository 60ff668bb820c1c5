"""do() releases the borrow after fn returns, not in a finally block."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant
from mutants._snippets import DO_CALL_AND_RELEASE

MUTANT = Mutant(
    name="no-release-on-exception",
    title="do() does not release the borrow when fn raises",
    guarantees=(3, 4),
    explanation=(
        "The release is written after the call instead of in a finally block, so an "
        "fn that raises (an EAGAIN, a parse error) leaks its borrow. The count never "
        "returns to zero: every later close() waits forever, or times out and the "
        "deferred close never happens, and the descriptor leaks."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            DO_CALL_AND_RELEASE,
            "try:\n"
            "    result = fn(self._rawfd)\n"
            "except TypeError:\n"
            '    check_callable("do", "fn", fn)\n'
            "    raise\n"
            "self._release(tid)  # mutant: after the call, not in a finally block\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T1", "raise"),
            Step("T2", "close", timeout=0.5),
        )
    ),
)
