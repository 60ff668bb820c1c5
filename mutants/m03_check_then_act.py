"""The state is checked in one locked section and the borrow counted in another."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="check-then-act",
    title="borrow checks the state, then takes the count in a second locked section",
    guarantees=(1, 2),
    explanation=(
        "do() checks 'OPEN?' under the lock, lets go of it, and takes the lock again "
        "to count the borrow: each half is atomic, the pair is not. A close that runs "
        "in the gap sees zero borrows and closes the number; the borrower then counts "
        "itself into a CLOSING (or CLOSED) FD and calls fn on a closed number. Every "
        "single-threaded test passes; only a context switch exactly between the two "
        "sections shows it, which is why the harness can preempt a thread right after "
        "a locked section (Step.pause) and why the interleaving explorer exists."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "    raise self._refusal(Event.BORROW)\nholders += (tid,)\nborrowed = True\n",
            "    raise self._refusal(Event.BORROW)\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "return fn(self._rawfd)\n",
            "with self._lock:  # mutant: the count taken in a second locked section\n"
            "    holders += (tid,)\n"
            "    borrowed = True\n"
            "return fn(self._rawfd)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow", pause="after-unlock"),
            Step("T2", "close"),
            Step("T1", "resume"),
            Step("T1", "return"),
        )
    ),
)
