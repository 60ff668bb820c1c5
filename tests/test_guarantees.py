"""Each guarantee of specs/rcfd.md, with real threads and real descriptors."""

from __future__ import annotations

import errno
import os
import threading

import pytest

import rcfd
from tests.support import (
    WAIT,
    CountingClose,
    HeldBorrow,
    in_thread,
    open_fd,
    state_of,
    stays_blocked,
    wait_until,
)


def test_1_close_func_runs_once_and_never_under_a_borrow() -> None:
    fd, closer = open_fd()
    with HeldBorrow(fd) as borrow:
        _, closing = in_thread(fd.close)
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() began")
        assert stays_blocked(closing), "close() returned while a borrow was running"
        assert closer.calls == [], "close_func ran while a borrow was running"
    assert closing.done.wait(WAIT) and closing.error is None
    assert borrow.valid_at_end, "the descriptor was closed under the borrow"
    assert closer.calls == [borrow.rawfd]
    assert closer.borrows_seen == [0]
    assert fd.state is rcfd.State.CLOSED


def test_2_no_borrow_starts_once_close_began_and_refusal_does_not_block() -> None:
    fd, _ = open_fd()
    with HeldBorrow(fd):
        in_thread(fd.close)
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() began")
        called: list[int] = []
        _, attempt = in_thread(lambda: fd.do(called.append))
        assert attempt.done.wait(WAIT), "do() blocked during CLOSING instead of refusing"
        assert isinstance(attempt.error, rcfd.ClosedFDError)
        assert "refused in state CLOSING" in str(attempt.error)
        with pytest.raises(rcfd.ClosedFDError), fd.borrow():
            pass
        assert called == []
        assert fd.borrow_count == 1
    wait_until(lambda: fd.state is rcfd.State.CLOSED, "the close finished")


@pytest.mark.parametrize(
    "exc", [None, ValueError("fn failed"), KeyboardInterrupt(), SystemExit(3), GeneratorExit()]
)
@pytest.mark.parametrize("form", ["do", "borrow"])
def test_3_a_borrow_is_released_however_fn_exits(exc: BaseException | None, form: str) -> None:
    fd, closer = open_fd()

    def fn(rawfd: int) -> int:
        assert fd.borrow_count == 1
        if exc is not None:
            raise exc
        return rawfd

    try:
        if form == "do":
            fd.do(fn)
        else:
            with fd.borrow() as rawfd:
                fn(rawfd)
    except BaseException as raised:
        assert raised is exc
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)  # would time out if the borrow had leaked
    assert len(closer.calls) == 1


def test_4_a_stream_of_new_borrows_cannot_starve_close() -> None:
    fd, closer = open_fd()
    stop = threading.Event()
    refused = [0] * 4

    def hammer(index: int) -> None:
        while not stop.is_set():
            try:
                fd.do(lambda rawfd: os.fstat(rawfd))
            except rcfd.ClosedFDError:
                refused[index] += 1
                return

    hammers = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(4)]
    for thread in hammers:
        thread.start()
    try:
        with HeldBorrow(fd):
            _, closing = in_thread(fd.close)
            wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() began")
        assert closing.done.wait(WAIT), "close() starved by new borrows"
        assert closing.error is None
        for thread in hammers:
            thread.join(WAIT)
        assert refused == [1, 1, 1, 1], "every hammer must end by a ClosedFDError"
        assert len(closer.calls) == 1
    finally:
        stop.set()


def test_5_a_second_close_waits_for_close_func_then_raises_closed() -> None:
    fd, closer = open_fd()
    closer.release = threading.Event()
    _, first = in_thread(fd.close)
    assert closer.entered.wait(WAIT)
    assert fd.state is rcfd.State.CLOSING  # close_func is running
    finished: list[bool] = []

    def second() -> None:
        try:
            fd.close()
        finally:
            finished.append(closer.finished.is_set())

    _, other = in_thread(second)
    assert stays_blocked(other), "a second close() returned while close_func ran"
    closer.release.set()
    assert first.done.wait(WAIT) and first.error is None
    assert other.done.wait(WAIT)
    assert isinstance(other.error, rcfd.ClosedFDError)
    assert finished == [True]
    assert closer.calls and len(closer.calls) == 1


