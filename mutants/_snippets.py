"""Snippets of rcfd/ that more than one catalog mutant replaces.

Kept here once, so that a change to that code is re-targeted in one place.
Line runs (ending in a newline) match by code only: indentation, comment
lines and trailing comments are ignored (mutants/_mutant.py).
"""

from textwrap import indent

# The release after a borrow, as each inline copy writes it (specs/rcfd.md,
# "Signals"): a remove while OPEN; once frozen, a tombstone, then the check
# that may run the close (again after an interrupt; in a new thread if the
# retry meets the recursion limit).
RELEASE = (
    "try:\n"
    "    holders.remove(tid)\n"
    "except BufferError:\n"
    "    closing = fd._closer\n"
    "    assert closing is not None\n"
    "    closing.released += (tid,)\n"
    "    try:\n"
    "        closing.release(fd)\n"
    "    except BaseException:\n"
    "        try:\n"
    "            closing.release(fd)\n"
    "        except RecursionError:\n"
    "            _start_new_thread(closing.rescue, (fd,))\n"
    "        raise\n"
)

# FD.do's copy of it: only do() names the FD `fd = self` right before it.
DO_RELEASE = "fd = self\n" + RELEASE

# FD.do's call of fn and its release: the borrow ends in a `finally`.
DO_CALL_AND_RELEASE = (
    "try:\n"
    "    result = fn(self._rawfd)\n"
    "except TypeError:\n"
    '    check_callable("do", "fn", fn)\n'
    "    raise\n"
    "finally:\n"
) + indent(DO_RELEASE, "    ")
