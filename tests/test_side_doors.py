"""The FD reached from the side: by its own callbacks, by the garbage
collector, by the warnings machinery, by copying and pickling, by weak
references (issue 12, items 1-10; specs/rcfd.md says what each must do).

Each test drives the public API only. Every wait is bounded: a close that
waits for itself runs in a daemon thread, so a regression fails the test
instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import os
import pickle
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TextIO

import pytest

import rcfd
from rcfd import _fd, _nogil
from rcfd._closing import Closing
from tests.support import (
    WAIT,
    CountingClose,
    HeldBorrow,
    Outcome,
    in_thread,
    open_fd,
    wait_until,
)

# -- 1. close_func calls back into its own FD ---------------------------------


class Seen:
    """What a Reentrant close_func saw; kept apart from it, so that a test can
    hold this without holding the FD. `fd` is set by close_func: an FD that
    the finalizer closes is reachable again from here."""

    def __init__(self) -> None:
        self.fd: rcfd.FD | None = None
        self.raised: list[BaseException] = []
        self.states: list[rcfd.State] = []
        self.counts: list[int] = []
        self.calls = 0


class Reentrant:
    """A close_func that calls `call(fd)` on its own FD, records what that
    raised, then closes the number."""

    def __init__(self, call: Callable[[rcfd.FD], object], seen: Seen | None = None) -> None:
        self.call = call
        self.fd: rcfd.FD | None = None
        self.seen = Seen() if seen is None else seen

    def __call__(self, rawfd: int) -> None:
        seen = self.seen
        seen.calls += 1
        fd = self.fd
        assert fd is not None
        seen.fd = fd
        seen.states.append(fd.state)
        try:
            self.call(fd)
        except BaseException as exc:
            seen.raised.append(exc)
        seen.states.append(fd.state)
        seen.counts.append(fd.borrow_count)
        os.close(rawfd)


def _run_aclose(fd: rcfd.FD) -> None:
    asyncio.run(fd.aclose(timeout=1))


def _enter_fd(fd: rcfd.FD) -> None:
    with fd:
        pass


CLOSING_CALLS: dict[str, Callable[[rcfd.FD], object]] = {
    "close": lambda fd: fd.close(),
    "close(timeout=1)": lambda fd: fd.close(timeout=1),
    "detach": lambda fd: fd.detach(),
    "aclose": _run_aclose,
    "with-exit": _enter_fd,
}


@pytest.mark.parametrize("inner", CLOSING_CALLS)
@pytest.mark.parametrize("runner", ["the closer", "the last release"])
def test_a_close_from_inside_close_func_is_refused_at_once(runner: str, inner: str) -> None:
    reentrant = Reentrant(CLOSING_CALLS[inner])
    fd = rcfd.FD(os.eventfd(0), reentrant)
    reentrant.fd = fd

    def last_release() -> None:
        # close(timeout=0) gives up on the running borrow; its release, in
        # this thread, then runs close_func.
        with fd.borrow():
            _, first = in_thread(lambda: fd.close(timeout=0))
            assert first.done.wait(WAIT)
            assert isinstance(first.error, TimeoutError)

    thread, outcome = in_thread(fd.close if runner == "the closer" else last_release)
    assert outcome.done.wait(WAIT), f"the outer close never finished: {inner} waited for itself"
    thread.join(WAIT)
    assert outcome.error is None
    assert reentrant.seen.calls == 1
    assert len(reentrant.seen.raised) == 1
    error = reentrant.seen.raised[0]
    assert isinstance(error, rcfd.CloseInsideCloseFuncError), repr(error)
    assert isinstance(error, RuntimeError)
    assert "close_func" in str(error)
    # The refusal changed nothing: still CLOSING, no borrow, and the outer
    # close then finished normally.
    assert reentrant.seen.states == [rcfd.State.CLOSING, rcfd.State.CLOSING]
    assert reentrant.seen.counts == [0]
    assert fd.state is rcfd.State.CLOSED


def _borrow_a_block(fd: rcfd.FD) -> None:
    with fd.borrow():
        pass


# What a callback calls on its own FD, by name.
CALLS_BACK: dict[str, Callable[[rcfd.FD], object]] = {
    "do": lambda fd: fd.do(lambda rawfd: rawfd),
    "borrow": _borrow_a_block,
    "dup": lambda fd: fd.dup(),
    "init": lambda fd: fd.init(0),
    "track_lifetime": lambda fd: fd.track_lifetime(rcfd.LifetimeRegistry()),
    "close": lambda fd: fd.close(timeout=1),
    "detach": lambda fd: fd.detach(),
}


@pytest.mark.parametrize(
    "call, error",
    [
        ("do", rcfd.ClosedFDError),
        ("borrow", rcfd.ClosedFDError),
        ("dup", rcfd.ClosedFDError),
        ("init", rcfd.ClosedFDError),
        ("track_lifetime", rcfd.MultipleInitError),
    ],
)
def test_other_calls_from_inside_close_func_are_refused(
    call: str, error: type[BaseException]
) -> None:
    reentrant = Reentrant(CALLS_BACK[call])
    fd = rcfd.FD(os.eventfd(0), reentrant)
    reentrant.fd = fd
    fd.close()
    assert [type(e) for e in reentrant.seen.raised] == [error]
    assert reentrant.seen.counts == [0]
    assert fd.state is rcfd.State.CLOSED


# -- 2, 3. the finalizer's close_func reaches its FD --------------------------

def _drop_open_fd(call: Callable[[rcfd.FD], object], seen: Seen) -> None:
    """An OPEN FD in a cycle with its close_func, unreachable on return."""
    close_func = Reentrant(call, seen)
    fd = rcfd.FD(os.eventfd(0), close_func)
    close_func.fd = fd


@pytest.mark.parametrize(
    "inner, error",
    [
        ("do", rcfd.ClosedFDError),
        ("borrow", rcfd.ClosedFDError),
        ("close", rcfd.CloseInsideCloseFuncError),
        ("detach", rcfd.CloseInsideCloseFuncError),
    ],
)
def test_the_finalizers_close_refuses_borrows_and_closes(
    inner: str, error: type[BaseException]
) -> None:
    seen = Seen()
    _drop_open_fd(CALLS_BACK[inner], seen)
    with pytest.warns(ResourceWarning, match="unclosed"):
        gc.collect()
    assert seen.calls == 1
    assert [type(e) for e in seen.raised] == [error]
    assert seen.states == [rcfd.State.CLOSING, rcfd.State.CLOSING]
    assert seen.counts == [0]
    fd = seen.fd  # reachable again: it refuses everything, and stays closed
    assert fd is not None
    assert fd.state is rcfd.State.CLOSED
    assert fd.borrow_count == 0
    with pytest.raises(rcfd.ClosedFDError):
        fd.do(lambda rawfd: rawfd)
    with pytest.raises(rcfd.ClosedFDError), fd.borrow():
        pass
    with pytest.raises(rcfd.ClosedFDError):
        fd.close()
    assert fd.borrow_count == 0
    assert seen.calls == 1


# -- 4. a borrow held by garbage ----------------------------------------------


class KeepingFD(rcfd.FD):
    """An FD that can keep an extra reference (to build cycles in tests)."""

    __slots__ = ("keep",)
    keep: Generator[int, None, None] | None


def test_a_cycle_with_a_suspended_borrower_is_closed_once_with_a_warning() -> None:
    for _ in range(20):  # both finalization orders occur; each must close once
        closer = CountingClose()
        fd = KeepingFD(os.eventfd(0), closer)
        gen_holder(fd)
        del fd
        with pytest.warns(ResourceWarning, match="unclosed"):
            gc.collect()
        assert len(closer.calls) == 1, "the descriptor leaked (or was closed twice)"
        assert closer.borrows_seen == []  # no FD reference was given to it


def gen_holder(fd: KeepingFD) -> Generator[int, None, None]:
    """A suspended generator holds a borrow of `fd`, and `fd` holds the
    generator: a cycle that nothing else reaches once the caller lets go."""

    def holder() -> Generator[int, None, None]:
        with fd.borrow() as rawfd:
            yield rawfd

    gen = holder()
    next(gen)
    fd.keep = gen
    return gen


@pytest.mark.parametrize("order", ["fd-first", "generator-first"])
def test_a_garbage_borrower_in_either_order(order: str) -> None:
    """Both orders in which the collector may finalize the cycle, made
    deterministic by calling the two finalizers by hand."""
    closer = CountingClose()
    fd = KeepingFD(os.eventfd(0), closer)
    closer.fd = fd
    gen = gen_holder(fd)
    assert fd.borrow_count == 1
    borrows = 1 if order == "fd-first" else 0
    with pytest.warns(ResourceWarning, match=rf"unclosed <rcfd\.FD OPEN fd=\d+ borrows={borrows}>"):
        if order == "fd-first":
            fd.__del__()
            assert fd.state is rcfd.State.CLOSING  # begun: borrows refused
            with pytest.raises(rcfd.ClosedFDError):
                fd.do(lambda rawfd: rawfd)
            assert closer.calls == []  # not under the running borrow
            gen.close()  # its release is the last: it closes
        else:
            gen.close()
            fd.__del__()
    assert len(closer.calls) == 1
    assert closer.borrows_seen == [0]
    assert fd.state is rcfd.State.CLOSED
    fd.keep = None


def test_a_finalizer_begun_close_counts_as_finalized() -> None:
    registry = rcfd.LifetimeRegistry()
    closer = CountingClose()
    fd = KeepingFD(os.eventfd(0), closer, registry=registry)
    gen = gen_holder(fd)
    with pytest.warns(ResourceWarning):
        fd.__del__()
    gen.close()
    fd.keep = None
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed, stats.finalized) == (1, 0, 1)
    assert "never closed" in stats.report()


# -- 5. warnings turned into errors --------------------------------------------


@contextmanager
def unraisable() -> Generator[list[Any], None, None]:
    """Collect what the interpreter reports as unraisable (sys.UnraisableHookArgs)."""
    seen: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = old


@pytest.mark.parametrize("borrowed_by_garbage", [False, True])
def test_the_finalizer_closes_even_when_its_warning_raises(borrowed_by_garbage: bool) -> None:
    closer = CountingClose()
    with warnings.catch_warnings(), unraisable() as seen:
        warnings.simplefilter("error", ResourceWarning)
        fd = KeepingFD(os.eventfd(0), closer)
        if borrowed_by_garbage:
            gen_holder(fd)
        del fd
        gc.collect()
    assert len(closer.calls) == 1, "the warning, raised as an error, stopped the close"
    assert [type(s.exc_value) for s in seen] == [ResourceWarning]


def test_close_func_error_in_the_finalizer_is_warned_and_counted_finalized() -> None:
    registry = rcfd.LifetimeRegistry()
    closer = CountingClose(error=OSError(5, "EIO"))
    fd = rcfd.FD(os.eventfd(0), closer, registry=registry)
    with (
        pytest.warns(RuntimeWarning, match="close_func raised .* in the finalizer"),
        pytest.warns(ResourceWarning),
    ):
        del fd
    assert len(closer.calls) == 1
    stats = registry.fd_stats()
    assert (stats.finalized, stats.close_failed, stats.closed) == (1, 0, 0)


# -- 6. arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: rcfd.FD(None, 123),  # type: ignore[arg-type]
        lambda: rcfd.FD(close_func=123),  # type: ignore[arg-type]
        lambda: rcfd.FD(3, 123),  # type: ignore[arg-type]
    ],
)
def test_a_non_callable_close_func_is_a_type_error_in_every_form(
    make: Callable[[], rcfd.FD],
) -> None:
    with pytest.raises(TypeError, match="close_func must be callable, not int"):
        make()


def test_a_close_func_without_a_rawfd_is_refused() -> None:
    with pytest.raises(TypeError, match=r"close_func needs a rawfd; pass it to init\(\)"):
        rcfd.FD(close_func=lambda rawfd: None)


# -- 7. huge timeouts -------------------------------------------------------------


@pytest.mark.parametrize("timeout", [10**400, float("inf"), 2**64])
def test_a_timeout_beyond_timeout_max_means_no_deadline(timeout: float) -> None:
    fd, closer = open_fd()
    fd.close(timeout=timeout)
    assert len(closer.calls) == 1
    fd, closer = open_fd()
    asyncio.run(fd.aclose(timeout=timeout))
    assert len(closer.calls) == 1


@pytest.mark.parametrize("timeout", [-(10**400), -1])
def test_a_negative_huge_timeout_is_a_value_error(timeout: int) -> None:
    fd, _ = open_fd()
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        fd.close(timeout=timeout)
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        asyncio.run(fd.aclose(timeout=timeout))
    assert fd.state is rcfd.State.OPEN
    fd.close()


# -- 8. copies and pickles ----------------------------------------------------------


def _fds() -> Iterator[tuple[str, rcfd.FD]]:
    yield "uninit", rcfd.FD()
    fd, _ = open_fd()
    yield "open", fd
    fd.close()
    yield "closed", fd


COPIERS: dict[str, Callable[[object], object]] = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": pickle.dumps,
    "pickle-0": lambda obj: pickle.dumps(obj, protocol=0),
}


@pytest.mark.parametrize("copier", COPIERS)
def test_an_fd_cannot_be_copied_or_pickled(copier: str) -> None:
    for name, fd in _fds():
        before = (fd.state, fd.borrow_count, repr(fd))
        with pytest.raises(TypeError, match=r"cannot (copy or )?pickle 'FD' object"):
            COPIERS[copier](fd)
        assert (fd.state, fd.borrow_count, repr(fd)) == before, name


@pytest.mark.parametrize("copier", COPIERS)
def test_a_borrow_cannot_be_copied_or_pickled(copier: str) -> None:
    fd, _ = open_fd()
    with fd.borrow():
        borrow = fd.borrow()
        with pytest.raises(TypeError, match=r"cannot (copy or )?pickle 'Borrow' object"):
            COPIERS[copier](borrow)
        assert fd.borrow_count == 1
    fd.close()


def test_an_fd_whose_init_never_ran_still_has_a_repr() -> None:
    # FD() cut at its entry by a signal handler leaves such an object in the
    # interrupted frame's locals; a traceback that shows locals (pytest -l,
    # capture_locals) or a debugger calls repr() on it.
    def cut_at_entry() -> None:
        half = rcfd.FD.__new__(rcfd.FD)
        raise KeyboardInterrupt(f"FD() cut at its entry: {type(half).__name__}")

    with pytest.raises(KeyboardInterrupt) as caught:
        cut_at_entry()
    shown = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    local = next(frame.locals for frame in shown.stack if frame.name == "cut_at_entry")
    assert local == {"half": "<rcfd.FD never initialized: FD.__init__ did not run>"}


# -- 10. weak references -------------------------------------------------------------


def test_an_fd_supports_weak_references_and_weakref_finalize() -> None:
    fd, closer = open_fd()
    ref = weakref.ref(fd)
    assert ref() is fd
    called: list[str] = []
    weakref.finalize(fd, called.append, "gone")
    fd.close()
    closer.fd = None
    del fd
    gc.collect()
    assert ref() is None
    assert called == ["gone"]
    assert len(closer.calls) == 1


def test_a_dropped_fd_with_a_weakref_is_still_finalized() -> None:
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    ref = weakref.ref(fd)
    with pytest.warns(ResourceWarning):
        del fd
    assert ref() is None
    assert len(closer.calls) == 1


# -- do() and coroutines (issue 13) ----------------------------------------------


def test_do_refuses_a_coroutine_and_releases_the_borrow() -> None:
    fd, closer = open_fd()
    ran: list[int] = []

    async def read(rawfd: int) -> int:
        ran.append(rawfd)  # would run after the borrow ended
        return rawfd

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        with pytest.raises(TypeError, match="fn returned a coroutine"):
            returned = fd.do(read)
            returned.close()  # not reached
    assert ran == [] and fd.borrow_count == 0 and fd.state is rcfd.State.OPEN
    fd.close()
    assert len(closer.calls) == 1



def test_do_refuses_a_started_coroutine_that_ignores_generator_exit() -> None:
    fd, closer = open_fd()

    ignored: list[bool] = []

    async def stubborn(rawfd: int) -> int:
        while True:
            try:
                await asyncio.sleep(0)
            except GeneratorExit:
                if ignored:
                    raise  # the collector's close, later, succeeds
                ignored.append(True)  # the first close raises RuntimeError

    def fn(rawfd: int) -> object:
        coroutine = stubborn(rawfd)
        coroutine.send(None)  # started: suspended in its loop
        return coroutine

    with pytest.raises(TypeError, match="fn returned a coroutine"):
        fd.do(fn)
    assert ignored == [True] and fd.borrow_count == 0 and fd.state is rcfd.State.OPEN
    fd.close()
    assert len(closer.calls) == 1


@pytest.mark.parametrize("callback", ["close_func", "on_closing"])
def test_an_async_close_func_or_on_closing_is_an_error_not_a_silent_leak(callback: str) -> None:
    # An `async def` returns a coroutine that nobody awaits: its body never
    # runs. As close_func it would leave the number open while the FD says
    # CLOSED and the registry counts it closed; so the close reports it.
    rawfd, ran = os.eventfd(0), []

    async def callback_body(number: int) -> None:
        ran.append(number)

    registry = rcfd.LifetimeRegistry()
    fd = rcfd.FD()
    fd.track_lifetime(registry)
    if callback == "close_func":
        fd.init(rawfd, callback_body)
    else:
        fd.init(rawfd, on_closing=callback_body)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(TypeError) as refused:
            fd.close()
        message = str(refused.value)
        del refused  # (its traceback keeps the coroutine)
        gc.collect()  # a coroutine left unclosed warns "never awaited" as it goes
    assert not [str(w.message) for w in seen if "never awaited" in str(w.message)]
    still = " (the number is still open)" if callback == "close_func" else ""
    assert message == (
        f"{callback}({rawfd}) returned a coroutine, which nobody awaits: it never "
        f"ran{still}; {callback} must be a blocking function, not an async def"
    )
    assert ran == [] and fd.state is rcfd.State.CLOSED
    stats = registry.fd_stats()
    if callback == "close_func":  # the number is still open: the caller's to close
        assert (stats.closed, stats.close_failed) == (0, 1)
        os.fstat(rawfd)
        os.close(rawfd)
    else:  # on_closing failed; the close went on, with the default close_func
        assert (stats.closed, stats.close_failed) == (1, 0)
        with pytest.raises(OSError):
            os.fstat(rawfd)


# -- the collector inside one of the FD's own locked steps ---------------------


def collect_inside_the_locked_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the collector where CPython may run it: at a check point inside the
    FD's locked step (here, as a joining close's step counts the caller's
    borrows, and as a close that begins freezes the holders)."""
    real = rcfd.FD._borrows_of

    def collecting(fd: rcfd.FD, tid: int) -> int:
        gc.collect()
        return real(fd, tid)

    class CollectingFreeze(list[memoryview]):
        def extend(self, views: Iterable[memoryview], /) -> None:
            gc.collect()
            super().extend(views)

    class CollectingClose(Closing):
        __slots__ = ()

        def __init__(self, detach: bool, owner_waker: Callable[[], None] | None) -> None:
            super().__init__(detach, owner_waker)
            self.freeze = CollectingFreeze()

    monkeypatch.setattr(rcfd.FD, "_borrows_of", collecting)
    monkeypatch.setattr(_fd, "CloseRecord", CollectingClose)


