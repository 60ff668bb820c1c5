"""rcfd.FD on a real eventfd, driven by one real thread per logical thread.

What the Python driver (conformance.drivers.rcfd_driver), the in-process tests
(tests/_model_harness.py) and the catalog's replayer (mutants/_harness.py)
run. A command goes to its thread's queue; the thread makes the production
call and reports what happened. A borrow's fn, and a pausing callback, keep
serving their thread's queue until an end_borrow or end_callback says how to
exit, so borrows stay open across steps and a callback's calls into its own FD
are real calls from inside it. The side doors (specs/traces.md): hold_borrow
(a generator enters `with fd.borrow()` and suspends), release_held (the oldest
is closed), drop (the FD and those generators lose their last reference on
the calling thread: without generators the collector runs the finalizer; with
them, their finalizers and the FD's are called by hand in the order the
argument says), init pauses (close_func keeps its FD, reachable again when the
finalizer runs it). No worker frame keeps the FD past its call, and `fd_lock`
orders every read of `self.fd` with a drop's swap.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Generator
from functools import partial
from typing import Literal

import rcfd
from conformance.replay import EXPECT_S, EXPIRES_S, POLL_S, Report
from model.history import History, collector_off, warnings_logged
from model.vocabulary import OK, OK_DUP, OK_FN, OK_RAWFD

# A registry's counts, in the order observe() reports and the harnesses log them.
COUNTS = ("initialized", "closed", "close_failed", "detached", "finalized")
# close's arguments (specs/traces.md): no timeout, one that expires, a negative one.
TIMEOUTS = {"none": None, "expires": EXPIRES_S, "invalid": -1.0}


def counts(stats: rcfd.FDStats) -> str:
    """A registry's COUNTS as a history's registry line says them."""
    return " ".join(f"{k}={getattr(stats, k)}" for k in COUNTS)


class FnError(Exception):
    """What a borrow's fn raises for end_borrow(raise)."""


class FnInterrupt(BaseException):
    """What a borrow's fn raises for end_borrow(interrupt): a BaseException
    that is not an Exception, like KeyboardInterrupt, without being one."""


class CloseFuncError(OSError):
    """What close_func raises, after really closing the number."""


class OnClosingError(Exception):
    """What on_closing raises for end_callback(raise)."""


FN_VALUE = object()  # what every fn returns, so do() can be seen to pass it through

# Exceptions in the traces' vocabulary; subclasses first.
LABELS: dict[type[BaseException] | tuple[type[BaseException], ...], str] = {
    rcfd.CloseInsideBorrowError: "err:CloseInsideBorrow",
    rcfd.CloseInsideCloseFuncError: "err:CloseInsideCloseFunc",
    rcfd.UninitializedFDError: "err:UninitializedFD",
    rcfd.ClosedFDError: "err:ClosedFD",
    rcfd.MultipleInitError: "err:MultipleInit",
    TimeoutError: "err:Timeout",
    FnError: "err:FnError",
    FnInterrupt: "err:FnInterrupt",
    CloseFuncError: "err:CloseFuncError",
    OnClosingError: "err:OnClosingError",
    (TypeError, ValueError): "err:InvalidArgument",
}


def label(exc: BaseException) -> str:
    """An exception in the traces' vocabulary."""
    found = (text for kind, text in LABELS.items() if isinstance(exc, kind))
    return next(found, f"err:unexpected {type(exc).__name__}: {exc}")


# (call id, command as (call, arg), a barrier to wait at first, for raced calls)
Item = tuple[int, str, str, threading.Barrier | None]


