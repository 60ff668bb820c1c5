"""A KeyboardInterrupt at every point where CPython can run a signal handler
inside rcfd, one point per run, in the main thread (where handlers run).

CPython runs Python signal handlers only at "eval breaker" checks: when a
function starts (RESUME), right after a call returns, and on a backward jump.
A trace function with f_trace_opcodes raises the interrupt at the k-th such
point of rcfd's own code (rcfd/*.py), for k = 0, 1, 2, ... until a run
completes with no point left; each run then checks the invariants a real
signal must not break (specs/cpython.md, "Signals"): the borrow count is exact,
and the close happens exactly once, or is still possible, never lost.

Where the exception handler that covers a call differs from the one covering
the next instruction (a call that ends a `try` block), a raise from the trace
function would be attributed to the wrong block; those points are skipped and
counted, and are left to the random real-signal test in test_signals.py.
"""

from __future__ import annotations

import asyncio
import dis
import gc
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

import rcfd
from tests.support import CountingClose, HeldBorrow, in_thread

WAIT = 10.0
RCFD_DIR = os.path.dirname(rcfd.__file__)
CALLS = frozenset({"CALL", "CALL_KW", "CALL_FUNCTION_EX", "PRECALL"}) - {"PRECALL"}


class Injected(KeyboardInterrupt):
    """The interrupt the tracer raises (a KeyboardInterrupt, as from SIGINT)."""


_handlers: dict[CodeType, list[tuple[int, int, int]]] = {}


def _handler_at(code: CodeType, offset: int) -> int | None:
    table = _handlers.get(code)
    if table is None:
        parse: Callable[[CodeType], Any] = getattr(dis, "_parse_exception_table")  # noqa: B009
        table = _handlers[code] = [(e.start, e.end, e.target) for e in parse(code)]
    best = None
    for start, end, target in table:
        if start <= offset < end:
            best = target  # innermost entries do not overlap in 3.11+: first match
            break
    return best


class Injector:
    def __init__(self, k: int) -> None:
        self.k = k
        self.seen = 0
        self.skipped = 0
        self.fired = False
        self.prev: dict[int, int] = {}  # id(frame) -> offset of the last instruction
        self.python_callee: set[int] = set()  # frames whose last call entered rcfd code
        self.log: list[str] = []  # the points passed, for a failure message
        self.known_limit = False  # the point was Borrow.__exit__'s entry (documented)
        self.fired_at: tuple[CodeType, int] | None = None  # where the interrupt was raised
        # While set, rcfd code called by the test itself (fd.state in a polling loop)
        # is neither traced nor counted: how often the test polls must not move point k.
        self.paused = False

    def global_trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if self.paused or not frame.f_code.co_filename.startswith(RCFD_DIR):
            return None
        frame.f_trace_opcodes = True
        # A Python callee: its caller resumes after the call with no check
        # (an inlined call returns without one), only RESUME checks.
        if frame.f_back is not None:
            self.python_callee.add(id(frame.f_back))
        return self.local_trace

    def local_trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "return":  # frame ids are reused: forget this one
            self.prev.pop(id(frame), None)
            self.python_callee.discard(id(frame))
        if event == "line":
            frame.f_trace_opcodes = True  # set in the 'call' event, 3.13 ignores it
        if event != "opcode" or self.fired:
            return self.local_trace
        code = frame.f_code
        offset = frame.f_lasti
        prev = self.prev.get(id(frame))
        self.prev[id(frame)] = offset
        if prev is None:
            point = True  # function entry: RESUME checks before the body runs
        else:
            prev_op = dis.opname[code.co_code[prev]]
            point = prev_op == "JUMP_BACKWARD" or (
                prev_op in CALLS and id(frame) not in self.python_callee
            )
        self.python_callee.discard(id(frame))
        if prev is not None and point and _handler_at(code, prev) != _handler_at(code, offset):
            self.skipped += 1
            point = False
        if dis.opname[code.co_code[offset]] == "BEFORE_WITH":
            point = True  # a contended lock.acquire() runs handlers before it locks
        if point:
            self.log.append(f"{code.co_name}+{offset}")
            if self.seen == self.k:
                self.fired = True
                self.fired_at = (code, offset)
                raise Injected(f"point {self.k} at {code.co_name}+{offset}")
            self.seen += 1
        return self.local_trace


def sweep(scenario: Callable[[Injector], None], limit: int = 400) -> tuple[int, int, int]:
    """Run `scenario` with the interrupt at point 0, 1, ... until none fires;
    returns (points, points skipped, points at the documented limit)."""
    limits = 0
    for k in range(limit):
        injector = Injector(k)
        gc.collect()  # no finalizer of an earlier run's FD may take the interrupt
        scenario(injector)
        limits += injector.known_limit
        if not injector.fired:
            return k, injector.skipped, limits
    pytest.fail(f"more than {limit} interrupt points")


def traced(injector: Injector, call: Callable[[], object]) -> BaseException | None:
    """call() with the injector on; returns the exception it raised, if any."""
    sys.settrace(injector.global_trace)
    try:
        call()
    except BaseException as exc:
        return exc
    finally:
        sys.settrace(None)
    return None


