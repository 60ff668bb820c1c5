"""Survivors of the mutmut run over rcfd/_fd.py and rcfd/_closing.py, killed here.

Each test names the mutants it kills (mutmut's names; `mutmut show NAME` in
mutants/.work/mutmut/ prints the diff) and was seen failing on each of them,
applied by hand to a scratch copy of the tree, and passing on the real code.
The survivors no test can kill are in mutants/EQUIVALENT.md, with the reason.

Interrupts are made deterministic as in tests/reliability's *_steps tests: a
double raises KeyboardInterrupt at the one point a signal handler would (the
close record through rcfd._fd.CloseRecord, the test seam the harnesses use;
the holders as in tests/test_mutmut_survivors.py). Every wait is bounded
(WAIT); no test sleeps to hope for an ordering.
"""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import sys
import threading
import warnings
from collections.abc import Callable, Generator
from typing import cast

import pytest

import rcfd
from rcfd import _fd
from rcfd._closing import Closing
from tests.support import (
    GIL_PATH_ONLY,
    WAIT,
    CountingClose,
    HeldBorrow,
    InterruptedInsert,
    in_thread,
    state_of,
    wait_until,
)


def _waiting_closers(fd: rcfd.FD) -> int:
    closing = fd._closer
    return 0 if closing is None else closing.waiting_closers()


# -- the call named in aclose's refusals and in a waiting closer's ------------


def test_aclose_and_a_waiting_close_name_themselves_when_refused() -> None:
    # Kills _fd.xǁFDǁaclose__mutmut_19, _25, _26 (the close record begun as
    # None, "XXacloseXX", "ACLOSE"), _50, _55, _56 (the outcome read for the
    # same), and _closing.xǁClosingǁoutcome__mutmut_3 (a waiting closer's
    # ClosedFDError named None): every refusal names the call the user made
    # (FDError.call, and the message).
    with pytest.raises(rcfd.UninitializedFDError) as uninit:
        asyncio.run(rcfd.FD().aclose())
    assert uninit.value.call == "aclose"
    assert "aclose() refused in state UNINIT" in str(uninit.value)

    for second in ("close", "aclose"):
        _a_second_closer_waits_then_is_refused(second)


def _a_second_closer_waits_then_is_refused(second: str) -> None:
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    held = HeldBorrow(fd)
    first_thread, first = in_thread(fd.close)
    wait_until(lambda: _waiting_closers(fd) == 1, "the first close waits")
    if second == "close":
        call: Callable[[], object] = fd.close
    else:
        call = lambda: asyncio.run(asyncio.wait_for(fd.aclose(), WAIT))  # noqa: E731
    thread, outcome = in_thread(call)
    wait_until(lambda: _waiting_closers(fd) == 2, "the second closer waits")
    held.end()
    for t, o in ((first_thread, first), (thread, outcome)):
        assert o.done.wait(WAIT)
        t.join(WAIT)
    assert first.error is None
    error = outcome.error
    assert isinstance(error, rcfd.ClosedFDError), error
    assert error.call == second and f"{second}() refused in state CLOSED" in str(error)
    with pytest.raises(rcfd.ClosedFDError) as closed:
        asyncio.run(fd.aclose())
    assert closed.value.call == "aclose"
    assert len(closer.calls) == 1


# -- messages of the argument and object-protocol refusals --------------------


def test_the_refusals_of_a_bad_registry_a_bad_borrow_and_a_copy_say_what_to_do() -> None:
    # Kills _fd.xǁFDǁtrack_lifetime__mutmut_1, _5, _6 (the registry check
    # named None, "XXtrack_lifetimeXX", "TRACK_LIFETIME"),
    # _fd.xǁBorrowǁ__init____mutmut_2, _3 (Borrow(not an FD): no message, or
    # "not NoneType"), _fd.xǁFDǁ__reduce_ex____mutmut_3 to _5 and
    # _fd.xǁBorrowǁ__reduce_ex____mutmut_2 (the copy refusal's advice changed).
    fd = rcfd.FD()
    with pytest.raises(TypeError) as bad_registry:
        fd.track_lifetime(cast(rcfd.LifetimeRegistry, object()))
    assert str(bad_registry.value) == (
        "track_lifetime: registry must be a LifetimeRegistry, not object"
    )
    with pytest.raises(TypeError) as bad_fd:
        rcfd.Borrow(cast(rcfd.FD, 3))
    assert str(bad_fd.value) == "Borrow: fd must be an rcfd.FD, not int"

    fd.init(os.eventfd(0))
    copiers: list[Callable[[object], object]] = [copy.copy, copy.deepcopy, pickle.dumps]
    for copier in copiers:
        with pytest.raises(TypeError) as copied:
            copier(fd)
        assert str(copied.value) == (
            "cannot copy or pickle 'FD' object: it owns its descriptor; "
            "dup() makes an independent FD on a duplicate"
        )
        with fd.borrow():
            with pytest.raises(TypeError) as copied:
                copier(fd.borrow())
            assert str(copied.value) == "cannot copy or pickle 'Borrow' object: it is one borrow"
    fd.close()