class Worker(threading.Thread):
    """One logical thread. Its queue carries items, or None to stop."""

    def __init__(self, index: int, owner: RcfdThreads) -> None:
        super().__init__(name=f"rcfd-logical-T{index}", daemon=True)
        self.index = index
        self.owner = owner
        self.commands: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        # What each nested serve() waits for, innermost last: "end_borrow"
        # inside a borrow's fn, "end_callback" inside a paused callback.
        self.levels: list[str] = []

    def run(self) -> None:
        self.owner.history.names[threading.get_ident()] = f"T{self.index}"
        self.serve("")

    def serve(self, until: str) -> str:
        """Run commands until `until` comes (returns its argument) or stop."""
        if until:
            self.levels.append(until)
        try:
            while True:
                item = self.commands.get()
                if item is None:
                    return "return"
                call_id, call, arg, start = item
                if start is not None:
                    start.wait(EXPECT_S)  # raced: both threads call at once
                if call in ("end_borrow", "end_callback"):
                    self.owner.report(Report("returned", call_id, self.index, OK))
                    if call != until:
                        self.owner.anomaly(f"T{self.index}: {call} while waiting for {until}")
                    return arg
                self.owner.history.log("call", f"{call}({arg})")
                try:
                    result = self.owner.call(self, call_id, call, arg)
                except BaseException as exc:  # every outcome is a report, even FnInterrupt
                    result = label(exc)
                self.owner.history.log("return", result)
                self.owner.report(Report("returned", call_id, self.index, result))
        finally:
            if until:
                self.levels.pop()


