"""The finalizer closes any FD whose number is set, even one already closed."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="finalizer-closes-closed-fd",
    title="the finalizer closes an FD that close() already closed",
    guarantees=(1, 9),
    explanation=(
        "__del__ decides by 'is there a number?' (rawfd >= 0) instead of by the "
        "state, and close() does not reset the number. An FD closed properly is "
        "closed a second time when it is collected, possibly seconds later, when the "
        "number belongs to some other file: the nastiest kind of double close, far "
        "from its cause."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "transition = step(state, running, 0, _finalize)",
            "transition = step(  # mutant: 'a number is set, so close it'\n"
            "            _OPEN if self._rawfd >= 0 else state,\n"
            "            running, 0, _finalize,\n"
            "        )",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "close"),
            Step("-", "drop"),
        )
    ),
)