def _borrowed_by_garbage(fd: rcfd.FD, stay: threading.Event) -> None:
    """A generator suspended inside `with fd.borrow()`, left in a cycle: only
    the collector will release that borrow, at whatever point it runs. It is
    entered on a thread that lives until `stay` is set (a later thread given
    the same ident would count as its holder: specs/rcfd.md, thread identity)."""

    class Box:
        pass

    def holder() -> Generator[int, None, None]:
        with fd.borrow() as rawfd:
            yield rawfd

    gen = holder()
    handed = [gen]  # the thread drops its reference: only the cycle keeps it
    entered = threading.Event()

    def enter_and_stay() -> None:
        next(handed.pop())
        entered.set()
        stay.wait(WAIT)

    threading.Thread(target=enter_and_stay, daemon=True).start()
    assert entered.wait(WAIT)
    box = Box()
    box.gen, box.me = gen, box  # type: ignore[attr-defined]


@pytest.mark.parametrize("second", ["close", "detach"])
def test_a_collection_inside_a_locked_step_releasing_a_borrow_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    """close() waits for a borrow that only the collector will release; the
    collection then runs inside another call's locked step of the same FD, on
    the same thread (CPython runs it at any check point). The release must
    not wait for that lock (a deadlock), and the close must still happen."""
    fd, closer = open_fd()
    stay = threading.Event()
    gc.disable()
    try:
        _borrowed_by_garbage(fd, stay)
        with pytest.raises(TimeoutError):
            fd.close(timeout=0)
        collect_inside_the_locked_step(monkeypatch)
        if second == "close":
            call: Callable[[], object] = fd.close
        else:
            call = lambda: fd.detach()  # noqa: E731  (another locked step: WAIT)
        thread, outcome = in_thread(call)
        assert outcome.done.wait(WAIT), "deadlock: the release waited for its own thread's lock"
        thread.join(WAIT)
    finally:
        gc.enable()
        stay.set()
    assert isinstance(outcome.error, rcfd.ClosedFDError)  # it waited, then: closed by the first
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
    assert closer.borrows_seen == [0]