def test_5_a_second_close_gets_closed_even_when_close_func_failed() -> None:
    fd, closer = open_fd()
    closer.release = threading.Event()
    closer.error = OSError(errno.EIO, "flush failed")
    _, first = in_thread(fd.close)
    assert closer.entered.wait(WAIT)
    _, second = in_thread(fd.close)
    assert stays_blocked(second)
    closer.release.set()
    assert first.done.wait(WAIT) and second.done.wait(WAIT)
    assert first.error is closer.error
    assert isinstance(second.error, rcfd.ClosedFDError)


@pytest.mark.parametrize("call", ["close", "detach"])
def test_6_close_inside_a_borrow_raises_and_changes_nothing(call: str) -> None:
    fd, closer = open_fd()

    def fn(rawfd: int) -> None:
        with fd.borrow() as nested:  # nested borrows on one thread are fine
            assert nested == rawfd
            assert fd.borrow_count == 2
            with pytest.raises(rcfd.CloseInsideBorrowError, match="holds a borrow") as info:
                getattr(fd, call)()
            assert isinstance(info.value, RuntimeError)
            assert fd.state is rcfd.State.OPEN
            assert fd.borrow_count == 2

    fd.do(fn)
    assert closer.calls == []
    fd.close()
    assert len(closer.calls) == 1


def test_6_close_inside_a_borrow_during_closing_raises_instead_of_deadlocking() -> None:
    fd, closer = open_fd()
    began = threading.Event()
    outcome: list[BaseException] = []

    def fn(rawfd: int) -> None:
        in_thread(fd.close)
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "the other close began")
        began.set()
        try:
            fd.close()
        except BaseException as exc:
            outcome.append(exc)

    fd.do(fn)
    assert began.is_set()
    assert len(outcome) == 1 and isinstance(outcome[0], rcfd.CloseInsideBorrowError)
    wait_until(lambda: fd.state is rcfd.State.CLOSED, "the other close finished")
    assert len(closer.calls) == 1


def test_7_failing_close_func_still_closes_reaches_caller_and_counts_failed() -> None:
    registry = rcfd.LifetimeRegistry()
    fd = rcfd.FD(registry=registry)
    error = OSError(errno.EIO, "close failed")
    closer = CountingClose(error=error)
    fd.init(os.eventfd(0), closer)
    with pytest.raises(OSError) as info:
        fd.close()
    assert info.value is error
    assert fd.state is rcfd.State.CLOSED
    with pytest.raises(rcfd.ClosedFDError):
        fd.close()
    assert len(closer.calls) == 1
    stats = registry.fd_stats()
    assert (stats.closed, stats.close_failed, stats.report()) == (0, 1, "")


@pytest.mark.parametrize("timeout", [0, 0.02])
def test_8_close_timeout_leaves_closing_and_the_last_borrow_closes(timeout: float) -> None:
    registry = rcfd.LifetimeRegistry()
    fd, closer = open_fd(registry=registry)
    with HeldBorrow(fd) as borrow:
        with pytest.raises(TimeoutError, match="stays CLOSING"):
            fd.close(timeout=timeout)
        assert fd.state is rcfd.State.CLOSING
        assert closer.calls == []
        with pytest.raises(rcfd.ClosedFDError):
            fd.do(lambda rawfd: rawfd)
    assert borrow.valid_at_end
    assert closer.calls == [borrow.rawfd]
    assert state_of(fd) is rcfd.State.CLOSED
    assert registry.fd_stats().closed == 1
    assert registry.fd_stats().report() == ""


def test_8_close_timeout_with_no_borrow_closes_at_once() -> None:
    fd, closer = open_fd()
    fd.close(timeout=0)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


def test_8_timeout_waits_for_a_close_func_already_running() -> None:
    fd, closer = open_fd()
    closer.release = threading.Event()
    with HeldBorrow(fd) as borrow:
        _, closing = in_thread(lambda: fd.close(timeout=WAIT))
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "close() began")
        borrow._end.set()
        assert closer.entered.wait(WAIT)  # the last borrow runs close_func, blocked
        _, second = in_thread(lambda: fd.close(timeout=0))
        assert stays_blocked(second)
        closer.release.set()
    assert closing.done.wait(WAIT) and closing.error is None
    assert second.done.wait(WAIT) and isinstance(second.error, rcfd.ClosedFDError)
