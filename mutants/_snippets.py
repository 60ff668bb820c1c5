"""Snippets of rcfd/_fd.py that more than one catalog mutant replaces.

Kept here once, so that a change to that code is re-targeted in one place.
"""

from textwrap import indent

# FD.do's release, from the body of its `try`: a remove in OPEN; after the
# freeze, a tombstone, then maybe the close.
DO_RELEASE = (
    "    holders.remove(tid)\n"
    "except BufferError:\n"
    "    closer = self._closer\n"
    "    assert closer is not None\n"
    "    closer.released += (tid,)\n"
    "    try:\n"
    "        self._release_closing()\n"
    "    except BaseException:\n"
    "        self._release_closing()\n"
    "        raise\n"
)

# FD.do's call of fn and its release: the borrow ends in a `finally`.
DO_CALL_AND_RELEASE = (
    "try:\n"
    "    return fn(self._rawfd)\n"
    "except TypeError:\n"
    '    _check_callable("do", "fn", fn)\n'
    "    raise\n"
    "finally:\n"
    "    try:\n"
) + indent(DO_RELEASE, "    ")