# -- close_func's error after its closer stopped waiting ----------------------


def test_close_funcs_error_after_a_timed_out_close_is_warned_as_such() -> None:
    # Kills _closing.xǁClosingǁ_report_unreceived__mutmut_8 (every such
    # warning says "in the finalizer"), _11 and _12 (the words changed): the
    # error of a close_func that the last borrow ran, after close(timeout)
    # gave up, reaches nobody, so it is a RuntimeWarning that says when.
    error = OSError(5, "test: close failed")
    closer = CountingClose(error=error)
    fd = rcfd.FD(os.eventfd(0), closer)
    with pytest.warns(RuntimeWarning) as caught, fd.borrow():
        thread, outcome = in_thread(lambda: fd.close(timeout=0))
        assert outcome.done.wait(WAIT)
        thread.join(WAIT)
        assert isinstance(outcome.error, TimeoutError)
        # the block's exit was the last release: it ran close_func
    assert [str(w.message) for w in caught] == [
        f"rcfd: close_func raised {error!r} after close() stopped waiting; {fd!r} is closed"
    ]
    assert (state_of(fd), len(closer.calls)) == (rcfd.State.CLOSED, 1)


def test_close_funcs_unreceived_error_is_warned_at_the_users_line() -> None:
    # Kills _closing.xǁClosingǁ_report_unreceived__mutmut_18 and _19 (a fixed
    # stacklevel, 1 or 4) and registry.user_stacklevel's mutants: the warning
    # names the line whose release ran close_func (here the end of the with
    # block), not a line inside rcfd. Deselected under mutmut, whose
    # trampolines sit between rcfd's frames (tools/mutmut_run.py).
    closer = CountingClose(error=OSError(5, "test: close failed"))
    fd = rcfd.FD(os.eventfd(0), closer)
    with pytest.warns(RuntimeWarning) as caught:
        line = _current_line() + 1  # the with statement: its exit runs close_func
        with fd.borrow():
            thread, outcome = in_thread(lambda: fd.close(timeout=0))
            assert outcome.done.wait(WAIT)
            thread.join(WAIT)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]
    assert len(closer.calls) == 1


def _current_line() -> int:
    frame = sys._getframe(1)
    return frame.f_lineno


def test_a_borrow_entered_twice_says_to_make_one_per_block() -> None:
    # Kills _errors.x_borrow_entered_twice__mutmut_2, _3, _5, _6 (the words).
    fd = rcfd.FD(os.eventfd(0))
    borrow = fd.borrow()
    with borrow, pytest.raises(RuntimeError) as twice, borrow:
        pass
    assert str(twice.value) == (
        "rcfd: this Borrow is already entered; a Borrow is one borrow: call "
        "fd.borrow() for each with-block (and in each thread)"
    )
    assert (fd.borrow_count, state_of(fd)) == (0, rcfd.State.OPEN)
    fd.close()


def test_a_refused_borrow_is_refused_again_when_entered_again() -> None:
    # Kills _nogil.x_borrow_enter__mutmut_15 (run with RCFD_NOGIL=1): a
    # refusal leaves the Borrow as it was, not marked entered, so entering it
    # again is refused for the FD's state, not as a Borrow entered twice.
    fd = rcfd.FD(os.eventfd(0))
    borrow = fd.borrow()
    fd.close()
    for _ in range(2):
        with pytest.raises(rcfd.ClosedFDError):
            borrow.__enter__()


def test_do_says_why_it_refuses_a_coroutine() -> None:
    # Kills _nogil.x_refuse_coroutine__mutmut_11, _13, _14 (the words).
    async def fn(rawfd: int) -> int:
        return rawfd

    fd = rcfd.FD(os.eventfd(0))
    with pytest.raises(TypeError) as refused:
        fd.do(cast("Callable[[int], object]", fn))
    assert str(refused.value) == (
        "do: fn returned a coroutine, which would run after the borrow ended; "
        "call a blocking fn (in a thread: asyncio.to_thread(fd.do, fn))"
    )
    assert fd.borrow_count == 0
    fd.close()


