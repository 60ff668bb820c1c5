"""The registry counts a close whose close_func raised as a clean close."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="registry-failed-close-counts-closed",
    title="the registry counts a failed close as a success",
    guarantees=(7,),
    explanation=(
        "The release is always reported as 'closed', whatever close_func did. A test "
        "suite that checks fd_stats() then never learns that closes fail (EIO on a "
        "network filesystem, a flush that lost data): the failure is invisible in "
        "exactly the report meant to show it."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            'self.how = "close_failed"',
            'self.how = "closed"  # mutant: a close is a close',
        ),
    ),
    scenario=Scenario(close_func="raises", steps=(Step("T1", "close"),)),
)
