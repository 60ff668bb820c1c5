"""Survivors of the mutmut run on the lock-free rcfd/_fd.py (make mutmut), killed here.

Each test names the mutants it kills (mutmut's names; `mutmut show NAME` in
mutants/.work/mutmut/ prints the diff) and was seen failing on each of them,
applied by hand to a scratch copy of the tree, and passing on the real code.
The survivors no test can kill are in mutants/EQUIVALENT.md, with the reason.

Every wait is bounded (WAIT); no test sleeps to hope for an ordering.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable

import pytest

import rcfd
from tests.support import (
    GIL_PATH_ONLY,
    WAIT,
    CountingClose,
    HeldBorrow,
    InterruptedInsert,
    PausingRegistry,
    in_thread,
    loop_freed_after,
    state_of,
    wait_until,
)


def _borrow_with(fd: rcfd.FD) -> int:
    with fd.borrow() as rawfd:
        return rawfd


# -- aclose: a waiting task whose loop is gone ---------------------------------


async def _until_closing(fd: rcfd.FD) -> None:
    async with asyncio.timeout(WAIT):
        while fd.state is not rcfd.State.CLOSING:
            await asyncio.sleep(0)


def test_a_close_that_finishes_after_its_aclose_loop_closed_is_quiet() -> None:
    # Kills _fd.xǁFDǁaclose__mutmut_9 (contextlib.suppress(None) around the
    # wake-up). The task still waits (neither cancelled nor timed out, so it
    # never unregistered its waker) when its loop is closed; the last borrow
    # then finishes the close and calls that waker on a closed loop. The
    # borrower must not see the loop's RuntimeError.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    held = HeldBorrow(fd)
    loop = asyncio.new_event_loop()
    task = loop.create_task(fd.aclose())
    try:
        loop.run_until_complete(_until_closing(fd))
    finally:
        loop.close()
    assert not task.done()  # still registered: kept alive by `task`
    held.end()
    assert held.outcome.error is None, held.outcome.error
    assert held.valid_at_end
    assert state_of(fd) is rcfd.State.CLOSED and len(closer.calls) == 1
    task.get_coro().close()  # the task can never run again
    quiet = "_log_destroy_pending"  # nor be awaited: no "Task was destroyed" at exit
    setattr(task, quiet, False)  # (a private flag the stubs do not declare)


def test_an_aclose_that_timed_out_keeps_no_reference_to_its_loop() -> None:
    # Kills _fd.xǁFDǁaclose__mutmut_27 (_give_up is handed None, not the
    # task's waker, so the waker stays registered): an aclose that gave up
    # must not keep its loop (and future) alive for as long as the FD stays
    # CLOSING, which is for as long as a borrow blocks.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    held = HeldBorrow(fd)

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await fd.aclose(timeout=0.01)

    freed = loop_freed_after(give_up)
    try:
        assert freed, "the CLOSING FD still holds the timed-out aclose's waker"
    finally:
        held.end()
    assert held.outcome.error is None
    assert state_of(fd) is rcfd.State.CLOSED and len(closer.calls) == 1


# -- a borrow that races init ------------------------------------------------


@pytest.mark.parametrize("form", ["do", "borrow"])
def test_a_borrow_during_an_init_is_refused_as_uninit_without_waiting(form: str) -> None:
    # Kills _fd.xǁBorrowǁ__enter____mutmut_9 (fd._refused(None)): the refusal
    # of a borrow that met the UNINIT holders must not consult the FD's state
    # under a lock. The lock is the shared one, held by the paused init, so
    # the mutant waits for the init; and then reads OPEN and reports a close
    # inside a borrow.
    # The init outwaits the borrow's WAIT below, which on the mutant runs out.
    registry = PausingRegistry(resume_within=3 * WAIT)
    fd = rcfd.FD(registry=registry)
    raw = os.eventfd(0)
    t1, init = in_thread(lambda: fd.init(raw))
    assert registry.paused.wait(WAIT), "the init never reached its record"
    call: Callable[[], object] = (
        (lambda: fd.do(lambda rawfd: rawfd)) if form == "do" else (lambda: _borrow_with(fd))
    )
    t2, borrowed = in_thread(call)
    refused_during_init = borrowed.done.wait(WAIT)
    registry.resume.set()
    for thread, outcome in ((t1, init), (t2, borrowed)):
        assert outcome.done.wait(WAIT)
        thread.join(WAIT)
    assert refused_during_init, "the refused borrow waited for the init"
    assert isinstance(borrowed.error, rcfd.UninitializedFDError), borrowed.error
    assert init.error is None
    fd.close()


# -- an interrupt as a borrow's insert returns --------------------------------


@GIL_PATH_ONLY
@pytest.mark.parametrize("form", ["do", "borrow"])
@pytest.mark.parametrize("phase", ["open", "closing"])
def test_a_borrow_interrupted_as_it_is_counted_gives_the_count_back(form: str, phase: str) -> None:
    # Kills _fd.xǁFDǁ_release__mutmut_1 to _5 and _fd.xǁBorrowǁ__enter____mutmut_10,
    # which mutmut found no test for: _release runs only when an interrupt
    # strikes a borrow right after its insert. In "closing", a close froze
    # the holders in between, and another borrow's tombstone is already there.
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    holders = InterruptedInsert("L")
    fd._holders = holders
    holders.target = threading.get_ident()
    closing: list[tuple[threading.Thread, object]] = []
    held: HeldBorrow | None = None
    if phase == "closing":
        held = HeldBorrow(fd)

        def meanwhile() -> None:
            assert held is not None
            closing.append(in_thread(fd.close))
            wait_until(lambda: fd.state is rcfd.State.CLOSING, "the close began")
            held.end()  # its release leaves a tombstone; ours is still counted

        holders.meanwhile = meanwhile
    ran: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        if form == "do":
            fd.do(ran.append)
        else:
            ran.append(_borrow_with(fd))
    assert ran == []
    if held is not None:
        assert held.outcome.error is None
        thread, outcome = closing[0]
        assert isinstance(outcome, type(held.outcome))
        assert outcome.done.wait(WAIT), "the close never saw the interrupted borrow return"
        thread.join(WAIT)
        assert outcome.error is None
    else:
        assert fd.borrow_count == 0
        fd.close(timeout=WAIT)
    assert (state_of(fd), fd.borrow_count, len(closer.calls)) == (rcfd.State.CLOSED, 0, 1)


# -- dup -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: forking with threads
def test_dup_takes_the_lowest_free_number_as_os_dup_does() -> None:
    # Kills _fd.xǁFDǁdup__mutmut_21 (F_DUPFD_CLOEXEC from 1, not 0): the
    # duplicate is the lowest free number, 0 included. Closing 0 would
    # disturb the test runner, so a forked child does it.
    fd = rcfd.FD(os.eventfd(0))
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            signal.alarm(int(WAIT))  # a hang ends the child
            os.close(0)
            dup = fd.dup()
            code = 0 if dup.do(lambda rawfd: rawfd) == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    # Here too (0 is open): the lowest free number, as os.dup picks it. (This
    # also shows mutmut, which cannot see into the child, that the test uses dup.)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    dup = fd.dup()
    assert dup.do(lambda rawfd: rawfd) == lowest_free
    dup.close()
    fd.close()
    assert os.waitstatus_to_exitcode(status) == 0, "the duplicate was not descriptor 0"


class _FailingRegistry(rcfd.LifetimeRegistry):
    """A registry that fails to record inits once `failing` is set (as the
    allocation of the init stack can, with MemoryError)."""

    failing = False

    def _record_init(self, key: int, rawfd: int) -> None:
        if self.failing:
            raise MemoryError("test: cannot record the init")
        super()._record_init(key, rawfd)


def test_a_dup_whose_new_fd_fails_closes_the_duplicate() -> None:
    # Kills _fd.xǁFDǁdup__mutmut_30 (os.close(None) in dup's error path): if
    # the new FD cannot be made, the duplicate number is closed, not leaked,
    # and the error is the one that stopped it.
    registry = _FailingRegistry()
    fd = rcfd.FD(os.eventfd(0), registry=registry)
    lowest_free = os.dup(0)
    os.close(lowest_free)  # the number the duplicate will get
    registry.failing = True
    with pytest.raises(MemoryError, match="cannot record"):
        fd.dup()
    registry.failing = False
    with pytest.raises(OSError):
        os.fstat(lowest_free)  # closed again
    assert (fd.state, fd.borrow_count) == (rcfd.State.OPEN, 0)
    fd.close()
