"""A close() that finds the FD CLOSING raises at once instead of waiting."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="second-close-returns-early",
    title="a second concurrent close() returns before close_func finished",
    guarantees=(5,),
    explanation=(
        "A close() that finds another close under way raises ClosedFDError at once "
        "('it is being closed, not my business'). The caller then believes the number "
        "is gone and, say, unlinks the file or reuses the resource, while close_func "
        "is still running in another thread (a flush, a final write). Go's rc makes "
        "the second closer wait, and so does rcfd: when any close() returns, "
        "close_func has finished."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "current.wakers.append(waker)\n",
            "waker()  # mutant: CLOSING is as good as CLOSED: do not wait\n",
        ),
    ),
    scenario=Scenario(
        close_func="pauses",
        steps=(
            Step("T1", "close"),
            Step("T2", "close"),
            Step("-", "finish"),
        ),
    ),
)
