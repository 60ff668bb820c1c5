"""Two releases that both find the count at zero both run the close."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="two-releases-both-close",
    title="two releases that both see zero both run the close (nobody claims it)",
    guarantees=(1,),
    explanation=(
        "A release in OPEN takes no lock (removing its entry is atomic); only past "
        "OPEN does it take the lock to ask 'was that the last borrow?'. So two "
        "borrowers can both remove their entries first and then, one after the other, "
        "both find the count at zero. Unless the first one claims the close, both "
        "run close_func: a double close, whose second call may close a number the "
        "kernel has already given to someone else. It takes a preemption between "
        "one borrower's removal and its locked decision, which the harness makes "
        "with pause='before-lock'."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "and not closer.claimed",
            "",  # mutant: whoever sees zero runs the close
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "borrow"),
            Step("T3", "close"),
            Step("T1", "return", pause="before-lock"),
            Step("T2", "return"),
            Step("T1", "resume"),
        )
    ),
)