def test_a_close_from_a_finalizer_inside_a_locked_step_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A finalizer (here: a garbage generator's `finally`) that closes the FD
    while this thread is inside one of the FD's own locked steps: refused at
    once (it would wait for that step), and the close in progress finishes."""
    fd, closer = open_fd()
    refused: list[BaseException] = []

    class Box:
        pass

    def closes_when_collected() -> Generator[None, None, None]:
        try:
            yield
        finally:
            try:
                fd.close()
            except BaseException as exc:
                refused.append(exc)

    gc.disable()
    try:
        gen = closes_when_collected()
        next(gen)
        box = Box()
        box.gen, box.me = gen, box  # type: ignore[attr-defined]
        del gen, box
        collect_inside_the_locked_step(monkeypatch)
        _, outcome = in_thread(fd.close)
        assert outcome.done.wait(WAIT), "deadlock"
    finally:
        gc.enable()
    assert outcome.error is None
    assert [type(e) for e in refused] == [rcfd.CloseInsideCloseFuncError]
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1



@pytest.mark.parametrize("call", ["close", "detach"])
def test_a_close_from_a_finalizer_inside_the_last_release_before_its_claim_returns(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """The collector runs a finalizer that closes the FD inside the last
    borrow's release, after its tombstone and before it claims (no lock is
    held there, so nothing refuses it): that close joins the close in
    progress, finds no borrow, and claims it. It waited instead, for a claim
    only its own thread's suspended release could make: for good, timeout or
    not, and the first closer with it."""
    fd, closer = open_fd()
    inner: list[BaseException | None] = []
    real = Closing.release

    def release(closing: Closing, fd_: rcfd.FD) -> None:
        monkeypatch.setattr(Closing, "release", real)  # once
        try:  # as the collector would run it, at the release's first check point
            fd.close(timeout=1.0) if call == "close" else fd.detach()
            inner.append(None)
        except BaseException as exc:
            inner.append(exc)
        real(closing, fd_)

    def last_borrow() -> None:
        def body(rawfd: int) -> None:
            first.append(in_thread(fd.close)[1])  # the owner: waits for this borrow
            deadline = time.monotonic() + WAIT
            while fd.state is not rcfd.State.CLOSING:
                assert time.monotonic() < deadline, "the close never began"
                threading.Event().wait(0.001)
            monkeypatch.setattr(Closing, "release", release)

        fd.do(body)

    first: list[Outcome] = []
    _, outcome = in_thread(last_borrow)
    assert outcome.done.wait(WAIT), f"the release never returned: {inner}"
    assert outcome.error is None, outcome.error
    assert [type(e) for e in inner] == [rcfd.ClosedFDError], inner  # a second closer
    assert first[0].done.wait(WAIT) and first[0].error is None, first[0].error
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1
    assert closer.borrows_seen == [0]



def test_close_funcs_error_is_reported_once_when_reporting_it_raises() -> None:
    """close_func's error, nobody left to receive it, is warned by the thread
    that ran it; a warnings hook that raises (a strict harness; -W error)
    makes that release retry the run, which must not report it again."""
    fd, closer = open_fd()
    closer.error = OSError(5, "EIO from close_func")
    held = HeldBorrow(fd)
    with pytest.raises(TimeoutError):
        fd.close(timeout=0)  # the owner leaves: the error will be nobody's
    shown: list[type[Warning]] = []

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        shown.append(category)
        raise RuntimeError("warning refused")

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        held.end()
    assert shown == [RuntimeWarning]
    assert isinstance(held.outcome.error, RuntimeError), held.outcome.error
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


# -- one Borrow, two blocks ---------------------------------------------------


def test_a_borrow_entered_while_entered_is_refused_and_changes_nothing() -> None:
    fd, closer = open_fd()
    b = fd.borrow()
    with b:
        with pytest.raises(RuntimeError, match="already entered"), b:
            pytest.fail("entered twice")
        assert fd.borrow_count == 1
    assert fd.borrow_count == 0
    with b:  # reused after it was left: a fresh borrow
        assert fd.borrow_count == 1
    b.__exit__(None, None, None)  # a second exit releases nothing
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)
    assert len(closer.calls) == 1


def test_a_borrow_shared_by_two_threads_keeps_the_count_exact() -> None:
    """A Borrow used like a lock, by two threads at once: the second entry is
    refused; before, it overwrote the first's thread, whose exit then released
    the second's borrow and left its own counted for good."""
    fd, closer = open_fd()
    b = fd.borrow()
    inside, leave = threading.Event(), threading.Event()

    def first() -> None:
        with b:
            inside.set()
            assert leave.wait(WAIT)

    _, outcome = in_thread(first)
    assert inside.wait(WAIT)
    _, second = in_thread(lambda: b.__enter__())
    assert second.done.wait(WAIT)
    assert isinstance(second.error, RuntimeError)
    assert fd.borrow_count == 1
    leave.set()
    assert outcome.done.wait(WAIT) and outcome.error is None
    assert fd.borrow_count == 0
    fd.close(timeout=WAIT)
    assert len(closer.calls) == 1


