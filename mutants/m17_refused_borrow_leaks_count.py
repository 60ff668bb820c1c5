"""A refused borrow gives back a borrow it never took: its tombstone cancels another's."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="refused-borrow-leaks-count",
    title="a rejected borrow changes the count on its way out",
    guarantees=(10, 1),
    explanation=(
        "do()'s refusal path copies the clean-up of the handler right below it "
        "('an interrupt as insert returned: the borrow is counted, give it back') "
        "and gives back a borrow the way a release after the freeze does: a "
        "tombstone, then the RUN_CLOSE check. But a frozen array refuses before it "
        "changes: the refused insert never counted, so its tombstone cancels "
        "another thread's running borrow. The count reaches zero while that borrow "
        "still runs, and the refused borrower itself runs close_func under it, then "
        "raises ClosedFDError as if nothing had happened. The mirror image of the "
        "'optimistic increment' that a locked borrow forgets to undo: either way a "
        "call that was refused moved the count."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "except BufferError:\n"
            '    check_callable("do", "fn", fn)\n'
            '    raise self._refused(holders, "do") from None\n',
            "except BufferError:\n"
            '    check_callable("do", "fn", fn)\n'
            "    closing = self._closer\n"
            "    if closing is not None:  # mutant: give back the borrow (none was taken)\n"
            "        closing.released += (tid,)\n"
            "        closing.release(self)\n"
            '    raise self._refused(holders, "do") from None\n',
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T3", "borrow"),
            Step("T1", "return"),
        )
    ),
)
