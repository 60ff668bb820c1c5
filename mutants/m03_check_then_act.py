"""The borrow checks the state in one step and counts itself in another."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant


def _then_ask_the_state() -> str:
    """What the mutant adds after each release's remove: nothing freezes the
    holders, so a remove never fails, and the release asks the state instead."""
    return (
        "holders.remove(tid)\n"
        "if fd._closer is not None and fd._closer.freeze:  # mutant: the state says a close began\n"
        "    fd._closer.release(fd)\n"
    )


MUTANT = Mutant(
    name="check-then-act",
    title="the borrow reads the state, then inserts, with the holders never frozen",
    guarantees=(1, 2),
    explanation=(
        "The lock-free borrow written the obvious way: do() reads 'OPEN?', then "
        "inserts its thread into the holders, and close() relies on that check "
        "instead of freezing the holders (releases look at the state after "
        "removing their entry, as they did when the borrow took a lock). Under the "
        "GIL each step is atomic; the pair is not. A close that runs between the "
        "check and the insert sees no borrow and closes the number; the borrower "
        "then counts itself into a CLOSED FD and calls fn on a closed number. "
        "Every single-threaded test passes; only a context switch exactly between "
        "the two steps shows it, which is why the harness can preempt a borrow "
        "right before its insert (pause='before-insert') and why the interleaving "
        "explorer exists. rcfd makes the insert itself the check: after the freeze "
        "it fails."
    ),
    edits=(
        # The borrow's check, then its act (do() and Borrow.__enter__).
        Edit(
            "rcfd/_fd.py",
            "holders = self._holders\ntry:\n    holders.insert(0, tid)\n",
            "holders = self._holders\n"
            "if self.state is not State.OPEN:  # mutant: check the state, ...\n"
            '    check_callable("do", "fn", fn)\n'
            '    raise self._refused(holders, "do")\n'
            "try:\n"
            "    holders.insert(0, tid)  # mutant: ... then count, a second step\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "holders = fd._holders\ntry:\n    holders.insert(0, tid)\n",
            "holders = fd._holders\n"
            "if fd.state is not State.OPEN:  # mutant: check the state, ...\n"
            '    raise fd._refused(holders, "borrow")\n'
            "try:\n"
            "    holders.insert(0, tid)  # mutant: ... then count, a second step\n",
        ),
        # The close says CLOSING (a close record with a "freeze" that exports
        # something else) and trusts the borrows' check: the holders stay unfrozen.
        Edit(
            "rcfd/_closing.py",
            "self.freeze.extend(map(memoryview, (fd._holders,)))\n",
            'self.freeze.append(memoryview(b"CLOSING"))  # mutant: a flag, no freeze\n',
        ),
        Edit(  # _begin_alone's inline copy of the freeze
            "rcfd/_closing.py",
            "self.freeze.extend(map(memoryview, (holders,)))\n",
            'self.freeze.append(memoryview(b"CLOSING"))  # mutant: a flag, no freeze\n',
        ),
        # Unfrozen holders never refuse a remove: a release asks the state instead.
        Edit("rcfd/_fd.py", "holders.remove(tid)\n", _then_ask_the_state(), count=3),
        Edit("rcfd/_closing.py", "holders.remove(tid)\n", _then_ask_the_state()),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow", pause="before-insert"),
            Step("T2", "close"),
            Step("T1", "resume"),
            Step("T1", "return"),
        )
    ),
)
