"""The closer gives its own borrow back before calling on_closing."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="on-closing-after-release",
    title="on_closing runs after the closer released its borrow",
    guarantees=(1,),
    explanation=(
        "The closer releases its own borrow first and calls on_closing after. With "
        "no other borrow running, that release runs close_func, so on_closing (a "
        "socket shutdown, a write to a wake-up eventfd) acts on a number that is "
        "already closed, or already reused by another open(). The closer's borrow "
        "exists precisely to keep the number valid for on_closing."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "try:\n    if on_closing is not None:\n",
            "self._release(tid)  # mutant: release first\ntry:\n    if on_closing is not None:\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "            finally:\n"
            "                self._release(tid)\n"
            "        return closer, owner\n",
            "            finally:\n                pass\n        return closer, owner\n",
        ),
    ),
    scenario=Scenario(steps=(Step("T1", "close"),)),
)
