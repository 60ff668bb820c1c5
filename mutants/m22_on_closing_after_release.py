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
            "rcfd/_closing.py",
            "if new.owner_borrowed and on_closing is not None:\n"
            "    woke = on_closing(fd._rawfd)\n",
            "if new.owner_borrowed and on_closing is not None:\n"
            "    new.owner_borrowed = False  # mutant: give the closer's borrow back first\n"
            "    new.released += (me,)\n"
            "    new.release(fd)\n"
            "    woke = on_closing(fd._rawfd)\n",
        ),
    ),
    scenario=Scenario(steps=(Step("T1", "close"),)),
)
