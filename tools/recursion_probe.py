"""Which rcfd calls leave an FD half closed when made near the recursion limit.

specs/cpython.md, "The recursion limit": a step of the close that fails with
RecursionError after it took effect fails again in its retry, at the same
depth. For each call (a close, a detach, a borrow's release that must decide
while another thread's close waits) this makes it at every depth from 20
frames below the limit up to it, then gives another thread's close(0.5) two
seconds, and prints the depths where the FD was left stuck. Exit 1 if any.

    python tools/recursion_probe.py        # on the no-GIL path: RCFD_NOGIL=1
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

import rcfd

LIMIT = 300


def _at(depth: int, call: Callable[[], object]) -> object:
    return _at(depth - 1, call) if depth > 0 else call()


def _deciding_release(fd: rcfd.FD, gate: int, wake: int) -> Callable[[], object]:
    """A borrow whose release comes after another thread's close froze the
    holders (the body makes C calls only: it runs at the limit)."""

    def body() -> None:
        with fd.borrow():
            os.write(wake, b"x")  # the closer starts (a C call)
            while not (fd._closer and fd._closer.freeze):
                pass

    def closer() -> None:
        os.read(gate, 1)
        with contextlib.suppress(TimeoutError, rcfd.ClosedFDError):
            fd.close(timeout=0.5)

    threading.Thread(target=closer, daemon=True).start()
    return body


def probe(call: str, depth: int) -> str:
    """'' if the FD closes afterwards, else what it was left as."""
    read, write = os.pipe()
    gate, wake = os.pipe()
    fd = rcfd.FD(read)
    act: Callable[[], object] = fd.close
    if call == "detach":
        act = lambda: os.close(fd.detach())  # noqa: E731
    elif call == "release that decides":
        act = _deciding_release(fd, gate, wake)  # starts its closer here, not at the limit
    with contextlib.suppress(RecursionError):
        _at(depth, act)
    os.write(wake, b"x")  # the release case's closer, if the borrow never started it
    done = threading.Event()

    def close_later() -> None:
        with contextlib.suppress(TimeoutError, rcfd.ClosedFDError):
            fd.close(timeout=0.5)
        done.set()

    threading.Thread(target=close_later, daemon=True).start()
    stuck = "" if done.wait(2) else f"stuck {fd.state.name}, a later close(0.5) waits"
    for number in (write, gate, wake):
        os.close(number)
    return stuck


def main() -> int:
    sys.setrecursionlimit(LIMIT)
    found = 0
    for call in ("close", "detach", "release that decides"):
        stuck = [d for d in range(LIMIT - 20, LIMIT) if probe(call, d)]
        found += len(stuck)
        print(f"{call}: " + (f"stuck when made at depths {stuck}" if stuck else "never stuck"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
