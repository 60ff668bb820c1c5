"""do() releases the borrow after fn returns, not in a finally block."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="no-release-on-exception",
    title="do() does not release the borrow when fn raises",
    guarantees=(3, 4),
    explanation=(
        "The release is written after the call instead of in a finally block, so an "
        "fn that raises (an EAGAIN, a parse error) leaks its borrow. The count never "
        "returns to zero: every later close() waits forever, or times out and the "
        "deferred close never happens, and the descriptor leaks."
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
            "except TypeError:\n"
            '    _check_callable("do", "fn", fn)\n'
            "    raise\n"
            "self._release(tid)  # mutant: after the call, not in a finally block\n"
            "return result\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T1", "raise"),
            Step("T2", "close", timeout=0.5),
        )
    ),
)
