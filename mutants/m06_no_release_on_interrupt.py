"""do() releases the borrow when fn returns or raises an Exception, not a BaseException."""

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
            "try:\n"
            "    return fn(self._rawfd)\n"
            "except TypeError:\n"
            '    _check_callable("do", "fn", fn)\n'
            "    raise\n"
            "finally:\n"
            "    try:\n"
            "        holders.remove(tid)\n"
            "    except BufferError:\n"
            "        closer = self._closer\n"
            "        assert closer is not None\n"
            "        closer.released += (tid,)\n"
            "        try:\n"
            "            self._release_closing()\n"
            "        except BaseException:\n"
            "            self._release_closing()\n"
            "            raise\n",
            "try:\n"
            "    result = fn(self._rawfd)\n"
            "except Exception as exc:  # mutant: only Exceptions are cleaned up after\n"
            "    if isinstance(exc, TypeError):\n"
            '        _check_callable("do", "fn", fn)\n'
            "    self._release(tid)\n"
            "    raise\n"
            "self._release(tid)\n"
            "return result\n",
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
