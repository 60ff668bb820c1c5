"""close_func raising leaves the FD OPEN, so a retry closes the number again."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="failed-close-leaves-open",
    title="close_func failing leaves the FD OPEN",
    guarantees=(7, 1),
    explanation=(
        "When close_func raises, the FD goes back to OPEN, as it was before the close "
        "(no closer, holders no longer frozen), so that the caller can 'retry'. But "
        "close(2) releases the number even when it reports an error "
        "(EINTR, EIO on NFS): the retry closes a number that may already have been "
        "handed to another open(). POSIX and Linux both say: never retry close."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            'self.error = exc\nself.how = "close_failed"\n',
            'self.error = exc\nself.how = "close_failed"\n'
            'fd._closer, fd._holders = None, array("L")  # mutant: "it can be retried"\n',
        ),
    ),
    scenario=Scenario(
        close_func="raises",
        steps=(
            Step("T1", "close"),
            Step("T1", "close"),
        ),
    ),
)
