"""The release removes its borrow under the lock but decides 'last?' outside it."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="release-decides-outside-lock",
    title="the release decides 'was I the last?' after letting go of the lock",
    guarantees=(1,),
    explanation=(
        "do()'s release removes its borrow under the lock but reads 'no borrows "
        "left and CLOSING?' after letting go of it. Two borrowers releasing at about "
        "the same time can both see an empty count and both run the close: close_func "
        "runs twice. It needs a context switch right after the locked section of the "
        "first release, which the harness makes with pause=True."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "                holders.remove(tid)\n"
            "                last = not holders and self._state is not _OPEN\n"
            "            if last:\n",
            "                holders.remove(tid)\n"
            "            last = not holders and self._state is not _OPEN  # mutant\n"
            "            if last:\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "borrow"),
            Step("T3", "close"),
            Step("T1", "return", pause=True),
            Step("T2", "return"),
            Step("T1", "resume"),
        )
    ),
)
