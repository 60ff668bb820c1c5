"""The finalizer warns, then closes: a warning raised as an error stops the close."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="warning-before-the-close",
    title="the finalizer's ResourceWarning, raised as an error, stops its close",
    guarantees=(9,),
    explanation=(
        "The finalizer warns first, so that the message names the FD while it is "
        "still OPEN, and then closes it: two statements in a row. But warnings can "
        "be errors (`python -W error::ResourceWarning`, `filterwarnings = error` in "
        "pytest, which many projects use): then warn() raises, the close after it "
        "never runs, and the descriptor leaks, in exactly the runs meant to find "
        "leaks. CPython's socket is closed all the same. rcfd warns inside a try "
        "whose finally closes."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "try:\n"
            "    running = len(self._holders)\n"
            '    warn(f"unclosed <rcfd.FD OPEN fd={self._rawfd} borrows={running}>",\n'
            "         ResourceWarning, source=self)\n"
            "finally:\n",
            "running = len(self._holders)  # mutant: warn, then close\n"
            'warn(f"unclosed <rcfd.FD OPEN fd={self._rawfd} borrows={running}>",\n'
            "     ResourceWarning, source=self)\n"
            "if True:\n",
        ),
    ),
    scenario=Scenario(warnings="error", steps=(Step("-", "drop"),)),
)
