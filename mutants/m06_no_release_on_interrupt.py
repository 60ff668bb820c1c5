"""do() releases the borrow when fn returns or raises an Exception, not a BaseException."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant
from mutants._snippets import DO_CALL_AND_RELEASE

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
            DO_CALL_AND_RELEASE,
            "try:\n"
            "    result = fn(self._rawfd)\n"
            "except Exception as exc:  # mutant: only Exceptions are cleaned up after\n"
            "    if isinstance(exc, TypeError):\n"
            '        check_callable("do", "fn", fn)\n'
            "    self._release(tid)\n"
            "    raise\n"
            "self._release(tid)\n",
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
