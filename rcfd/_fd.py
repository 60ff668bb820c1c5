"""FD: one raw file descriptor shared between threads, closed exactly once.

The rules live in rcfd._lifecycle.step; this module applies them and does
what the outcome says. A borrow takes no lock: its entry is one insert into
`_holders`, an array that close() *freezes* (a memoryview export makes any
resize fail atomically with BufferError), so "still OPEN? then count me" is a
single step no other thread can split. The lock orders the transitions only,
and is never held across a caller's fn, close_func or on_closing. An FD has
no lock of its own until it is closed: the module's _SHARED_LOCK stands in
for it before (init, track_lifetime), so an open FD carries none.

Invariants:
  _holders is frozen  <=>  state is not OPEN (UNINIT uses the shared frozen
    _NO_BORROWS; CLOSING and CLOSED keep their closer's freeze forever);
  _holders is _NO_BORROWS  <=>  state is UNINIT: init() publishes the holders
    last (its linearization point), so `state` reads them before _state;
  running borrows == len(_holders) - len(_closer.released): in OPEN a release
    removes its entry (one atomic remove, no lock); once frozen it appends a
    tombstone to _closer.released instead (one atomic +=, no lock);
  _closer is not None  <=>  _state is CLOSING or CLOSED, except inside the
    locked section that begins a close (set before the freeze, so a release
    that meets the freeze always finds it);
  close_func is called by exactly one thread: the one whose release found
  the count at zero in CLOSING first, under the lock (_Closer.claimed).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import warnings
from array import array
from collections.abc import Callable
from types import CoroutineType as _CoroutineType
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar, cast

from rcfd import _fork
from rcfd._errors import (
    ClosedFDError,
    CloseInsideBorrowError,
    CloseInsideCloseFuncError,
    FDError,
    MultipleInitError,
    UninitializedFDError,
)
from rcfd._lifecycle import REFUSALS, Event, Outcome, State, Transition, step
from rcfd._registry import LifetimeRegistry, Release, current_registry

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

# A borrow's insert, a release's remove, a tombstone's += and the freeze are
# each one atomic step only because the GIL runs one C call at a time. Without
# it (a free-threaded build run with PYTHON_GIL=0) two of them could interleave
# inside the array, and nothing here would be safe (specs/rcfd.md, "The GIL").
if not getattr(sys, "_is_gil_enabled", lambda: True)():
    raise ImportError(
        "rcfd needs the GIL: this free-threaded interpreter runs without it; "
        "run it with PYTHON_GIL=1 (or -X gil=1)"
    )

_OPEN = State.OPEN
_get_ident = threading.get_ident

# The holders of every UNINIT FD: empty and frozen for good, so that a borrow
# of an FD that init() has not opened fails in its one insert. init() gives the
# FD an array of its own as its last step.
_NO_BORROWS = array("L")
_NO_BORROWS_FREEZE = memoryview(_NO_BORROWS)

# The lock of every FD that has none of its own yet. It orders the UNINIT
# transitions (init, track_lifetime) and the publication of each FD's own
# lock (FD._guard, at the first close), so that no open FD carries a lock,
# whether FD(rawfd) or FD() + init() made it. Reentrant: init allocates under
# it, and a finalizer that the collector runs there may init another FD.
_SHARED_LOCK = threading.RLock()


class _Closer:
    """What one close (or detach) of one FD needs; exists from CLOSING on.

    Allocated at close time so that an open FD carries none of it.
    """

    __slots__ = (
        "freeze",
        "released",
        "detach",
        "owner_waiting",
        "handed_over",
        "done",
        "error",
        "wakers",
        "claimed",
        "runner",
        "how",
        "to_wake",
        "woken",
        "finalizer",
    )

    def __init__(self, detach: bool, owner_waker: Callable[[], None] | None) -> None:
        # The export that freezes the FD's holders, once made; kept for good: a
        # borrow that read the holders before the close must never find them
        # unfrozen again. A list, so that one C call can make and store it.
        self.freeze: list[memoryview] = []
        self.released: list[int] = []  # one tombstone (thread ident) per frozen-time release
        self.detach = detach  # the owner wants the number back, not closed
        # The caller that began the close still waits (the finalizer never does).
        self.owner_waiting = owner_waker is not None
        self.handed_over = False  # a detach finished: the number is the owner's
        self.done = False  # state is CLOSED; every waker has been or is being called
        self.error: BaseException | None = None  # what close_func raised, for the owner
        self.wakers: list[Callable[[], None]] = []  # called once at CLOSED
        if owner_waker is not None:
            self.wakers.append(owner_waker)
        self.claimed = False  # a release found zero borrows: it runs (ran) close_func
        # (Signals rule) The close path marks each step before taking it, so
        # the claimer can resume it after an interrupt without repeating one:
        self.runner = 0  # ident of the claiming thread; only it resumes the close
        self.how: Release | None = None  # decided: close_func was called, or hand-over
        self.to_wake: list[Callable[[], None]] = []  # the wakers taken at FINISH
        self.woken = 0  # how many of to_wake have been called
        self.finalizer = owner_waker is None  # the finalizer began it: counted "finalized"


class FD:
    """A reference-counted file descriptor (Go: rc.FD).

    Every use of the number is a borrow (`do(fn)` or `with fd.borrow()`);
    `close()` refuses new borrows at once, waits for the running ones, then
    calls close_func exactly once. See specs/rcfd.md for the full contract.
    """

    __slots__ = (
        "_lock",
        "_state",
        "_holders",
        "_rawfd",
        "_close_func",
        "_on_closing",
        "_registry",
        "_closer",
        "__weakref__",  # weakref.ref / weakref.finalize, as sockets and files allow
    )

    def __init__(
        self,
        rawfd: int | None = None,
        close_func: Callable[[int], object] = os.close,
        *,
        registry: LifetimeRegistry | None = None,
        on_closing: Callable[[int], object] | None = None,
    ) -> None:
        """FD() is UNINIT (call track_lifetime, then init); FD(rawfd, ...) is OPEN."""
        self._state = State.UNINIT  # first: __del__ must see a state even if we raise
        # Orders the transitions from OPEN on (never a borrow or a release in
        # OPEN). Made by the first close (_guard): an open FD carries none.
        self._lock: threading.Lock | None = None
        # One thread ident per borrow taken (array "L": a thread ident is an
        # unsigned long); frozen from CLOSING on, see the module docstring.
        self._holders = _NO_BORROWS
        self._rawfd = -1  # valid iff _state is OPEN or CLOSING
        self._close_func: Callable[[int], object] = os.close
        self._on_closing: Callable[[int], object] | None = None
        self._registry: LifetimeRegistry | None = None  # set before init, read at release
        self._closer: _Closer | None = None
        if registry is not None:
            _check_registry(registry)
        if rawfd is None:
            # init() takes the callbacks with the number: kept here, they would
            # make two places to give them and a rule for which one wins.
            _check_callable("FD", "close_func", close_func)
            if close_func is not os.close:
                raise TypeError("FD(): close_func needs a rawfd; pass it to init() instead")
            if on_closing is not None:
                raise TypeError("FD(): on_closing needs a rawfd; pass it to init() instead")
        else:
            _check_init(rawfd, close_func, on_closing)
        # No other thread can see this FD yet: the transitions need no lock.
        if registry is not None:
            self._track(registry)
        if rawfd is not None:
            self._init(rawfd, close_func, on_closing)

    # -- lifecycle -------------------------------------------------------

    def init(
        self,
        rawfd: int,
        close_func: Callable[[int], object] = os.close,
        *,
        on_closing: Callable[[int], object] | None = None,
    ) -> None:
        """UNINIT -> OPEN. Arms the finalizer; reports to the registry."""
        _check_init(rawfd, close_func, on_closing)
        with _SHARED_LOCK:
            self._init(rawfd, close_func, on_closing)

    def track_lifetime(self, registry: LifetimeRegistry) -> None:
        """Report this FD's init and release to `registry`. Only before init()."""
        _check_registry(registry)
        with _SHARED_LOCK:
            self._track(registry)

    def do(self, fn: Callable[[int], T], /) -> T:
        """Call fn(rawfd) under a borrow and return what it returns.

        Raises ClosedFDError at once, without calling fn, once close() began.
        """
        tid = _get_ident()
        holders = self._holders
        try:
            # step(OPEN, n, c, BORROW) == (OPEN, n + 1, OK); every other state
            # refuses, and has frozen the holders: this insert is the whole
            # check-and-count, one atomic step. At the front, so that the
            # release's remove() meets its own entry first, not the entries
            # of threads that the GIL preempted inside their borrows.
            holders.insert(0, tid)
        except BufferError:
            _check_callable("do", "fn", fn)  # a bad fn is reported first
            raise self._refused(holders) from None
        except BaseException:
            # (Signals rule) An interrupt as insert returned: the borrow is
            # counted, and this handler is its record. Give it back.
            self._release(tid)
            raise
        try:
            result = fn(self._rawfd)
        except TypeError:
            # fn is checked only if calling it failed: callable() on every
            # borrow costs more than the check saves. The borrow is released
            # below, so a bad fn still leaves the FD as it was.
            _check_callable("do", "fn", fn)
            raise
        finally:
            try:
                # step(s, n, c, RELEASE) == (s, n - 1, OK) in OPEN: no lock.
                holders.remove(tid)
            except BufferError:
                # Frozen: close began. Count the release with a tombstone (no
                # call before it), then maybe RUN_CLOSE, decided under the lock.
                closer = self._closer
                assert closer is not None  # set before the freeze
                closer.released += (tid,)
                try:
                    self._release_closing()
                except BaseException:  # (Signals rule) resume once after an interrupt
                    self._release_closing()
                    raise
        if type(result) is _CoroutineType:
            # `await fd.do(async_fn)` would run async_fn's body after the
            # borrow ended, on a number that may be closed by then.
            cast("_CoroutineType[object, object, object]", result).close()
            raise TypeError(
                "do: fn returned a coroutine, which would run after the borrow "
                "ended; call a blocking fn (in a thread: asyncio.to_thread(fd.do, fn))"
            )
        return result

    def borrow(self) -> Borrow:
        """`with fd.borrow() as rawfd:` is `fd.do(fn)` as a context manager."""
        borrow: Borrow = _FreshBorrow()  # Borrow(self) without its __init__ frame
        borrow._fd = self
        return borrow

    def close(self, timeout: float | None = None) -> None:
        """Begin closing (new borrows are refused from now on), wait for the
        running borrows, and call close_func once.

        With `timeout`, raises TimeoutError if borrows still run at the
        deadline; the FD stays CLOSING and the last borrow closes it. A close
        by another thread makes this call wait for it, then raise ClosedFDError.
        """
        _check_timeout("close", timeout)
        self._close(Event.CLOSE, _deadline(timeout))

    def detach(self) -> int:
        """Like close(), but hand the raw number back instead of closing it.

        The FD ends CLOSED, the finalizer is disarmed, and the registry counts
        it as detached. The caller now owns the number. If this call is
        interrupted before the hand-over, the number is closed instead.
        on_closing is called, as by close(), so that blocked borrows return.
        """
        return self._close(Event.DETACH, None)

    async def aclose(self, timeout: float | None = None) -> None:
        """close() for asyncio: waits without blocking the event loop.

        The borrow that returns last completes the close and wakes this task.
        Cancelling the task does not cancel the close.
        """
        import asyncio

        _check_timeout("aclose", timeout)
        timeout = _deadline(timeout)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            # Runs in the thread that finished the close. If the loop has
            # closed since (this task stopped waiting, the program moved on),
            # nobody is left to wake, and that thread must not see an error.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, done)

        closer, owner = self._begin_close(Event.CLOSE, wake)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except BaseException as exc:
            if not self._give_up(closer, owner, wake, exc):
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(
                        f"rcfd: aclose() timed out after {timeout}s with "
                        f"{self.borrow_count} borrow(s) running; the FD stays CLOSING "
                        "and the last borrow will close it"
                    ) from None
                raise
            await done  # close_func is running: its end is near; wait for it
        self._outcome(closer, owner, Event.CLOSE)

    def dup(self, *, on_closing: Callable[[int], object] | None = None) -> FD:
        """A new, independent, OPEN FD on a duplicate of the descriptor
        (F_DUPFD_CLOEXEC, taken under a borrow), with the same close_func and
        registry, and the given on_closing (not this FD's: a wake-up such as
        shutdown() acts on the socket both numbers share, so closing the
        duplicate would cut off this FD's borrows)."""
        import fcntl

        if on_closing is not None:
            _check_callable("dup", "on_closing", on_closing)
        newfd = self.do(lambda rawfd: fcntl.fcntl(rawfd, fcntl.F_DUPFD_CLOEXEC, 0))
        try:
            return FD(newfd, self._close_func, registry=self._registry, on_closing=on_closing)
        except BaseException:
            os.close(newfd)
            raise

    # -- observation -----------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (a snapshot: another thread may change it next)."""
        # The holders first: an init in progress has written OPEN already but
        # not yet published them; until it does, borrows and closes see UNINIT.
        return State.UNINIT if self._holders is _NO_BORROWS else self._state

    @property
    def borrow_count(self) -> int:
        """The number of running borrows, nested ones counted each time.
        Exact under the lock; a snapshot without it."""
        closer = self._closer
        return len(self._holders) - (0 if closer is None else len(closer.released))

    def __repr__(self) -> str:
        # A snapshot without the lock: repr must not give an open FD a lock.
        state, rawfd, borrows = self.state, self._rawfd, self.borrow_count
        if state is State.UNINIT:
            return "<rcfd.FD UNINIT>"
        return f"<rcfd.FD {state.name} fd={rawfd} borrows={borrows}>"

    def __enter__(self) -> FD:
        return self

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        # copy.copy, copy.deepcopy and pickle all come here. A copy would be a
        # second owner of one number (close_func twice, the second time on a
        # number the kernel may have reused), or share the first one's holders.
        raise TypeError(
            f"cannot copy or pickle {type(self).__name__!r} object: it owns its "
            "descriptor; dup() makes an independent FD on a duplicate"
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close, unless a close already began elsewhere (then wait for it)."""
        with contextlib.suppress(ClosedFDError):
            self.close()

    def __del__(
        self,
        _warn: Callable[..., None] = warnings.warn,
        _exiting: Callable[[], bool] = sys.is_finalizing,
        _no_borrows: array[int] = _NO_BORROWS,
        _open: State = State.OPEN,
        _closed: State = State.CLOSED,
    ) -> None:
        # FINALIZE: step(s, n, 0, FINALIZE) is IGNORE for every state but OPEN
        # (tests/test_hot_path.py keeps this equal to step). Globals are bound
        # as defaults: this may run while the interpreter tears modules down.
        # (An FD caught in init's window, in a forked child, is still UNINIT.)
        if self._holders is _no_borrows or self._state is not _open:
            return
        try:
            # First, so that it names the FD while it is still OPEN; but a
            # filter that makes it an exception must not stop the close.
            _warn(f"unclosed {self!r}", ResourceWarning, source=self)
        finally:
            if not _exiting():
                self._finalize()
            else:
                # Module teardown: rcfd's globals may be gone, and no other
                # thread runs Python code any more, so no lock and no closer.
                self._state = _closed
                try:
                    self._close_func(self._rawfd)
                finally:
                    if self._registry is not None:
                        self._registry._record_release(id(self), "finalized")

    # -- internals -------------------------------------------------------

    def _guard(self) -> threading.Lock:
        """This FD's lock, made at its first use (a close). It orders the
        transitions from OPEN on; an FD that is only ever borrowed needs none."""
        lock = self._lock
        if lock is None:
            new = threading.Lock()
            with _SHARED_LOCK:  # two threads that both found None agree on one lock
                if self._lock is None:
                    self._lock = new
                lock = self._lock
        return lock

    def _borrows_of(self, tid: int) -> int:
        """The running borrows of thread `tid` (step()'s caller_borrows)."""
        closer = self._closer
        mine = self._holders.count(tid)
        return mine if closer is None else mine - closer.released.count(tid)

    def _step(self, event: Event) -> Transition:
        """step() for the calling thread; raises if it refuses. Needs the lock
        (the shared one for INIT and TRACK, which only an UNINIT FD accepts)."""
        me = _get_ident()
        closer = self._closer
        # The claimer runs close_func between its claim and FINISH; a call it
        # makes on this FD meanwhile can only come from close_func itself.
        in_close_func = (
            closer is not None and closer.claimed and closer.runner == me and not closer.done
        )
        transition = step(self.state, self.borrow_count, self._borrows_of(me), event, in_close_func)
        if transition.outcome in REFUSALS:
            raise self._error(transition.outcome, event)
        return transition

    def _init(
        self,
        rawfd: int,
        close_func: Callable[[int], object],
        on_closing: Callable[[int], object] | None,
    ) -> None:
        """INIT, arguments already checked. Needs _SHARED_LOCK (or an unshared FD)."""
        opened = self._step(Event.INIT).state
        holders = array("L")  # made before any effect: no call between them
        registry = self._registry
        if registry is None:
            registry = self._registry = current_registry.get()
        if registry is not None:
            try:
                registry._record_init(id(self), rawfd)
            except BaseException:
                # (Signals rule) An interrupt as the record returned fails this
                # init, which the registry must then not count (a false leak).
                registry._forget_init(id(self))
                raise
        self._rawfd = rawfd
        self._close_func = close_func
        self._on_closing = on_closing
        self._state = opened
        # Last: from here on borrows succeed, and a close (which takes the FD's
        # own lock, not _SHARED_LOCK) sees OPEN; before it, both see UNINIT.
        self._holders = holders

    def _track(self, registry: LifetimeRegistry) -> None:
        """TRACK, argument already checked. Needs _SHARED_LOCK (or an unshared FD)."""
        self._step(Event.TRACK)
        self._registry = registry

    def _refused(self, holders: array[int]) -> FDError:
        """The error for a borrow whose insert met frozen `holders`."""
        if holders is _NO_BORROWS:
            return UninitializedFDError(Event.BORROW)
        # CLOSING or CLOSED: the lock waits out a close that froze the holders
        # but has not yet written its state.
        with self._guard():
            return self._error(step(self._state, 0, 0, Event.BORROW).outcome, Event.BORROW)

    def _error(self, outcome: Outcome, event: Event) -> FDError:
        state = self._state
        if outcome is Outcome.REFUSE_UNINIT:
            return UninitializedFDError(event)
        if outcome is Outcome.REFUSE_CLOSED:
            return ClosedFDError(event, state)
        if outcome is Outcome.REFUSE_MULTIPLE_INIT:
            return MultipleInitError(event, state)
        if outcome is Outcome.REFUSE_CLOSE_IN_BORROW:
            return CloseInsideBorrowError(event, state)
        return CloseInsideCloseFuncError(event, state)

    def _release(self, tid: int) -> None:
        """End one borrow of thread `tid`; run close_func if it was the last in CLOSING.

        (FD.do and Borrow.__exit__ have this inline: a call would add a point
        where an interrupt leaves the borrow counted, before the first line.)
        """
        try:
            self._holders.remove(tid)  # OPEN: atomic, no lock
        except BufferError:
            closer = self._closer  # frozen: close began (see FD.do)
            assert closer is not None
            closer.released += (tid,)
            try:
                self._release_closing()
            except BaseException:  # (Signals rule) resume once after an interrupt
                self._release_closing()
                raise

    def _finalize(self) -> None:
        """FINALIZE on an OPEN FD: begin the close as close() does, with nobody
        waiting for it. Borrows may still run, held by objects that are garbage
        too (a generator suspended in `with fd.borrow()`, in the same cycle):
        then the last of them runs close_func, as for any close."""
        closer = _Closer(False, None)  # made before the first effect (Signals rule)
        me = _get_ident()
        with self._guard():
            if self._step(Event.FINALIZE).outcome is Outcome.IGNORE:
                return  # closed meanwhile (a finalizer called by hand races a close)
            self._freeze(closer, State.CLOSING)
            if self.borrow_count:
                return  # the last release runs it
            closer.claimed = True
            closer.runner = me
        try:
            self._run_close()
        except BaseException:  # (Signals rule) resume once after an interrupt
            self._run_close()
            raise

    def _freeze(self, closer: _Closer, closing: State) -> None:
        """Attach `closer` and freeze the holders: from here on every borrow is
        refused. Needs the lock. (Signals rule) extend(map()) makes the export
        and stores it in one C call, and the `finally` writes CLOSING if the
        freeze exists (an interrupt after it is an interrupted close) and
        detaches the closer if not (an interrupt before it changed nothing)."""
        self._closer = closer  # before the freeze: a release that meets it finds it
        try:
            closer.freeze.extend(map(memoryview, (self._holders,)))
        finally:
            if closer.freeze:
                self._state = closing
            else:
                self._closer = None

    def _release_closing(self) -> None:
        """A borrow ended after close began (its tombstone is already written).

        step(CLOSING, 1, c, RELEASE) is RUN_CLOSE: the release that leaves no
        borrow runs close_func. Releases write their tombstones without the
        lock, so two of them may both see zero here; the first claims the
        close and the others do nothing.

        (Signals rule) Idempotent, and resumable by the claiming thread: called
        again after an interrupt struck anywhere in it, it finishes the close
        that thread claimed, without calling close_func a second time.
        """
        me = _get_ident()
        with self._guard():
            closer = self._closer
            if closer is None or self.borrow_count:
                return
            if closer.claimed and closer.runner != me:
                return  # another thread runs it
            if closer.done and closer.woken >= len(closer.to_wake):
                return  # finished, every waiter woken
            closer.claimed = True
            closer.runner = me
        self._run_close()

    def _close(self, event: Event, timeout: float | None) -> int:
        waiter = threading.Lock()
        waiter.acquire()
        closer, owner = self._begin_close(event, waiter.release)
        try:
            if not waiter.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError(
                    f"rcfd: close() timed out after {timeout}s with "
                    f"{self.borrow_count} borrow(s) running; the FD stays CLOSING "
                    "and the last borrow will close it"
                )
        except BaseException as exc:
            if not self._give_up(closer, owner, waiter.release, exc):
                raise
            waiter.acquire()  # close_func is running: its end is near; wait for it
        try:
            return self._outcome(closer, owner, event)
        except BaseException as exc:
            # close_func's own error, delivered here, is not the owner leaving:
            # marking it gone would make the thread that ran close_func warn
            # (or re-raise a BaseException) a second time.
            if owner and exc is not closer.error:
                # (Signals rule) an interrupt before the number reached our
                # caller: close a handed-back number rather than orphan it.
                self._owner_left(closer, waiter.release)
            raise

    def _begin_close(self, event: Event, waker: Callable[[], None]) -> tuple[_Closer, bool]:
        """Apply CLOSE/DETACH and register `waker` to be called at CLOSED.

        Returns the FD's closer and whether this caller began the close (its
        owner). The owner holds a borrow until on_closing has returned.
        """
        tid = _get_ident()
        # (Signals rule) All the close needs is made before its first effect,
        # so that the effects run with no call between them.
        new = _Closer(event is Event.DETACH, waker)
        mine = array("L", (tid,))  # the owner's borrow
        lock = self._guard()
        closer = new
        owner = False
        try:
            try:
                with lock:
                    transition = self._step(event)
                    if transition.outcome is Outcome.BEGIN_CLOSE:
                        holders = self._holders
                        holders += mine  # the owner's borrow, and (no call between)
                        owner = True  # its record
                        # An interrupt as _freeze starts leaves the FD OPEN, and
                        # the owner's borrow is given back below.
                        self._freeze(new, transition.state)
                    else:  # WAIT: another thread began the close
                        waiting = self._closer
                        assert waiting is not None
                        closer = waiting
                        closer.wakers.append(waker)
                on_closing = self._on_closing
                if owner and on_closing is not None:
                    # Runs under the owner's borrow: the number cannot be closed under it.
                    on_closing(self._rawfd)
            except BaseException:
                if owner:
                    # The owner leaves by this exception (on_closing raised, or an
                    # interrupt) without waiting: unregister it before the release
                    # that may run close_func, so that close is not handed a number
                    # nobody takes (detach), a waker is not called for nobody, and
                    # a close_func error is warned, not lost.
                    with lock:
                        closer.owner_waiting = False
                        with contextlib.suppress(ValueError):
                            closer.wakers.remove(waker)
                raise
            finally:
                if owner:
                    # _release(tid), inline: an interrupt as a call begins must not
                    # leave the owner's borrow behind.
                    try:
                        self._holders.remove(tid)  # only if the freeze was interrupted
                    except BufferError:
                        closer.released += (tid,)
                        try:
                            self._release_closing()
                        except BaseException:  # (Signals rule) resume once
                            self._release_closing()
                            raise
        except BaseException:
            if owner:
                # (Signals rule) An interrupt after the release above may come
                # after a detach handed the number to us: we leave by exception,
                # so close it rather than orphan it.
                self._owner_left(closer, waker)
            raise
        return closer, owner

    def _owner_left(self, closer: _Closer, waker: Callable[[], None]) -> None:
        """The caller that began the close leaves by an exception: unregister
        it, and close a number a detach already handed to it."""
        with self._guard():
            closer.owner_waiting = False
            with contextlib.suppress(ValueError):
                closer.wakers.remove(waker)
            handed, closer.handed_over = closer.handed_over, False
        if handed:
            self._close_func(self._rawfd)

    def _run_close(self) -> None:
        """The count reached zero in CLOSING: close (or hand over) and wake waiters.

        Only the thread that claimed the close calls this. (Signals rule) It
        is resumable: each step is marked on the closer before it is taken
        (closer.how before close_func, done before the registry, woken before
        each waker), so a run cut short by an interrupt is finished by running
        it again, and no step happens twice.
        """
        closer = self._closer
        assert closer is not None
        if closer.how is None:
            with self._guard():
                # A detach decides and finishes in one locked step: an owner that
                # gives up sees either the number handed over (and closes it) or
                # not yet decided (and then this thread closes it); never orphaned.
                if closer.how is None and closer.detach and closer.owner_waiting:
                    closer.how = "detached"
                    self._finish(closer)
        if closer.how is None:
            closer.how = "closed"  # set before the call: close_func runs at most once
            try:
                self._close_func(self._rawfd)
            except BaseException as exc:
                closer.error = exc
                closer.how = "close_failed"
        if not closer.done:
            with self._guard():
                if not closer.done:
                    self._finish(closer)
        while closer.woken < len(closer.to_wake):
            wake = closer.to_wake[closer.woken]
            closer.woken += 1  # before the call: each waker is called at most once
            wake()
        error = closer.error
        owner_waiting = closer.owner_waiting or closer.how == "detached"
        if error is not None and not owner_waiting:
            # Nobody is left to receive it: the owner timed out or was interrupted.
            if not isinstance(error, Exception):
                raise error
            who = "in the finalizer" if closer.finalizer else "after close() stopped waiting"
            warnings.warn(
                f"rcfd: close_func raised {error!r} {who}; {self!r} is closed",
                RuntimeWarning,
                stacklevel=2,
            )

    def _finish(self, closer: _Closer) -> None:
        """FINISH: enter CLOSED, move the wakers to closer.to_wake (called after
        the lock is released), record the release as closer.how. Needs the lock.

        The registry comes last: an interrupt in it leaves the FD CLOSED and its
        waiters woken, at worst one release uncounted, never one counted twice.
        """
        self._state = step(self._state, 0, 0, Event.FINISH).state
        closer.handed_over = closer.how == "detached"
        closer.to_wake, closer.wakers = closer.wakers, []
        closer.done = True
        if self._registry is not None:
            how = "finalized" if closer.finalizer else closer.how or "closed"
            self._registry._record_release(id(self), how)

    def _give_up(
        self, closer: _Closer, owner: bool, waker: Callable[[], None], exc: BaseException
    ) -> bool:
        """A closer's wait ended early with `exc` (timeout, signal, cancellation).

        Returns True if the caller should keep waiting instead (a timeout
        that struck while close_func already runs: the wait is for borrows,
        not for close_func). Otherwise unregisters, leaves the close to the
        last borrow, and returns False so that `exc` propagates.
        """
        with self._guard():
            if closer.done:
                if isinstance(exc, TimeoutError):
                    return True
            else:
                close_func_runs = not self.borrow_count  # (or is about to)
                if close_func_runs and isinstance(exc, TimeoutError):
                    return True
                if waker in closer.wakers:
                    closer.wakers.remove(waker)
                if owner:
                    closer.owner_waiting = False
        if owner:
            # A number a detach already handed to us is closed, not orphaned.
            self._owner_left(closer, waker)
        return False

    def _outcome(self, closer: _Closer, owner: bool, event: Event) -> int:
        """The result of a finished close for this caller (the FD is CLOSED)."""
        if not owner:
            raise ClosedFDError(event, State.CLOSED)
        if closer.error is not None:
            raise closer.error
        return self._rawfd if closer.handed_over else -1


class Borrow:
    """The context manager returned by FD.borrow(); one borrow per `with`.

    One per block, not one per FD: it records the thread that entered, and a
    block can be left on another thread (a generator resumed elsewhere).
    """

    __slots__ = ("_fd", "_tid")

    def __init__(self, fd: FD) -> None:
        self._fd = fd
        self._tid = 0  # the borrowing thread; set by __enter__

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        # A copy would release the same borrow twice.
        raise TypeError("cannot copy or pickle 'Borrow' object: it is one borrow")

    def __enter__(self) -> int:
        fd = self._fd
        tid = self._tid = _get_ident()
        holders = fd._holders
        try:
            holders.insert(0, tid)  # check-and-count in one step, as in FD.do
        except BufferError:
            raise fd._refused(holders) from None
        except BaseException:  # (Signals rule) interrupted as insert returned:
            fd._release(tid)  # no __exit__ will come
            raise
        return fd._rawfd

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd = self._fd
        tid = self._tid
        # step(s, n, c, RELEASE), inline as in FD.do: no lock in OPEN.
        try:
            fd._holders.remove(tid)
        except ValueError:
            if tid:
                raise
            return  # 0: the fork hook dropped this borrow (its thread is gone)
        except BufferError:
            closer = fd._closer
            assert closer is not None
            closer.released += (tid,)
            try:
                fd._release_closing()
            except BaseException:  # (Signals rule) resume once after an interrupt
                fd._release_closing()
                raise


class _FreshBorrow(Borrow):
    """Borrow(fd) for FD.borrow, made without a Python __init__ frame (the
    `with` costs more than the borrow itself; specs/rcfd.md, "Decisions")."""

    __slots__ = ()
    __init__ = object.__init__


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check_init(rawfd: object, close_func: object, on_closing: object) -> None:
    if isinstance(rawfd, bool) or not isinstance(rawfd, int):
        raise TypeError(f"init: rawfd must be an int, not {type(rawfd).__name__}")
    if rawfd < 0:
        raise ValueError(f"init: rawfd must be >= 0, got {rawfd}")
    _check_callable("init", "close_func", close_func)
    if on_closing is not None:
        _check_callable("init", "on_closing", on_closing)


def _check_registry(registry: object) -> None:
    if not isinstance(registry, LifetimeRegistry):
        raise TypeError(
            f"track_lifetime: registry must be a LifetimeRegistry, not {type(registry).__name__}"
        )


def _check_callable(call: str, name: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{call}: {name} must be callable, not {type(value).__name__}")


def _check_timeout(call: str, timeout: object) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{call}: timeout must be a number or None, not {type(timeout).__name__}")
    if timeout < 0 or (isinstance(timeout, float) and math.isnan(timeout)):
        raise ValueError(f"{call}: timeout must be >= 0, got {timeout}")


def _deadline(timeout: float | None) -> float | None:
    """A checked timeout for the clock: None (no deadline) for None and for
    anything the clock cannot hold (above threading.TIMEOUT_MAX: inf, 10**400)."""
    return None if timeout is None or timeout >= threading.TIMEOUT_MAX else timeout


# fork(): the child repairs every inherited FD (fresh lock, borrows of vanished
# threads dropped); specs/rcfd.md, "Fork". No per-FD cost, none on borrows.
_fork.install()