def _runaway(fd: rcfd.FD, how: str) -> Callable[[int], object]:
    """A recursion through fd's borrows that never ends: each level borrows,
    and calls the next inside its borrow, until the recursion limit."""

    def walk(rawfd: int) -> object:
        if how == "do":
            return fd.do(walk)
        with fd.borrow() as number:
            return walk(number)

    return walk


def _at_depth(extra: int, call: Callable[[], object]) -> object:
    return _at_depth(extra - 1, call) if extra else call()


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="3.11 counts C calls against the recursion limit: a release's remove() "
    "needs a level more than its insert (specs/cpython.md, 'The recursion limit')",
)
@pytest.mark.parametrize("how", ["do", "with"])
def test_a_runaway_recursion_through_borrows_gives_every_borrow_back(how: str) -> None:
    """A borrow taken at the recursion limit is given back there too: the
    release reaches no deeper than the entry did. Before, the no-GIL path's
    release went a call deeper, failed with RecursionError (and so did its
    retry), and left the borrow counted for good: a close from this thread
    was then refused as a close inside its own borrow, from any other it
    waited forever. Each extra frame shifts where the limit falls."""
    fd, closer = open_fd()
    for extra in range(4):
        with pytest.raises(RecursionError):
            _at_depth(extra, lambda: _runaway(fd, how)(0))
        assert fd.borrow_count == 0, f"{extra} extra frame(s): a borrow is left counted"
    fd.close(timeout=WAIT)
    assert len(closer.calls) == 1


