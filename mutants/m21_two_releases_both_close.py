"""Two releases that both find the count at zero both run the close."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="two-releases-both-close",
    title="two releases that both see zero both run the close (nobody claims it)",
    guarantees=(1,),
    explanation=(
        "No release takes a lock to count itself: in OPEN it removes its entry, after "
        "the freeze it appends a tombstone (each one atomic step), and only then does "
        "it take the lock to ask 'was that the last borrow?'. So two borrowers can "
        "both write their tombstones first and then, one after the other, both find "
        "the count at zero. rcfd has two defences: the first to see zero "
        "claims the close, and the close is marked as done before close_func is "
        "called. Without them both run close_func: a double close, whose second call "
        "may close a number the kernel has already given to someone else. It takes a "
        "preemption between one borrower's tombstone and its locked decision "
        "(pause='before-lock') while the other is still inside close_func."
    ),
    edits=(
        # Two protections, both removed: nobody claims the close, and the
        # close is not marked as done before close_func is called.
        Edit(
            "rcfd/_closing.py",
            "if self.stage is not Stage.DRAINING or fd.borrow_count:",
            "if fd.borrow_count:  # mutant: nobody claims the close: every zero runs it",
        ),
        Edit(
            "rcfd/_closing.py",
            'self.how = "closed"\ntry:\n    closed = fd._close_func(fd._rawfd)\n',
            "try:\n"
            "    closed = fd._close_func(fd._rawfd)\n"
            '    self.how = "closed"  # mutant: marked after the call\n',
        ),
    ),
    scenario=Scenario(
        close_func="pauses",
        steps=(
            Step("T1", "borrow"),
            Step("T2", "borrow"),
            Step("T3", "close"),
            Step("T1", "return", pause="before-lock"),
            Step("T2", "return"),
            Step("T1", "resume"),
            Step("-", "finish"),
        ),
    ),
)
