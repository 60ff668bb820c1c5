"""An asyncio program that closes a shared descriptor with `await fd.aclose()`.

    python3 examples/asyncio_aclose.py      # from the checkout; nothing to install

Reader tasks block in eventfd reads, each in a worker thread through
asyncio.to_thread and under a borrow; one more task holds a borrow for a
job that may finish only after the event loop has run 20 heartbeats while
the close is waiting. The main task awaits aclose(): the loop keeps running
(were it blocked, the job could never finish and the close would time
out), no thread is parked for the close, on_closing wakes the blocked
readers, and the borrow that returns last closes the eventfd and wakes the
awaiting task. The run is inside rcfd.track_lifetimes(), which then
confirms that nothing leaked.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

# From a checkout, any Python 3.11+ runs this without installing rcfd: the
# checkout's rcfd/ goes first on the path. (Installed, rcfd needs none of this.)
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_checkout, "rcfd", "__init__.py")):
    sys.path.insert(0, _checkout)

import rcfd  # noqa: E402

READERS = 3
WORK = 5  # counts written before the close; each read takes one
BEATS = 20  # heartbeats the loop must run while aclose() waits


async def reader(counter: rcfd.FD, name: str, log: list[str], fed: asyncio.Event) -> None:
    while True:
        try:
            # A semaphore eventfd read blocks until the count is positive.
            value = await asyncio.to_thread(counter.do, os.eventfd_read)
        except rcfd.ClosedFDError:
            log.append(f"{name}: closed, stopping")
            return
        log.append(f"{name}: read {value}")
        if sum(line.endswith("read 1") for line in log) == WORK:
            fed.set()


async def slow_job(counter: rcfd.FD, may_finish: threading.Event, started: asyncio.Event) -> None:
    def job(efd: int) -> None:
        loop.call_soon_threadsafe(started.set)
        if not may_finish.wait(30):
            raise TimeoutError("the event loop never ran the heartbeats")

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(counter.do, job)


async def heartbeat(counter: rcfd.FD, may_finish: threading.Event) -> int:
    """Count loop iterations while the close waits; let the job end after BEATS."""
    beats = 0
    while counter.state is not rcfd.State.CLOSED:
        if counter.state is rcfd.State.CLOSING:
            beats += 1
            if beats == BEATS:
                may_finish.set()
        await asyncio.sleep(0)
    return beats


async def main() -> int:
    # EFD_SEMAPHORE: each read takes 1, so on_closing's write of READERS wakes every reader.
    counter = rcfd.FD(
        os.eventfd(0, os.EFD_SEMAPHORE),
        os.close,
        on_closing=lambda efd: os.eventfd_write(efd, READERS),
    )
    log: list[str] = []
    fed = asyncio.Event()
    readers = [
        asyncio.create_task(reader(counter, f"reader{i}", log, fed)) for i in range(READERS)
    ]
    counter.do(lambda efd: os.eventfd_write(efd, WORK))  # some work for them
    await asyncio.wait_for(fed.wait(), 30)  # all taken; the readers block again

    may_finish, job_started = threading.Event(), asyncio.Event()
    job = asyncio.create_task(slow_job(counter, may_finish, job_started))
    await asyncio.wait_for(job_started.wait(), 30)  # its borrow is running
    beat = asyncio.create_task(heartbeat(counter, may_finish))
    await counter.aclose(timeout=30)  # the loop is free while this waits
    await asyncio.gather(*readers, job)
    beats = await beat
    print("\n".join(log))
    print(f"the loop ran {beats} heartbeats while aclose() waited; {counter!r}")
    stopped = sum(line.endswith("closed, stopping") for line in log)
    return 0 if stopped == READERS and beats >= BEATS else 1


if __name__ == "__main__":
    with rcfd.track_lifetimes() as registry:
        status = asyncio.run(main())
    report = registry.fd_stats().report()
    print(report or "ok: no descriptor leaked")
    sys.exit(status if not report else 1)
