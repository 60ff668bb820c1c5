"""aclose(): close for asyncio, with real tasks and borrows in asyncio.to_thread.

What must hold (specs/ecosystem.md, "aclose"): the event loop is not blocked and
no thread is parked per close; the borrow that returns last runs close_func
and wakes the task; cancelling the task does not cancel the close, which
still happens exactly once; `timeout` raises TimeoutError and leaves the
close to the last borrow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
from typing import cast

import pytest

import rcfd
from tests.fdhelp import WAIT, HeldBorrow, eventfd, is_open, state


async def wait_until_closing(fd: rcfd.FD) -> None:
    """Yield to the loop until `fd` is CLOSING (a close task began)."""
    async with asyncio.timeout(WAIT):
        while fd.state is not rcfd.State.CLOSING:
            await asyncio.sleep(0)


def test_aclose_without_borrows_closes_at_once() -> None:
    fd, rec = eventfd()
    raw = fd.do(lambda n: n)

    async def main() -> None:
        await fd.aclose()

    asyncio.run(main())
    assert rec.calls == [raw]
    assert rec.borrows_seen == [0]
    assert state(fd) is rcfd.State.CLOSED
    assert not is_open(raw)
    with pytest.raises(rcfd.ClosedFDError):
        asyncio.run(main())


def test_last_to_thread_borrow_runs_close_and_wakes_the_task() -> None:
    fd, rec = eventfd()
    entered = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    loop_thread = threading.get_ident()

    def blocking(i: int) -> int:
        def fn(rawfd: int) -> int:
            entered[i].set()
            assert release[i].wait(WAIT)
            return os.eventfd_read(rawfd) if i == 0 else rawfd  # the number is valid

        return fd.do(fn)

    async def main() -> None:
        os.eventfd_write(fd.do(lambda n: n), 7)
        borrows = [asyncio.create_task(asyncio.to_thread(blocking, i)) for i in (0, 1)]
        for e in entered:
            assert await asyncio.to_thread(e.wait, WAIT)
        closing = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        # The loop runs while the close waits: this task keeps being scheduled.
        for _ in range(100):
            await asyncio.sleep(0)
        assert not closing.done()
        with pytest.raises(rcfd.ClosedFDError):
            fd.do(lambda n: n)  # new borrows are refused at once
        release[0].set()
        assert await borrows[0] == 7
        for _ in range(100):
            await asyncio.sleep(0)
        assert not closing.done(), "closed while a borrow still ran"
        assert rec.calls == []
        release[1].set()
        await borrows[1]
        await asyncio.wait_for(closing, WAIT)

    asyncio.run(main())
    assert len(rec.calls) == 1
    assert rec.borrows_seen == [0]
    # close_func ran in the worker thread whose borrow returned last, not in the loop.
    assert rec.threads[0] != loop_thread
    assert state(fd) is rcfd.State.CLOSED


def test_no_thread_is_parked_per_close_and_the_loop_stays_free() -> None:
    fds = [eventfd() for _ in range(20)]
    release = threading.Event()
    holding = threading.Event()

    def hold_all() -> None:
        # One thread holds a borrow of every FD: whatever threads exist beyond
        # this one and the loop's during the closes were made by aclose.
        with contextlib.ExitStack() as stack:
            for fd, _ in fds:
                stack.enter_context(fd.borrow())
            holding.set()
            assert release.wait(WAIT)

    holder = threading.Thread(target=hold_all, daemon=True)
    holder.start()
    assert holding.wait(WAIT)

    async def main() -> None:
        before = threading.active_count()
        closes = [asyncio.create_task(fd.aclose()) for fd, _ in fds]
        for fd, _ in fds:
            await wait_until_closing(fd)
        ticks = 0
        for _ in range(50):  # the loop is not blocked: it keeps running us
            await asyncio.sleep(0)
            ticks += 1
        assert ticks == 50
        assert threading.active_count() == before
        assert not any(c.done() for c in closes)
        release.set()
        await asyncio.wait_for(asyncio.gather(*closes), WAIT)
        assert threading.active_count() <= before

    asyncio.run(main())
    holder.join(WAIT)
    for fd, rec in fds:
        assert state(fd) is rcfd.State.CLOSED
        assert len(rec.calls) == 1
        assert rec.threads == [holder.ident]


def test_cancelling_the_task_does_not_cancel_the_close() -> None:
    fd, rec = eventfd()
    raw = fd.do(lambda n: n)
    held = HeldBorrow(fd)

    async def main() -> None:
        closing = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert state(fd) is rcfd.State.CLOSING
        assert rec.calls == []
        with pytest.raises(rcfd.ClosedFDError):
            fd.do(lambda n: n)

    asyncio.run(main())  # the loop is closed now; the close is not done
    assert is_open(raw)
    held.release()
    assert held.error is None  # the borrow that closed did not see the loop's end
    assert rec.calls == [raw]
    assert rec.threads == [held.thread.ident]
    assert state(fd) is rcfd.State.CLOSED
    assert not is_open(raw)


def test_timeout_raises_and_leaves_the_close_to_the_last_borrow() -> None:
    fd, rec = eventfd()
    held = HeldBorrow(fd)

    async def main() -> None:
        with pytest.raises(TimeoutError, match=r"aclose\(\) timed out"):
            await fd.aclose(timeout=0.05)

    asyncio.run(main())
    assert state(fd) is rcfd.State.CLOSING
    assert rec.calls == []
    held.release()
    assert held.error is None
    assert len(rec.calls) == 1
    assert state(fd) is rcfd.State.CLOSED


def test_infinite_timeout_is_no_timeout() -> None:
    fd, rec = eventfd()

    async def main() -> None:
        await fd.aclose(timeout=float("inf"))

    asyncio.run(main())
    assert len(rec.calls) == 1


def test_close_func_error_reaches_the_task() -> None:
    fd, rec = eventfd(error=OSError(5, "EIO on close"))
    held = HeldBorrow(fd)

    async def main() -> None:
        closing = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        await asyncio.to_thread(held.release)
        with pytest.raises(OSError, match="EIO on close"):
            await asyncio.wait_for(closing, WAIT)

    asyncio.run(main())
    assert len(rec.calls) == 1
    assert state(fd) is rcfd.State.CLOSED


def test_close_func_error_after_cancel_is_a_warning_in_the_closing_thread() -> None:
    fd, rec = eventfd(error=OSError(5, "EIO on close"))
    held = HeldBorrow(fd)

    async def main() -> None:
        closing = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing

    asyncio.run(main())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        held.release()
    assert held.error is None
    assert [w.category for w in caught] == [RuntimeWarning]
    assert "EIO on close" in str(caught[0].message)
    assert len(rec.calls) == 1


def test_a_second_closer_waits_for_the_first_then_gets_closed_error() -> None:
    fd, rec = eventfd()
    held = HeldBorrow(fd)

    async def main() -> None:
        first = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        second = asyncio.create_task(fd.aclose())
        sync_close = asyncio.create_task(asyncio.to_thread(fd.close))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not second.done()
        await asyncio.to_thread(held.release)
        await asyncio.wait_for(first, WAIT)
        for other in (second, sync_close):
            with pytest.raises(rcfd.ClosedFDError):
                await asyncio.wait_for(other, WAIT)
            # ...and close_func had finished when it was told so.
            assert rec.called.is_set()

    asyncio.run(main())
    assert len(rec.calls) == 1


def test_aclose_inside_a_borrow_of_the_loop_thread_is_refused() -> None:
    # Borrows belong to threads; all tasks of a loop share its thread, so a
    # borrow held across an await by any task makes aclose() on that loop
    # refuse, conservatively, rather than risk a task waiting for itself.
    fd, rec = eventfd()

    async def main() -> None:
        with fd.borrow():
            with pytest.raises(rcfd.CloseInsideBorrowError):
                await fd.aclose()
            assert state(fd) is rcfd.State.OPEN
        await fd.aclose()

    asyncio.run(main())
    assert len(rec.calls) == 1


def test_on_closing_error_after_the_loop_closed_does_not_reach_the_borrower() -> None:
    # on_closing raised, so the task left by exception while a borrow still
    # ran; the loop then closed. The last borrow must close quietly: it must
    # not try to wake a task on a closed loop.
    fd, rec = eventfd(on_closing=lambda rawfd: 1 / 0)
    held = HeldBorrow(fd)

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await fd.aclose()

    asyncio.run(main())
    assert state(fd) is rcfd.State.CLOSING
    held.release()
    assert held.error is None
    assert len(rec.calls) == 1
    assert state(fd) is rcfd.State.CLOSED


def test_bad_timeout_changes_nothing() -> None:
    fd, rec = eventfd()

    async def main() -> None:
        with pytest.raises(ValueError):
            await fd.aclose(timeout=-1)
        with pytest.raises(TypeError):
            await fd.aclose(timeout=cast(float, "1"))  # a str, checked at run time
        assert state(fd) is rcfd.State.OPEN

    asyncio.run(main())
    fd.close()
    assert len(rec.calls) == 1