# -- the recursion limit: a close's step that fails there, and its retry --------


def _frames() -> int:
    """How deep the calling frame is."""
    depth, frame = 0, sys._getframe(1)
    while frame.f_back is not None:
        depth, frame = depth + 1, frame.f_back
    return depth + 1


def _call_at(extra: int, call: Callable[[], object]) -> None:
    with contextlib.suppress(RecursionError):
        _at_depth(extra, call)


def _release_that_decides(fd: rcfd.FD) -> Callable[[], None]:
    """A borrow whose release comes after another thread's close froze the
    holders: it is the last borrow, so it must decide. Its body makes no
    Python call (it runs at the limit); the closer is started here, at a
    shallow depth, and waits for the borrow to let it go."""
    entered = threading.Lock()  # released (a C call) once the borrow runs
    entered.acquire()

    def closer() -> None:
        entered.acquire(timeout=WAIT)
        with contextlib.suppress(TimeoutError, rcfd.ClosedFDError):
            fd.close(timeout=WAIT)

    in_thread(closer)

    def body() -> None:
        with fd.borrow():
            entered.release()
            while not (fd._closer and fd._closer.freeze):
                pass

    return body


@pytest.mark.parametrize(
    "call",
    [
        "close",
        "detach",
        *(
            pytest.param(
                call,
                marks=pytest.mark.skipif(
                    sys.version_info < (3, 12) and _nogil.ENABLED,
                    reason="3.11, no-GIL path: the owner's borrow (on_closing's) is "
                    "released at the limit with a level more than its entry, and "
                    "is not given back (specs/cpython.md, 'The recursion limit')",
                ),
            )
            for call in ("close with on_closing", "detach with on_closing")
        ),
        pytest.param(
            "release that decides",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 12),
                reason="3.11 counts C calls against the limit: a borrow's release "
                "there needs a level more than its entry, and is not given back "
                "(specs/cpython.md, 'The recursion limit')",
            ),
        ),
    ],
)
def test_a_close_begun_at_the_recursion_limit_is_finished(call: str) -> None:
    """A step of a close that RecursionError cuts after it took effect fails
    again in the Signals rule's retry, at the same depth; before, that left
    the FD CLOSING for good: a release that had to decide did not, a detach
    kept the number open, and every later close waited forever, its
    timeout included (specs/cpython.md, "The recursion limit"). Now a new
    thread finishes what the retry could not. The call is made at every
    depth from where it completes to where it cannot begin; after each, a
    later close returns, the FD is CLOSED, and the number is closed (the
    pipe's write end sees EPIPE), by rcfd or by the detach's caller: a
    detach that fails there leaves, and its number is not handed to nobody."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_frames() + 120)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            _sweep_depths(call)
        _no_close_func_error(seen)
    finally:
        sys.setrecursionlimit(limit)


def _sweep_depths(call: str) -> None:
    """test_a_close_begun_at_the_recursion_limit_is_finished's sweep."""
    seen_open = 0
    for extra in range(60, 120):
        read, write = os.pipe()
        fd = rcfd.FD(read, on_closing=os.fstat if "on_closing" in call else None)
        number: list[int] = []

        def detach(fd: rcfd.FD = fd, number: list[int] = number) -> None:
            number[:] = (fd.detach(),)  # no call after it (3.11 counts C calls)

        if call == "release that decides":
            act: Callable[[], object] = _release_that_decides(fd)
        else:
            act = fd.close if call.startswith("close") else detach
        _call_at(extra, act)
        if fd.state is rcfd.State.OPEN:  # the call could not begin at this depth
            seen_open += 1
            if call == "release that decides":
                _call_at(0, act)  # the closer waits: give it its borrow
        _, later = in_thread(partial(fd.close, timeout=WAIT / 4))
        assert later.done.wait(WAIT), f"{call} at {extra} extra frames: a later close hangs"
        left = f"{later.error!r}, {fd.borrow_count} borrow(s)"
        assert fd.state is rcfd.State.CLOSED, f"{call} at {extra} extra frames: {left}"
        for rawfd in number:
            os.close(rawfd)
        wait_until(partial(_read_end_closed, write), f"{call} at {extra}: number closed")
        os.close(write)
    assert seen_open, "the sweep never reached the depth where the call cannot begin"