# -- interrupts the close resumes from ---------------------------------------


class _InterruptedOutcome(Closing):
    """A close whose owner is interrupted as its outcome returns (a signal
    handler raising at that bytecode): after a detach handed the number over,
    before it reached the caller."""

    __slots__ = ()

    def outcome(self, fd: rcfd.FD, call: str, waker: Callable[[], None]) -> int:
        super().outcome(fd, call, waker)
        raise KeyboardInterrupt


def test_a_detach_interrupted_as_it_returns_the_number_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _closing.xǁClosingǁleave__mutmut_1, _2, _3: the owner of a detach
    # that leaves by an exception after the hand-over must close the number
    # it will never return (rcfd/_fd.py, FD._close: never orphan it), once.
    monkeypatch.setattr(_fd, "CloseRecord", _InterruptedOutcome)
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    rawfd = fd.do(lambda n: n)
    with pytest.raises(KeyboardInterrupt):
        fd.detach()
    assert closer.calls == [rawfd], "the handed-over number was not closed"
    assert state_of(fd) is rcfd.State.CLOSED


class _InterruptedRelease(Closing):
    """A close whose first release by thread `target` is interrupted at its
    first bytecode, before it did anything."""

    __slots__ = ()
    target = 0

    def release(self, fd: rcfd.FD) -> None:
        if threading.get_ident() == _InterruptedRelease.target:
            _InterruptedRelease.target = 0
            raise KeyboardInterrupt
        super().release(fd)


@GIL_PATH_ONLY
@pytest.mark.parametrize("form", ["do", "borrow"])
def test_a_borrow_interrupted_twice_as_it_is_counted_still_runs_the_close(
    monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    # Kills _fd.xǁFDǁ_release__mutmut_9 (the resumed release handed None). A
    # borrow interrupted as its insert returns gives its count back
    # (FD._release); if a close froze the holders meanwhile and that borrow
    # is the last, its release runs the close, and an interrupt there too is
    # resumed, so close_func still runs, once (specs/rcfd.md, "Signals").
    monkeypatch.setattr(_fd, "CloseRecord", _InterruptedRelease)
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    holders = InterruptedInsert("L")
    fd._holders = holders
    me = threading.get_ident()
    holders.target = me
    held = HeldBorrow(fd)
    closing: list[tuple[threading.Thread, object]] = []

    def meanwhile() -> None:
        closing.append(in_thread(fd.close))
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "the close began")
        held.end()  # its tombstone is written; ours is the last borrow
        _InterruptedRelease.target = me

    holders.meanwhile = meanwhile
    ran: list[int] = []

    def borrow_with() -> int:
        with fd.borrow() as rawfd:
            return rawfd

    with pytest.raises(KeyboardInterrupt):
        if form == "do":
            fd.do(ran.append)
        else:
            ran.append(borrow_with())
    assert ran == []
    assert len(closer.calls) == 1, "the interrupted last release did not run the close"
    thread, outcome = closing[0]
    assert isinstance(outcome, type(held.outcome))
    assert outcome.done.wait(WAIT)
    thread.join(WAIT)
    assert outcome.error is None
    assert (state_of(fd), fd.borrow_count) == (rcfd.State.CLOSED, 0)


class _InterruptedRun(Closing):
    """A close whose first run (close_func, finish, wake-ups) is interrupted
    at its first bytecode."""

    __slots__ = ()
    armed = False

    def run(self, fd: rcfd.FD) -> None:
        if _InterruptedRun.armed:
            _InterruptedRun.armed = False
            raise KeyboardInterrupt
        super().run(fd)


