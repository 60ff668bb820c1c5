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
from tests.support import loop_freed_after


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


# -- close_func's error when the task stops waiting late --------------------------


class BlockingRecorder:
    """A close_func that closes the number, then blocks until finish is set,
    then raises: close_func still runs while the test acts."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finish = threading.Event()
        self.calls: list[int] = []

    def __call__(self, rawfd: int) -> None:
        self.calls.append(rawfd)
        os.close(rawfd)
        self.started.set()
        assert self.finish.wait(WAIT)
        raise OSError(5, "EIO on close")


def test_close_func_error_after_a_cancel_while_close_func_runs_is_warned() -> None:
    # aclose's deadline strikes while close_func runs (it then waits on for
    # close_func: KEEP_WAITING), and the task is cancelled meanwhile: the task
    # leaves, and close_func's error, which nobody receives now, is warned.
    rec = BlockingRecorder()
    fd = rcfd.FD(os.eventfd(0), rec)
    held = HeldBorrow(fd)
    releasing = threading.Thread(target=held.release, daemon=True)

    async def main() -> None:
        closing = asyncio.create_task(fd.aclose(timeout=0.05))
        await wait_until_closing(fd)
        releasing.start()  # the borrow's release runs close_func, which blocks
        assert await asyncio.to_thread(rec.started.wait, WAIT)
        # The loop fires its timers in deadline order, and the task's step that
        # the 0.05 s deadline schedules runs before this sleep's end resumes
        # main: the task is waiting for close_func by then.
        await asyncio.sleep(0.2)
        assert not closing.done()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing

    asyncio.run(main())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec.finish.set()
        releasing.join(WAIT)
    assert not releasing.is_alive() and held.error is None
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [
        f"rcfd: close_func raised {OSError(5, 'EIO on close')!r} after aclose() stopped "
        f"waiting; {fd!r} is closed"
    ]
    assert len(rec.calls) == 1 and state(fd) is rcfd.State.CLOSED


def test_close_func_error_after_a_cancel_once_the_close_finished_is_not_lost() -> None:
    # No borrow: aclose runs close_func itself, which raises; the cancellation
    # comes before the task resumes to take the error. It must reach the task
    # or be warned, once.
    fd, rec = eventfd(error=OSError(5, "EIO on close"))

    async def main() -> BaseException | None:
        try:
            async with asyncio.timeout(0):
                await fd.aclose()
        except BaseException as exc:
            return exc
        return None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = asyncio.run(main())
    warned = [str(w.message) for w in caught if w.category is RuntimeWarning]
    if isinstance(error, TimeoutError):  # (an OSError too: first)
        assert len(warned) == 1 and "EIO on close" in warned[0], warned
        assert "after aclose() stopped waiting" in warned[0]
    else:
        assert isinstance(error, OSError) and error.errno == 5, repr(error)
        assert warned == []
    assert len(rec.calls) == 1 and state(fd) is rcfd.State.CLOSED


def test_a_cancellation_as_the_close_finishes_reaches_the_task() -> None:
    # On 3.11 asyncio.wait_for swallowed a cancellation that came after its
    # inner future completed (CPython gh-86296): aclose(timeout=...) returned
    # and the task's cancel() was lost.
    fd, rec = eventfd()
    held = HeldBorrow(fd)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        closing = asyncio.create_task(fd.aclose(timeout=WAIT))
        await wait_until_closing(fd)
        held.release()  # the close finished: the task's wake-up is queued
        def cancel_next_iteration() -> None:
            loop.call_soon(closing.cancel)

        loop.call_soon(cancel_next_iteration)  # two loop iterations from now
        with pytest.raises(asyncio.CancelledError):
            await closing

    asyncio.run(main())
    assert len(rec.calls) == 1 and state(fd) is rcfd.State.CLOSED


def test_a_closed_fd_keeps_no_reference_to_the_loop_of_its_aclose() -> None:
    # The FD keeps its close record for good; the record must not keep the
    # event loop (and future) of the aclose it woke.
    fd, rec = eventfd()
    held = HeldBorrow(fd)

    async def main() -> None:
        closing = asyncio.create_task(fd.aclose())
        await wait_until_closing(fd)
        await asyncio.to_thread(held.release)
        await asyncio.wait_for(closing, WAIT)

    assert loop_freed_after(main), "the CLOSED FD still holds its aclose's loop"
    assert len(rec.calls) == 1 and state(fd) is rcfd.State.CLOSED


def test_a_cancelled_task_stays_cancelled_when_close_funcs_warning_is_an_error() -> None:
    # The task is cancelled after close_func raised and before it resumed to
    # receive the error, so it leaves and reports the error itself; with
    # warnings as errors that report raises, and must not replace the task's
    # cancellation (an `except Exception:` in the task would swallow it): it
    # goes on the CancelledError as a note instead.
    fd, rec = eventfd(error=OSError(5, "EIO on close"))
    went_on: list[str] = []

    async def worker() -> None:
        try:
            await fd.aclose()
        except Exception as exc:  # what ordinary error handling in a task does
            went_on.append(repr(exc))

    async def main() -> BaseException:
        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0)  # the worker's first step ran close_func, which raised
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            return exc
        pytest.fail(f"the task was not cancelled: {went_on}")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        cancelled = asyncio.run(main())
    assert went_on == []
    notes = getattr(cancelled, "__notes__", [])
    assert any("EIO on close" in note for note in notes), notes
    assert len(rec.calls) == 1 and state(fd) is rcfd.State.CLOSED
