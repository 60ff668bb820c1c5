"""do() releases on return and on Exception, but not on KeyboardInterrupt."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="no-release-on-interrupt",
    title="a borrow is not released on BaseException (KeyboardInterrupt)",
    guarantees=(3,),
    explanation=(
        "The release is in an `except Exception:` handler plus the normal path, "
        "which looks complete but misses BaseException: KeyboardInterrupt (Ctrl-C "
        "while a thread is inside fn), SystemExit, GeneratorExit. The borrow leaks, "
        "and the program's own shutdown path then hangs in close()."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "return fn(self._rawfd)\n",
            "try:\n"
            "    return fn(self._rawfd)\n"
            "except BaseException as exc:\n"
            "    if not isinstance(exc, Exception):\n"
            "        borrowed = False  # mutant: only Exceptions are cleaned up after\n"
            "    raise\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T1", "interrupt"),
            Step("T2", "close", timeout=0.5),
        )
    ),
)