def open_fd() -> tuple[rcfd.FD, CountingClose]:
    closer = CountingClose()
    fd = rcfd.FD(os.eventfd(0), closer)
    closer.fd = fd
    return fd, closer


def settle(fd: rcfd.FD, closer: CountingClose, error: BaseException | None) -> None:
    """The invariants after an interrupted call, once no borrow runs anywhere."""
    assert error is None or isinstance(error, Injected), error
    assert fd.borrow_count == 0, f"{error}: borrow count {fd.borrow_count} with no borrow running"
    assert fd.state is not rcfd.State.CLOSING, f"{error}: lost close: {fd}"
    if fd.state is rcfd.State.OPEN:
        fd.close(timeout=WAIT)
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1, f"{error}: {closer.calls}"
    # No lock of the FD's is left held: another thread's close() is refused at
    # once, rather than wait for good for a lock the interrupted call kept.
    _, second = in_thread(fd.close)
    assert second.done.wait(WAIT), f"{error}: a lock of {fd} was left held"
    assert isinstance(second.error, rcfd.ClosedFDError), f"{error}: {second.error!r}"
    shared_lock_free(error)


def shared_lock_free(error: BaseException | None) -> None:
    """Nor is the lock every FD shares for init and for making its own lock:
    another thread's init() and first close() of a new FD go through it."""
    other = rcfd.FD()

    def init_and_close() -> None:
        other.init(os.eventfd(0))
        other.close()

    _, third = in_thread(init_and_close)
    assert third.done.wait(WAIT), f"{error}: the shared lock (rcfd._fd._SHARED_LOCK) was left held"
    assert third.error is None, f"{error}: {third.error!r}"


def _at_function_entry(where: tuple[CodeType, int] | None, name: str) -> bool:
    """Whether `where` is the entry point of a function called `name`: the first
    instruction after RESUME, where the tracer sees the function start (RESUME is
    2 bytes up to 3.14 and 4 on 3.15, so the offset is read from the bytecode)."""
    if where is None or where[0].co_name != name:
        return False
    code, offset = where
    instructions = list(dis.get_instructions(code))
    resume = next(i for i, ins in enumerate(instructions) if ins.opname == "RESUME")
    return offset == instructions[resume + 1].offset


def _borrow_then_closed_by_other_thread(
    form: str, call: str = "close"
) -> Callable[[Injector], None]:
    """Main holds the last borrow while another thread's close() (or an
    aclose() in that thread's event loop) waits for it; the interrupt lands
    anywhere in main's borrow, release, RUN_CLOSE and wake-up: aclose's
    waker is Python code, which an interrupt can cut at its entry."""

    def scenario(injector: Injector) -> None:
        fd, closer = open_fd()
        inside = threading.Event()
        results: list[BaseException | None] = []

        def other() -> None:
            assert inside.wait(WAIT)
            try:
                if call == "aclose":
                    asyncio.run(fd.aclose())
                else:
                    fd.close()
                results.append(None)
            except BaseException as exc:
                results.append(exc)

        t = threading.Thread(target=other, daemon=True)  # a failure must not hang pytest
        t.start()

        def body(_: int) -> None:
            inside.set()
            # Polling reads fd.state, which is rcfd code: paused, it adds no points, so
            # point k is the same point in every run however long the close takes to begin.
            injector.paused = True
            try:
                pause = threading.Event()
                deadline = time.monotonic() + WAIT
                while fd.state is not rcfd.State.CLOSING:
                    assert time.monotonic() < deadline, "the other thread's close() never began"
                    pause.wait(0.0002)
            finally:
                injector.paused = False

        def borrow() -> None:
            if form == "do":
                fd.do(body)
            else:
                with fd.borrow() as rawfd:
                    body(rawfd)

        error = traced(injector, borrow)
        inside.set()  # if the interrupt struck before the borrow began
        exit_name = rcfd.Borrow.__exit__.__name__  # borrow_exit on the no-GIL path
        if form == "borrow" and _at_function_entry(injector.fired_at, exit_name):
            # The documented limit (specs/cpython.md, "Signals"): CPython checks
            # for signals as any Python function starts, Borrow.__exit__
            # included, before its first line can release anything. The
            # borrow is left behind; do() has no such gap. Show it, then end
            # that borrow by hand so the waiting close() can finish.
            assert fd.borrow_count == 1 and fd.state is rcfd.State.CLOSING
            injector.known_limit = True
            fd._release(threading.get_ident())
        t.join(WAIT)
        assert not t.is_alive(), f"{error}: {call}() never returned: {fd}"
        settle(fd, closer, error)

    return scenario


