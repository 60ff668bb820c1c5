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
            "on_closing = self._on_closing\nif owner and on_closing is not None:\n",
            "if owner:  # mutant: give the closer's borrow back first\n"
            "    closer.released += (tid,)\n"
            "    self._release_closing()\n"
            "on_closing = self._on_closing\n"
            "if owner and on_closing is not None:\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "finally:\n    if owner:\n        try:\n            self._holders.remove(tid)\n",
            "finally:\n"
            "    if False:  # mutant: released above\n"
            "        try:\n"
            "            self._holders.remove(tid)\n",
        ),
    ),
    scenario=Scenario(steps=(Step("T1", "close"),)),
)
