"""do() releases its borrow only when fn returns, not when it raises."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

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
            "return fn(self._rawfd)\n",
            "try:\n"
            "    return fn(self._rawfd)\n"
            "except BaseException:\n"
            "    borrowed = False  # mutant: the release below is skipped when fn raises\n"
            "    raise\n",
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
