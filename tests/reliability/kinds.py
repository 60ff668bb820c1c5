"""Real kernel objects for the reliability tests, and how to tell two apart.

A descriptor *number* says nothing about which object it names: after a
close the kernel hands the lowest free number to the next open. `identity()`
names the object itself, so a borrow can check that its number still means
what it meant at init: (st_dev, st_ino) for pipes, memfds and sockets, each
of which gets its own inode; for an eventfd, whose inode is one anon inode
shared by all, the counter (from /proc/self/fdinfo), which `make()` sets to a
value unique in this process and nothing here changes. (Not fdinfo's
eventfd-id: the kernel hands a freed id to the next eventfd, just as it does
numbers; the control test caught that.)
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
from collections.abc import Callable

KINDS = ("pipe", "eventfd", "memfd", "socket")

_serial = itertools.count(1)


def make(kind: str) -> int:
    """A new descriptor of `kind` (only it stays open; helpers are closed)."""
    if kind == "pipe":
        r, w = os.pipe()
        os.close(w)
        return r
    if kind == "eventfd":
        # A unique counter value, so even the count tells eventfds apart.
        return os.eventfd(next(_serial), os.EFD_CLOEXEC)
    if kind == "memfd":
        return os.memfd_create("rcfd-reliability", os.MFD_CLOEXEC)
    if kind == "socket":
        a, b = socket.socketpair()
        b.close()
        return a.detach()
    raise ValueError(kind)


def _eventfd_count(fd: int) -> int | None:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("eventfd-count:"):
                return int(line.split()[1], 16)  # printed in hex
    return None


def identity(fd: int) -> tuple[object, ...]:
    """What object `fd` names now; raises OSError(EBADF) if it names none."""
    st = os.fstat(fd)
    ident: tuple[object, ...] = (st.st_dev, st.st_ino)
    # An anon inode (eventfd, bpf map) has no file type bits and is shared by
    # every object of its kind: add what tells the objects apart.
    if stat.S_IFMT(st.st_mode) == 0:
        count = _eventfd_count(fd)
        if count is not None:
            ident = (*ident, "eventfd-count", count)
    return ident


def identity_or_none(fd: int) -> tuple[object, ...] | None:
    try:
        return identity(fd)
    except OSError:
        return None


def count_open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wait_until(pred: Callable[[], bool], timeout: float) -> bool:
    """Poll `pred` until it holds or `timeout` passes; True if it held.

    For conditions no event can signal (another thread's state inside rcfd).
    """
    import threading
    import time

    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not pred():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.0005)
    return True
