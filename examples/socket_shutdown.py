"""One thread reads a socket; another closes it, waking the reader with shutdown().

    python3 examples/socket_shutdown.py      # from the checkout; nothing to install

The reader blocks in recv() under a borrow. Closing a descriptor that
another thread is blocked on does not wake that thread on Linux; worse, if
the number were closed under it, the kernel could hand the number to the
next open() and a retried read would consume someone else's data. Here
`on_closing` calls shutdown(SHUT_RDWR) while the number is still valid: the
blocked recv() returns b"" (end-of-file), the borrow ends, and only then
does close() close the number, once.

The FD owns the number; the socket object is kept only to call shutdown()
and close() on it (socket.socket(fileno=n) on the side would close the
number a second time when it is garbage collected).
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time

# From a checkout, any Python 3.11+ runs this without installing rcfd: the
# checkout's rcfd/ goes first on the path. (Installed, rcfd needs none of this.)
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_checkout, "rcfd", "__init__.py")):
    sys.path.insert(0, _checkout)

import rcfd  # noqa: E402


def reader(conn: rcfd.FD, sock: socket.socket, got: queue.SimpleQueue[bytes]) -> None:
    while True:
        try:
            data = conn.do(lambda _rawfd: sock.recv(4096))  # the borrow guards the number
        except rcfd.ClosedFDError:
            break  # close() began before this borrow
        if not data:
            break  # end-of-file: the peer closed, or on_closing shut us down
        got.put(data)


def main() -> int:
    mine, peer = socket.socketpair()
    conn = rcfd.FD(
        mine.fileno(),
        close_func=lambda _rawfd: mine.close(),
        on_closing=lambda _rawfd: mine.shutdown(socket.SHUT_RDWR),
    )
    got: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    t = threading.Thread(target=reader, args=(conn, mine, got))
    t.start()
    peer.sendall(b"hello ")
    peer.sendall(b"world")
    # Wait (bounded) until the reader has both messages; it then blocks in recv().
    received = b""
    while received != b"hello world":
        received += got.get(timeout=30)
    start = time.monotonic()
    conn.close(timeout=30)  # shutdown wakes the blocked recv(); then the number is closed
    elapsed = time.monotonic() - start
    t.join()
    peer.close()
    print(f"reader got {received!r}; close() took {elapsed * 1000:.1f} ms; {conn!r}")
    print("ok: the blocked reader saw end-of-file and the socket was closed once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
