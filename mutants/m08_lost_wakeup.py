"""The last release (do()'s inline copy of _release) forgets to run the close."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant
from mutants._snippets import DO_RELEASE

MUTANT = Mutant(
    name="lost-wakeup",
    title="the last release does not wake the waiting closer (lost wake-up)",
    guarantees=(4,),
    explanation=(
        "do() has an inlined copy of _release for speed. The copy counts the release "
        "(its tombstone, once the holders are frozen) but drops the duty that comes "
        "with RUN_CLOSE: the release that brings the "
        "count to zero in CLOSING must run close_func and wake every closer. "
        "Nobody else will: the closer sleeps until a wake-up that never comes, and "
        "the FD stays CLOSING forever. Only a borrow that is running when close() "
        "begins shows it; a close with no borrow running is unaffected."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            DO_RELEASE,
            "fd = self\n"
            "try:\n"
            "    holders.remove(tid)\n"
            "except BufferError:\n"
            "    closing = fd._closer\n"
            "    assert closing is not None\n"
            "    closing.released += (tid,)  # mutant: the hot-path release forgets RUN_CLOSE\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T1", "return"),
        )
    ),
)
