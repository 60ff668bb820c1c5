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
            "        try:\n"
            "            return fn(self._rawfd)\n"
            "        finally:\n"
            "            with lock:\n",
            "        result = fn(self._rawfd)\n"
            "        if True:  # mutant: the release below runs only when fn returns\n"
            "            with lock:\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "            if last:\n"
            "                self._run_close()\n"
            "\n"
            "    def borrow(self) -> Borrow:\n",
            "            if last:\n"
            "                self._run_close()\n"
            "        return result\n"
            "\n"
            "    def borrow(self) -> Borrow:\n",
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