def _read_end_closed(write: int) -> bool:
    try:
        os.write(write, b"x")
    except BrokenPipeError:
        return True
    return False


class _Cycle:
    """Garbage only the collector frees: it refers to itself."""

    def __init__(self, fd: rcfd.FD) -> None:
        self.fd = fd
        self.me = self


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="3.11 counts C calls against the limit: the finalizer's handler there "
    "cannot start the thread that finishes the close (specs/cpython.md)",
)
def test_a_finalizer_the_collector_runs_at_the_recursion_limit_closes_the_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collector runs finalizers at whatever depth it is triggered, so an
    OPEN FD in a cycle may be finalized a few frames below the limit. Its
    finalizer then failed with RecursionError before or after it began the
    close, and the number stayed open for good: the FD is garbage, nobody
    else can close it. Now a new thread finishes it. The collection is made
    at every depth from where the finalizer completes to where it cannot
    begin (CPython then drops the FD without running it: nothing can close
    that number); each time in between, the number is closed."""
    # A C callable: a hook written in Python would fail at the limit itself.
    unraisable: list[sys.UnraisableHookArgs] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    limit = sys.getrecursionlimit()
    was_enabled = gc.isenabled()
    gc.disable()  # only the collections below run the finalizers
    sys.setrecursionlimit(_frames() + 80)
    cut_inside = 0
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            for extra in range(40, 80):
                read, write = os.pipe()
                _Cycle(rcfd.FD(read))
                unraisable.clear()
                _call_at(extra, gc.collect)
                gc.collect()  # the cycle, if the limit came before the collection
                if not all(map(_in_the_finalizer, unraisable)):
                    os.close(read)  # the finalizer could not begin: CPython's limit
                    os.close(write)
                    break
                cut_inside += bool(unraisable)
                wait_until(partial(_read_end_closed, write), f"number closed at {extra}")
                os.close(write)
            else:
                raise AssertionError("the sweep never reached where the finalizer cannot begin")
    finally:
        sys.setrecursionlimit(limit)
        if was_enabled:
            gc.enable()
    assert cut_inside, "no finalizer met the limit after it began"
    _no_close_func_error(seen)


def _no_close_func_error(seen: list[warnings.WarningMessage]) -> None:
    """close_func is os.close, which cannot meet the limit (a C call): an error
    of its reported means rcfd made a call of its own count as close_func's."""
    errors = [str(w.message) for w in seen if "close_func raised" in str(w.message)]
    assert not errors, errors


def _in_the_finalizer(unraisable: sys.UnraisableHookArgs) -> bool:
    """Whether the error was raised inside FD.__del__, not as it was called."""
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return any(frame.name == "__del__" for frame in frames)
