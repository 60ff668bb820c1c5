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
            "rcfd/_fd.py",
            "self._state = step(self._state, 0, 0, Event.FINISH).state\n",
            'if closer.how == "close_failed":  # mutant: a failed close "can be retried"\n'
            '    self._state, self._closer, self._holders = State.OPEN, None, array("L")\n'
            "else:\n"
            "    self._state = step(self._state, 0, 0, Event.FINISH).state\n",
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
