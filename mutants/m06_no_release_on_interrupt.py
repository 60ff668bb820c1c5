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
            "        try:\n"
            "            return fn(self._rawfd)\n"
            "        finally:\n"
            "            with lock:\n",
            "        try:\n"
            "            result = fn(self._rawfd)\n"
            "        except Exception:\n"
            "            self._release(tid)\n"
            "            raise\n"
            "        if True:  # mutant: released on return or Exception only\n"
            "            with lock:\n",
        ),
        Edit(
            "rcfd/_fd.py",
            "            if last:\n"
            "                self._run_close()\n"
            "\n"
            "    def borrow(self) -> Borrow:\n",
            "            if last:\n"
            "                self._run_close()\n"
            "        return result\n"
            "\n"
            "    def borrow(self) -> Borrow:\n",
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