def test_a_finalizer_interrupted_as_it_runs_the_close_resumes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _closing.xǁClosingǁfinalize__mutmut_22 (the resumed run handed
    # None): the finalizer's close, interrupted, still closes the number,
    # once. The finalizer is called as the collector calls it (fd.__del__()),
    # so that its exception reaches the test instead of sys.unraisablehook.
    monkeypatch.setattr(_fd, "CloseRecord", _InterruptedRun)
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    _InterruptedRun.armed = True
    with pytest.warns(ResourceWarning), pytest.raises(KeyboardInterrupt):
        fd.__del__()
    assert (state_of(fd), len(closer.calls)) == (rcfd.State.CLOSED, 1)


class _CollectAfterZeroCheck(Closing):
    """A close whose zero check (under the FD's lock) is followed, still under
    the lock, by the collector finalizing `garbage`, as CPython may run it at
    any check point there."""

    __slots__ = ()
    garbage: Generator[int, None, None] | None = None

    def _zero(self, fd: rcfd.FD, me: int) -> bool:
        claimed = super()._zero(fd, me)
        garbage, _CollectAfterZeroCheck.garbage = _CollectAfterZeroCheck.garbage, None
        if garbage is not None:
            garbage.close()  # what the collector does to a garbage generator
        return claimed


def test_a_finalizer_whose_locked_step_collects_the_last_borrower_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _closing.xǁClosingǁfinalize__mutmut_23 (the deferred release
    # settled with None). The finalizer finds a borrow running (held by a
    # generator that is garbage too), so it does not claim; the collector,
    # run inside that same locked step, then finalizes the generator, whose
    # release must not wait for the lock this thread holds: it is deferred,
    # and the finalizer settles it once out of the lock, which runs the close.
    monkeypatch.setattr(_fd, "CloseRecord", _CollectAfterZeroCheck)
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)

    def holder() -> Generator[int, None, None]:
        with fd.borrow() as rawfd:
            yield rawfd

    gen = holder()
    next(gen)
    _CollectAfterZeroCheck.garbage = gen
    with pytest.warns(ResourceWarning):
        fd.__del__()
    assert _CollectAfterZeroCheck.garbage is None, "the zero check never ran"
    assert (state_of(fd), fd.borrow_count, len(closer.calls)) == (rcfd.State.CLOSED, 0, 1)


# -- the finalizer: its warning, and its close at interpreter exit -------------


def test_the_finalizers_warning_names_the_fd_as_its_source() -> None:
    # Kills _fd.x__make_finalizer__mutmut_7 and _10 (source=None, or none),
    # which mutmut cannot reach: FD.__del__ is made once, at import. A
    # ResourceWarning's `source` is the object being finalized (as CPython's
    # sockets and files pass it), so that -X tracemalloc can show where the
    # unclosed FD was allocated. The finalizer is called as the collector
    # calls it, on an FD the test still holds, so the source can be compared.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    rawfd = fd.do(lambda n: n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fd.__del__()
    assert [(w.category, str(w.message)) for w in caught] == [
        (ResourceWarning, f"unclosed <rcfd.FD OPEN fd={rawfd} borrows=0>")
    ]
    assert caught[0].source is fd
    assert (state_of(fd), closer.calls) == (rcfd.State.CLOSED, [rawfd])


def test_the_close_at_interpreter_exit_leaves_a_closed_fd_counted_finalized() -> None:
    # Kills _fd.xǁFDǁ_close_at_exit__mutmut_6 (the holders not frozen: a later
    # borrow gets the closed number), _8 (the close left CLOSING), _11 and _15
    # (the registry told of another FD: this one stays in flight, and the leak
    # report loses its stack). At interpreter exit the finalizer closes the FD
    # plainly (no lock, no waiter: rcfd's globals may be gone); a finalizer
    # that runs after it still sees a CLOSED FD that refuses borrows, and the
    # registry reports it as closed by the garbage collector. Called here
    # directly, as FD.__del__ calls it once sys.is_finalizing();
    # tests/reliability/test_shutdown_finalizers.py runs it at a real exit.
    registry = rcfd.LifetimeRegistry()
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer, registry=registry)
    rawfd = fd.do(lambda n: n)
    fd._close_at_exit()
    assert (state_of(fd), fd.borrow_count, closer.calls) == (rcfd.State.CLOSED, 0, [rawfd])
    with pytest.raises(rcfd.ClosedFDError):
        fd.do(lambda n: n)
    with pytest.raises(rcfd.ClosedFDError), fd.borrow():
        pass
    stats = registry.fd_stats()
    assert (stats.initialized, stats.finalized, stats.in_flight) == (1, 1, 0)
    assert len(stats.finalized_stacks) == 1 and stats.finalized_stacks[0][0] == rawfd
    assert "test_the_close_at_interpreter_exit" in stats.finalized_stacks[0][1]
    fd.__del__()  # the collector's later call: nothing more to do
    assert closer.calls == [rawfd]
