"""An interrupted no-GIL borrow is given back whether or not it was counted."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant


def _give_back_always(fd: str, first: str = "") -> Edit:
    """The handler of an interrupted borrow, in do() (`self`) or Borrow.__enter__
    (`fd`, which first marks its Borrow not entered)."""
    return Edit(
        "rcfd/_nogil.py",
        "except BaseException:\n"
        "    if done:\n"
        f"{first and '        ' + first + chr(10)}"
        f"        give_back({fd}, holders, tid, [])\n"
        "    raise\n",
        "except BaseException:\n"
        f"{first and '    ' + first + chr(10)}"
        f"    give_back({fd}, holders, tid, [])  # mutant: interrupted, so it counted\n"
        "    raise\n",
    )


MUTANT = Mutant(
    name="nogil-unrecorded-borrow-given-back",
    title="an interrupted no-GIL borrow is given back whether or not it was counted",
    guarantees=(1, 10),
    explanation=(
        "On the GIL path an exception from the borrow's insert other than the "
        "refusal can only be an interrupt that landed as the insert returned: the "
        "borrow counted, and the handler gives it back. Ported as it is to the "
        "no-GIL path, the handler forgets that the lock's `with` is a check point "
        "of its own (from 3.14): an interrupt can land under the lock before the "
        "insert, with nothing counted. rcfd's handler gives the borrow back only if "
        "the C call that inserted also recorded it (`done`). This one gives back a "
        "borrow it never took, and what it takes instead is another borrow's: a "
        "nested borrow interrupted so removes (or, once a close froze the holders, "
        "tombstones) the entry of its own outer borrow, the count reaches zero while "
        "that borrow still runs, and the interrupted borrower itself runs close_func "
        "under it. A thread with no borrow at all gets ValueError from the remove "
        "instead of its interrupt. The mirror image of refused-borrow-leaks-count, "
        "on the path with the lock."
    ),
    edits=(_give_back_always("self"), _give_back_always("fd", "self._tid = 0")),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),  # waits for T1: the holders are frozen
            Step("T1", "borrow", interrupt="before-insert"),  # nested, in T1's fn; as the
            Step("T1", "return"),  # lock's `with` begins, nothing counted yet
        )
    ),
)
