"""A NaN timeout is not rejected up front: close() begins, then fails."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="nan-timeout-checked-late",
    title="a bad argument is caught only after the state changed",
    guarantees=(10,),
    explanation=(
        "The timeout check tests `timeout < 0` and forgets NaN (every comparison with "
        "NaN is false). close(timeout=nan) then begins the close, and only the wait "
        "itself (Lock.acquire) rejects NaN with ValueError, after the FD is already "
        "CLOSING. The caller sees ValueError, 'a bad argument, nothing happened', and "
        "the FD is closed under it. Arguments are checked before the state."
    ),
    edits=(
        Edit(
            "rcfd/_checks.py",
            "if timeout < 0 or (isinstance(timeout, float) and math.isnan(timeout)):",
            "if timeout < 0:  # mutant: NaN passes",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close", timeout=float("nan")),
            Step("T1", "return"),
        )
    ),
)