def _close_waiting_for_other_thread(event: str) -> Callable[[Injector], None]:
    """Main closes (or detaches) while another thread holds a borrow."""

    def scenario(injector: Injector) -> None:
        fd, closer = open_fd()
        held = HeldBorrow(fd)
        timer = threading.Timer(0.001, held.end)
        timer.daemon = True  # a failure must not hang pytest
        timer.start()
        got: list[int] = []
        error = traced(injector, fd.close if event == "close" else lambda: got.append(fd.detach()))
        timer.join(WAIT)
        assert held.outcome.done.wait(WAIT)
        if got:  # detach handed the number back: ours to close
            assert fd.state is rcfd.State.CLOSED and closer.calls == []
            os.close(got[0])
            return
        settle(fd, closer, error)

    return scenario


def _error_nobody_waits_for(injector: Injector) -> None:
    """The owner's close timed out; main's release, the last, runs a
    close_func that raises: its error is nobody's, and is warned. An
    interrupt anywhere in that (the warning included: its message and its
    stack level are Python code) must not lose it: reported once, twice at
    worst, never zero times."""
    fd, closer = open_fd()
    closer.error = OSError(5, "EIO from close_func")
    closer.fd = None  # close_func reads no rcfd code: no point inside it, where
    # an interrupt would be close_func's own exception (and raised, not warned)

    def body(_: int) -> None:
        injector.paused = True
        try:  # the owner leaves at its deadline, while this borrow runs
            owner = in_thread(lambda: fd.close(timeout=0))[1]
            assert owner.done.wait(WAIT) and isinstance(owner.error, TimeoutError)
        finally:
            injector.paused = False

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        error = traced(injector, lambda: fd.do(body))
        if fd.state is rcfd.State.OPEN:  # interrupted before the borrow began
            assert isinstance(error, Injected), error
            closer.error = None
            fd.close(timeout=0)  # no borrow: nothing to wait for
            return
    reported = [w for w in seen if "EIO from close_func" in str(w.message)]
    assert 1 <= len(reported) <= 2, f"{error}: close_func's error reported {len(reported)} times"
    assert error is None or isinstance(error, Injected), error
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1, f"{error}: {fd}"
    shared_lock_free(error)


def _close_alone(injector: Injector) -> None:
    fd, closer = open_fd()
    error = traced(injector, fd.close)
    settle(fd, closer, error)


def _create_then_close(injector: Injector) -> None:
    """FD(rawfd) then close(), the interrupt anywhere in either. An FD() that
    raised never owned the number: nothing may close it (its caller still
    owns it and may close it itself), now or when the half-made FD is freed."""
    rawfd, closer, made = os.eventfd(0), CountingClose(), []

    def create_and_close() -> None:
        made.append(rcfd.FD(rawfd, closer))
        made[0].close()

    error = traced(injector, create_and_close)
    if made:
        closer.fd = made[0]
        settle(made[0], closer, error)
        return
    assert isinstance(error, Injected), error
    gc.collect()
    assert closer.calls == [], f"{error}: FD() raised, yet closed the number: {closer.calls}"
    os.close(rawfd)
    shared_lock_free(error)


SCENARIOS: dict[str, Callable[[Injector], None]] = {
    "do-last-borrow": _borrow_then_closed_by_other_thread("do"),
    "borrow-last-borrow": _borrow_then_closed_by_other_thread("borrow"),
    "do-last-borrow-aclose": _borrow_then_closed_by_other_thread("do", "aclose"),
    "close-waits": _close_waiting_for_other_thread("close"),
    "detach-waits": _close_waiting_for_other_thread("detach"),
    "close-alone": _close_alone,
    "error-nobody-waits-for": _error_nobody_waits_for,
    "create-then-close": _create_then_close,
}


def _delivers_opcode_events() -> bool:
    """Whether this interpreter sends 'opcode' events to a frame that turns
    them on from its first 'line' event (3.11 and 3.13 do; 3.12.1 only after
    a first such frame)."""
    events: list[str] = []

    def local(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        events.append(event)
        return local

    def probe() -> int:
        x = 1
        return x + 1

    # Twice: 3.12 starts sending them only once some frame has asked before.
    for _ in range(2):
        events.clear()
        sys.settrace(lambda frame, event, arg: local if frame.f_code is probe.__code__ else None)
        try:
            probe()
        finally:
            sys.settrace(None)
    return "opcode" in events


@pytest.mark.skipif(sys.gettrace() is not None, reason="needs sys.settrace for itself")
# A finalizer that fails on what an interrupt left (an FD() cut at its entry,
# with no field set) prints "Exception ignored": a test run that turns warnings
# into errors fails on it, so it fails here too.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_an_interrupt_at_any_point_loses_no_borrow_and_no_close(name: str) -> None:
    if not _delivers_opcode_events():
        pytest.skip(
            f"Python {sys.version.split()[0]} sends no opcode trace events to a frame "
            "that enables them mid-call; test_signals.py's real SIGINTs still run"
        )
    points, skipped, limits = sweep(SCENARIOS[name])
    assert points > 5  # the sweep really reached into rcfd
    assert limits == (1 if name == "borrow-last-borrow" else 0)
    print(
        f"\n{name}: {points} interrupt points, {skipped} skipped (handler boundary), "
        f"{limits} at the documented Borrow.__exit__ limit"
    )
