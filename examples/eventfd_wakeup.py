"""An eventfd as a cross-thread wake-up, and how it is shut down.

    python3 examples/eventfd_wakeup.py      # from the checkout; nothing to install

A consumer thread sleeps in poll(2) on an eventfd, under a borrow, until a
producer signals that work is queued. Producers write to the eventfd under
borrows of their own. To stop, the main thread calls close(): `on_closing`
writes to the eventfd once more, so the consumer's poll() returns at once,
and its next borrow is refused with ClosedFDError, which is its signal to
stop. No thread ever writes to, reads or polls the number after it was
closed, so none can touch a file that the kernel gave the number to next.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading

# From a checkout, any Python 3.11+ runs this without installing rcfd: the
# checkout's rcfd/ goes first on the path. (Installed, rcfd needs none of this.)
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_checkout, "rcfd", "__init__.py")):
    sys.path.insert(0, _checkout)

import rcfd  # noqa: E402

ITEMS = 1000
PRODUCERS = 3


def wait_for_wakeup(efd: int) -> int:
    """Block until the eventfd is readable, then take its count (one borrow)."""
    poller = select.poll()
    poller.register(efd, select.POLLIN)
    poller.poll()  # no timeout: only a write (a producer's, or on_closing's) ends it
    return os.eventfd_read(efd)


def consumer(wakeup: rcfd.FD, work: queue.SimpleQueue[int], done: list[int]) -> None:
    while True:
        try:
            wakeup.do(wait_for_wakeup)
        except rcfd.ClosedFDError:
            break  # close() began: nobody will signal any more
        while True:
            try:
                done.append(work.get_nowait())
            except queue.Empty:
                break
    # Drain what was queued before the close.
    while not work.empty():
        done.append(work.get_nowait())


def producer(wakeup: rcfd.FD, work: queue.SimpleQueue[int], first: int) -> None:
    for item in range(first, ITEMS, PRODUCERS):
        work.put(item)
        wakeup.do(lambda efd: os.eventfd_write(efd, 1))


def main() -> int:
    # on_closing runs once, when close() begins, while the number is still valid.
    wakeup = rcfd.FD(os.eventfd(0), os.close, on_closing=lambda efd: os.eventfd_write(efd, 1))
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    done: list[int] = []
    cons = threading.Thread(target=consumer, args=(wakeup, work, done))
    cons.start()
    producers = [
        threading.Thread(target=producer, args=(wakeup, work, i)) for i in range(PRODUCERS)
    ]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    # The consumer may be asleep in poll() under a borrow right now: close()
    # wakes it through on_closing, waits for that borrow, then closes once.
    wakeup.close(timeout=30)
    cons.join()
    print(f"consumed {len(done)} of {ITEMS} items; {wakeup!r}")
    if sorted(done) != list(range(ITEMS)):
        print("lost or duplicated work", file=sys.stderr)
        return 1
    print("ok: the consumer was woken by on_closing and stopped at its next borrow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
