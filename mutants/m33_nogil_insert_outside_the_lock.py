"""The no-GIL borrow checks for the freeze under the lock, and inserts after it."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="nogil-insert-outside-the-lock",
    title="the no-GIL borrow checks the freeze under the lock, then inserts outside it",
    guarantees=(1, 2),
    explanation=(
        "Without the GIL nothing makes `holders.insert` one step: the array's check "
        "of its exports and its resize can interleave with another thread's call. "
        "So the no-GIL borrow takes the FD's lock, under which a close attaches "
        "itself and freezes. Holding the lock only for the question ('has a close "
        "frozen the holders?') and inserting after letting go looks equivalent, and "
        "shorter: the insert is one C call, as on the GIL path. But that is the GIL "
        "path's reasoning, and it is exactly what a free-threaded build does not "
        "give: between the check and the insert a close can freeze the holders, count "
        "zero borrows and run close_func; the insert then races the freeze inside "
        "the array, can count the borrow after it, and fn runs on a number being "
        "closed. On a GIL build the array's own check still refuses the late insert, "
        "so the harness's seam reports the race itself: on the no-GIL path no other "
        "thread may change the holders, the tombstones or the freeze while one is "
        "inside an insert (pause='before-insert' stops it there). rcfd inserts under "
        "the lock, recorded in the same C call."
    ),
    edits=(
        Edit(
            "rcfd/_nogil.py",
            "    done.extend(map(holders.insert, _AT_FRONT, (tid,)))\n"
            "    if borrow is not None:\n"
            "        borrow._tid = tid\n",
            "    closing = fd._closer  # mutant: the lock for the check, ...\n"
            "    if closing is not None and closing.freeze:\n"
            "        raise BufferError  # a close froze the holders: refused\n"
            "    if borrow is not None:\n"
            "        borrow._tid = tid\n"
            "done.extend(map(holders.insert, _AT_FRONT, (tid,)))  # ... the insert after it\n",
        ),
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
