"""`with fd.borrow()` releases on Exception only, not on KeyboardInterrupt."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="no-release-on-interrupt-in-with",
    title="with fd.borrow() does not release on BaseException (KeyboardInterrupt)",
    guarantees=(3,),
    explanation=(
        "Borrow.__exit__ releases when the block ends normally or by an Exception, "
        "and 'forgets' BaseException: a KeyboardInterrupt inside the block leaks the "
        "borrow and every later close() hangs."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "tid = self._tid\n",
            "if exc_type is not None and not issubclass(exc_type, Exception):\n"
            "    return  # mutant: only Exceptions are cleaned up after\n"
            "tid = self._tid\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "with"),
            Step("T1", "interrupt"),
            Step("T2", "close", timeout=0.5),
        )
    ),
)