class RcfdThreads:
    """The production side: FD, eventfd, registry, logical threads, warnings."""

    def __init__(
        self, threads: int, sink: Callable[[Report], None], fd_class: type[rcfd.FD] = rcfd.FD
    ) -> None:
        """`sink` (self.report) receives every report, from whichever thread makes it;
        `fd_class` is rcfd.FD, or a subclass that plants a bug."""
        self.registry = rcfd.LifetimeRegistry()
        self.rawfd = os.eventfd(0, os.EFD_CLOEXEC)
        self.fd_lock = threading.Lock()
        self.fd: rcfd.FD | None = fd_class()
        self.report = sink
        self.held: list[Generator[int, None, None]] = []  # suspended generators holding borrows
        self.graveyard: list[rcfd.FD] = []  # finalized by hand: kept until shutdown
        self.raw_closed = False
        # The ResourceWarning filter of a drop ("error": the finalizer raises it).
        self.drop_warnings: Literal["always", "error"] = "always"
        # What happened, for model.guarantees' checks of the production FD.
        self.history = History()
        # Global for the run: the finalizer and a late close_func warn from
        # whichever thread runs them. Collect first, so that FDs dropped
        # earlier are finalized (and warn) before the log opens.
        gc.collect()
        self._warnings = warnings_logged(self.history)
        self._warnings.__enter__()
        self.workers = [Worker(i, self) for i in range(threads)]
        for worker in self.workers:
            worker.start()

    # -- reports -----------------------------------------------------------

    def anomaly(self, what: str) -> None:
        self.report(Report("anomaly", result=what))

    def pause(self, callback: str) -> str:
        """Pause the running callback: its thread takes calls until
        end_callback; returns how the callback must end."""
        worker = threading.current_thread()
        if not isinstance(worker, Worker) or worker.owner is not self:
            self.anomaly(f"{callback} ran on {worker.name}, not on a logical thread")
            return "return"
        self.report(Report("paused", thread=worker.index, result=callback))
        return worker.serve("end_callback")

    # -- the callbacks ---------------------------------------------------------

    def close_func(self, does: str, keep: rcfd.FD | None, rawfd: int) -> None:
        """close_func as init's argument says ("ok", "raises" or "pauses"). A
        pausing one keeps its FD (`keep`: a reference cycle through
        FD._close_func), so that the finalizer's run can reach it again."""
        if rawfd != self.rawfd:  # a dup's copy, closed by the command that made it
            os.close(rawfd)
            return
        wrong = ""  # said after fd_lock is let go: a replayer logs it under its history's lock
        with self.fd_lock:
            if keep is not None and self.fd is None:
                self.fd = keep  # run by the finalizer: reachable again
            fd = self.fd
            if fd is not None and (fd.borrow_count or fd.state is not rcfd.State.CLOSING):
                wrong = f"close_func ran in {fd.state.name} with {fd.borrow_count} borrow(s)"
            del fd
        if wrong:
            self.anomaly(wrong)
        self.history.log("close_func", f"rawfd={rawfd}")
        raises = does == "raises"
        if does == "pauses":
            raises = self.pause("close_func") == "raise"
        if self.raw_closed:
            self.anomaly("close_func ran on a number already closed")
        else:
            os.close(rawfd)
            self.raw_closed = True
        error = CloseFuncError(errno.EIO, "close_func failed (as the trace asked)")
        self.history.log("close_func_end", f"raised {label(error)}" if raises else "")
        if raises:
            raise error

    def on_closing(self, pauses: bool, rawfd: int) -> None:
        with self.fd_lock:
            fd = self.fd
            wrong = fd is None or fd.state is not rcfd.State.CLOSING or not fd.borrow_count
            del fd
        if wrong:  # (after fd_lock, as close_func's)
            self.anomaly("on_closing ran outside CLOSING or without the closer's borrow")
        self.history.log("on_closing", f"rawfd={rawfd}")
        error = OnClosingError("on_closing failed (as the trace asked)")
        raises = pauses and self.pause("on_closing") == "raise"
        self.history.log("on_closing_end", f"raised {label(error)}" if raises else "")
        if raises:
            raise error

    # -- commands ----------------------------------------------------------

    def send(self, call_id: int, thread: int, call: str, arg: str) -> None:
        self.workers[thread].commands.put((call_id, call, arg, None))

    def race(self, first: tuple[int, int, str, str], second: tuple[int, int, str, str]) -> None:
        """Send two (call id, thread, call, arg) that start together, with the
        GIL handed over as often as CPython allows, so that one can run in the
        middle of the other."""
        start = threading.Barrier(2)
        for call_id, thread, call, arg in (first, second):
            self.workers[thread].commands.put((call_id, call, arg, start))

    def call(self, worker: Worker, call_id: int, call: str, arg: str) -> str:
        if call == "drop":
            self._drop(arg)
            return OK
        with self.fd_lock:
            fd = self.fd
        assert fd is not None, "a command for a dropped FD"
        if call == "init":
            does = arg if arg in ("raises", "pauses") else "ok"
            close_func = partial(self.close_func, does, fd if does == "pauses" else None)
            on_closing = partial(self.on_closing, arg == "on_closing_pauses")
            fd.init(self.rawfd, close_func, on_closing=on_closing)
            return OK
        if call == "track_lifetime":
            fd.track_lifetime(self.registry)
            return OK
        if call == "detach":
            number = fd.detach()
            return OK_RAWFD if number == self.rawfd else f"ok:{number}"
        if call == "close":  # the catalog's steps give the timeout itself
            fd.close(TIMEOUTS[arg] if arg in TIMEOUTS else float(arg))
            return OK
        if call == "dup":
            fd.dup().close()  # the copy: its close_func call is on its own number
            return OK_DUP
        if call == "hold_borrow":
            generator = holding(fd)
            next(generator)  # raises if the borrow is refused
            self.held.append(generator)
            return OK
        if call == "release_held":
            self.held.pop(0).close()  # GeneratorExit leaves the `with`: the release
            return OK

        def fn(rawfd: int) -> object:
            entered = OK if rawfd == self.rawfd else f"fn got fd {rawfd}, not {self.rawfd}"
            self.history.log("fn", f"rawfd={rawfd}")
            self.report(Report("entered", call_id, worker.index, entered))
            how = worker.serve("end_borrow")
            kinds: dict[str, type[BaseException]] = {"raise": FnError, "interrupt": FnInterrupt}
            error = kinds[how](f"end_borrow({how})") if how in kinds else None
            self.history.log("fn_end", "" if error is None else f"raised {label(error)}")
            if error is not None:
                raise error
            return FN_VALUE

        if arg == "do":
            value = fd.do(fn)
        else:
            with fd.borrow() as rawfd:
                value = fn(rawfd)
        return OK_FN if value is FN_VALUE else f"ok:{value!r}"

    def _drop(self, order: str) -> None:
        """Lose the last reference on this thread; see the module docstring."""
        unraisable: list[str] = []
        hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
        try:  # the collector off: no other thread's allocation may run it meanwhile
            with collector_off(), warnings.catch_warnings():
                warnings.simplefilter(self.drop_warnings, ResourceWarning)
                self._let_go(order)
        finally:
            sys.unraisablehook = hook
        for what in unraisable:  # a warning raised as an error is still the warning
            if what.startswith("ResourceWarning"):
                self.history.log("warning", f"unraisable in the finalizer: {what}")
            else:
                self.anomaly(f"unraisable in the finalizer: {what}")

    def _let_go(self, order: str) -> None:
        """_drop's part with the collector off: the FD and its generators go."""
        with self.history.lock, self.fd_lock:  # no observer holds the FD as it goes
            fd, self.fd = self.fd, None
        self.history.log("drop", "GONE" if fd is None else fd.state.name)
        generators, self.held = self.held, []
        if generators and fd is not None:
            first = order == "holders-first"
            for generator in generators if first else ():
                generator.close()  # GeneratorExit: the `with` exits, the borrow ends
            fd.__del__()  # the FD's finalizer, called by hand
            for generator in () if first else generators:
                generator.close()
            # A collector finalizes an object once; CPython would call
            # __del__ again when a hand-finalized object goes, and that
            # second call could mend what the first got wrong.
            self.graveyard.append(fd)
        del fd, generators
        gc.collect()  # with no generator: the finalizer runs here, or ran as fd went

    # -- observation -------------------------------------------------------

    def observe(self) -> dict[str, object]:
        stats = self.registry.fd_stats()
        with self.fd_lock:
            fd = self.fd
            if fd is None:
                state, borrows, waiting = "GONE", 0, 0
            else:
                state, borrows = fd.state.name, fd.borrow_count
                # The closers registered to be woken at CLOSED (specs/traces.md,
                # `after`), which rcfd keeps private on its close record
                # (rcfd/_closing.py): this driver is a test hook, as a port's is.
                closing = fd._closer
                waiting = 0 if closing is None else closing.waiting_closers()
            del fd
        events = list(self.history.events)  # close_func and on_closing each log once a call
        said = [ev.detail for ev in events if ev.what == "warning"]
        unclosed = f"ResourceWarning: unclosed <rcfd.FD OPEN fd={self.rawfd} "
        failed = "RuntimeWarning: rcfd: close_func raised"
        return {
            "state": state,
            "borrows": borrows,
            "close_func_calls": sum(ev.what == "close_func" for ev in events),
            "on_closing_calls": sum(ev.what == "on_closing" for ev in events),
            "closers_waiting": waiting,
            "registry": {k: getattr(stats, k) for k in (*COUNTS, "in_flight")},
            "resource_warnings": sum(1 for w in said if w.startswith(unclosed)),
            "runtime_warnings": sum(1 for w in said if w.startswith(failed)),
        }

    # -- teardown ----------------------------------------------------------

    def shutdown(self, wait_s: float = EXPECT_S) -> list[str]:
        """End every borrow and callback, close the held generators and the FD,
        stop the threads, close the number. Never raises (it also runs after a
        failure, when production may be stuck); returns what went wrong."""
        left: list[str] = []
        try:
            # One level at a time: ending one may pause another callback.
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                ends = [(w, len(w.levels)) for w in self.workers if w.levels]
                if not ends:
                    break
                for worker, _ in ends:
                    worker.commands.put((-1, worker.levels[-1], "return", None))
                while time.monotonic() < deadline and all(len(w.levels) == n for w, n in ends):
                    time.sleep(POLL_S)
            for generator in self.held:
                with contextlib.suppress(BaseException):
                    generator.close()
            self.held = []
            with self.fd_lock:
                fd = self.fd
            if fd is not None and fd.state is rcfd.State.OPEN:
                while fd.borrow_count and time.monotonic() < deadline:
                    time.sleep(POLL_S)
                try:
                    fd.close(timeout=wait_s)
                except CloseFuncError:
                    pass  # init(raises) asked for it
                except BaseException as exc:  # teardown after a failure: report, go on
                    left.append(f"close at teardown: {exc!r}")
            del fd
            for worker in self.workers:
                worker.commands.put(None)
            for worker in self.workers:
                worker.join(wait_s)
                if worker.is_alive():
                    left.append(f"{worker.name} did not stop")
        finally:
            with self.fd_lock:
                self.fd = None
            self.graveyard.clear()
            if not self.raw_closed:
                with contextlib.suppress(OSError):
                    os.close(self.rawfd)
                self.raw_closed = True
            self._warnings.__exit__(None, None, None)
        return left


def holding(fd: rcfd.FD) -> Generator[int, None, None]:
    """A generator that holds a borrow of `fd` while it is suspended."""
    with fd.borrow() as rawfd:
        yield rawfd
