"""The finalizer closes any FD whose number is set, even one already closed."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="finalizer-closes-closed-fd",
    title="the finalizer closes an FD that close() already closed",
    guarantees=(1, 9),
    explanation=(
        "The finalizer decides by 'is there a number?' (rawfd >= 0) instead of by "
        "the state, in its quick check and in its locked decision alike, and close() "
        "does not reset the number. An FD closed properly is "
        "closed a second time when it is collected, possibly seconds later, when the "
        "number belongs to some other file: the nastiest kind of double close, far "
        "from its cause."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "if self._holders is no_borrows or self._closer is not None:",
            "if self._holders is no_borrows or self._rawfd < 0:  # mutant: 'a number is set'",
        ),
        Edit(
            "rcfd/_closing.py",
            'if fd._step(Event.FINALIZE, "finalizer") is Outcome.IGNORE:',
            "if fd._rawfd < 0:  # mutant: 'a number is set, so close it'",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "close"),
            Step("-", "drop"),
        )
    ),
)
