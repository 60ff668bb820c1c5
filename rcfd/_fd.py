"""FD: one raw file descriptor shared between threads, closed exactly once.

The rules live in rcfd._lifecycle; this module applies `step` and leaves
everything from the freeze on to rcfd._closing. On the GIL path a borrow
takes no lock: its entry is one insert into `_holders`, an array that a
close *freezes* (a memoryview export makes any resize fail atomically with
BufferError), so "still OPEN? then count me" is a single step no other
thread can split. Without the GIL, rcfd._nogil takes the FD's lock for that
step instead (the import picks the path once).

Invariants:
  state is derived, never stored: UNINIT while `_holders is _NO_BORROWS`
    (init publishes the holders last, its linearization point); OPEN while no
    close has frozen them; then CLOSING, and CLOSED once the close finished;
  _holders is frozen  <=>  state is not OPEN (UNINIT FDs share the frozen
    _NO_BORROWS; a close keeps its freeze for good);
  running borrows == len(_holders) - len(_closer.released): in OPEN a release
    removes its entry (one atomic remove, no lock); once frozen it appends a
    tombstone to the close's `released` instead (one atomic +=, no lock);
  _closer is set before the freeze and never cleared after it, so a release
    that meets the freeze always finds it;
  _lock is made at the first close (_guard) and orders the transitions from
    OPEN on; before, the module's _SHARED_LOCK stands in for it (init,
    track_lifetime), so an open FD carries no lock (on the no-GIL path init
    makes it: every borrow takes it there). It is reentrant only so
    that a finalizer or signal handler that runs inside one of the FD's own
    locked steps is detected (rcfd._closing), never to nest those steps.

Signals rule (specs/cpython.md, "Signals"): an effect and its record are one
call or have no check point between them. The release is written out where
a borrow ends (FD.do, Borrow.__exit__, FD._release, the owner's release in
rcfd._closing): each copy is marked "-- release (inline copy ...)", and
tests/test_hot_path.py keeps the copies identical, because a call to a
shared helper would add a check point before its first line. A retry that
meets the recursion limit fails again at the same depth: its handler starts
Closing.rescue in a new thread (specs/cpython.md, "The recursion limit").
"""

from __future__ import annotations

import _thread
import contextlib
import os
import sys
import threading
import warnings
from array import array
from collections.abc import Callable
from types import CoroutineType, TracebackType
from typing import NamedTuple, TypeVar, cast

from rcfd import _fork, _nogil
from rcfd._checks import check_callable, check_init, check_registry, check_timeout, deadline
from rcfd._closing import NO_BORROWS, Closing
from rcfd._errors import (
    ClosedFDError,
    FDError,
    UninitializedFDError,
    borrow_entered_twice,
    refusal,
)
from rcfd._lifecycle import REFUSALS, TABLE, Event, Outcome, Stage, State
from rcfd._locks import OwnedLock
from rcfd._registry import LifetimeRegistry, current_registry

T = TypeVar("T")

# A borrow's insert, a release's remove and a tombstone's += are each one
# atomic step only because the GIL runs one C call at a time. Without it (a
# free-threaded build run without the GIL, or RCFD_NOGIL=1) the import picks
# rcfd._nogil's do() and Borrow methods instead, which take the FD's lock for
# them (specs/cpython.md, "The GIL").

_get_ident = threading.get_ident
_start_new_thread = _thread.start_new_thread
# What _guard makes each FD's lock with (cast once here: a call of cast per
# lock would cost a Python call).
_RLock = cast("Callable[[], OwnedLock]", _thread.RLock)

# The holders of every UNINIT FD: empty and frozen for good, so that a borrow
# of an FD that init() has not opened fails in its one insert.
_NO_BORROWS = NO_BORROWS

# The lock of every FD that has none of its own yet: it orders init,
# track_lifetime and the publication of each FD's own lock. Reentrant: init
# allocates under it, and a finalizer the collector runs there may init or
# close another FD. A forked child gets a fresh one (_after_fork_in_child).
_SHARED_LOCK = threading.RLock()

# FD(rawfd) inits an FD no other thread can see yet: UNINIT, no borrow, where
# step() says (OPEN, OK); read here once (tests/test_hot_path.py checks it).
INIT_FRESH = TABLE[(State.UNINIT, Event.INIT, False, False, True)]

# Read once: on 3.11 each `Event.CLOSE` is a descriptor call (about 140 ns).
_CLOSE, _DETACH = Event.CLOSE, Event.DETACH

# step()'s outcome for each locked event on an OPEN FD with no borrow at all
# (so none of the caller's, and no close_func running): the common close,
# detach and finalizer, read once here (tests/test_spec_table.py checks it).
OPEN_IDLE = {
    event: TABLE[(State.OPEN, event, False, False, True)][1]
    for event in (Event.INIT, Event.TRACK, Event.CLOSE, Event.DETACH, Event.FINALIZE)
}

# Test seam. The verification harnesses (tests/interleavings, mutants/) log
# every step of an FD by replacing these two with subclasses: the holders
# array an FD gets at init (an array("L") subclass) and the close record
# (a Closing subclass). Production code never changes them.
CloseRecord: type[Closing] = Closing


# A bound C method, not a function: array("L") parses its typecode on every
# call, and this is a third of what init costs (copying an empty array is not).
Holders: Callable[[], array[int]] = array("L").__copy__


def _make_finalizer(
    warn: Callable[..., None] = warnings.warn,
    exiting: Callable[[], bool] = sys.is_finalizing,
    no_borrows: array[int] = _NO_BORROWS,
    start_new_thread: Callable[..., object] = _thread.start_new_thread,
) -> Callable[[FD], None]:
    """FD.__del__, with the names it needs bound here: it may run while the
    interpreter tears rcfd's modules down."""

    def __del__(self: FD) -> None:
        """The finalizer: an FD dropped while OPEN is closed, with a ResourceWarning."""
        # FINALIZE: step(s, n, 0, FINALIZE) is IGNORE for every state but OPEN
        # (tests/test_hot_path.py). (An FD caught in init's window, in a
        # forked child, is still UNINIT.)
        try:
            if self._holders is no_borrows or self._closer is not None:
                return
        except AttributeError:
            # FD() interrupted at its entry, before its first store (a signal
            # handler that raised there): it never owned a number.
            return
        try:
            # First, so that it names the FD while it is still OPEN; but a
            # filter that makes it an exception must not stop the close.
            # repr(self) for an OPEN FD, spelled out: no module global needed.
            running = len(self._holders)
            warn(f"unclosed <rcfd.FD OPEN fd={self._rawfd} borrows={running}>",
                 ResourceWarning, source=self)
        finally:
            if not exiting():
                try:
                    self._finalize()
                except RecursionError:
                    # (The recursion limit) The collector ran this finalizer too
                    # deep to finish the close, and no retry here can: the FD is
                    # garbage, so a new thread does (specs/cpython.md).
                    start_new_thread(CloseRecord.finalize_elsewhere, (self,))
                    raise
            else:
                # Module teardown: rcfd's globals may be gone, and no other
                # thread runs Python code any more: close it, plainly.
                self._close_at_exit()

    return __del__


class _Extras(NamedTuple):
    """What few FDs have: a registry (tracked FDs) and an on_closing (FDs
    whose borrows block in system calls). Set at init (the registry also by
    track_lifetime, before it), then never changed."""

    registry: LifetimeRegistry | None
    on_closing: Callable[[int], object] | None


class FD:
    """A reference-counted file descriptor (Go: rc.FD).

    Every use of the number is a borrow: `fd.do(fn)` or `with fd.borrow() as
    rawfd:`. `close()` refuses new borrows at once (ClosedFDError), waits for
    the running ones, then calls close_func exactly once, never under a
    borrow. A close from inside a borrow raises CloseInsideBorrowError
    instead of deadlocking. An FD dropped without close() is closed by its
    finalizer, with a ResourceWarning. Thread-safe; not copyable or
    picklable (dup() makes an independent FD); weak references work.

    States: UNINIT (FD() without a number) -> OPEN -> CLOSING -> CLOSED.
    """

    __slots__ = (
        "_lock",
        "_holders",
        "_rawfd",
        "_close_func",
        "_extras",
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
        """An OPEN FD for `rawfd`, or an UNINIT one without it (then call init).

        rawfd: a descriptor number (an int >= 0) that this FD now owns.
        close_func: called once as close_func(rawfd) to close it, when the
            last borrow has returned; default os.close. Its exception reaches
            the close() that began the close.
        registry: a LifetimeRegistry to report init and release to (leak
            tracking); default: the one of an enclosing track_lifetimes().
        on_closing: called once as on_closing(rawfd) when a close begins,
            while the number is still valid, to wake borrows blocked in system
            calls (socket.shutdown, a write to a wake-up eventfd).

        Raises TypeError or ValueError for a bad argument (a close_func or
        on_closing without a rawfd included: give them to init()).
        """
        self._lock: OwnedLock | None = None  # made by the first close (_guard)
        # One thread ident per running borrow (an unsigned long each); frozen
        # from CLOSING on, see the module docstring.
        self._holders = _NO_BORROWS
        self._rawfd = -1  # valid while OPEN or CLOSING
        self._close_func: Callable[[int], object] = os.close
        # The registry and on_closing, which most FDs lack: one slot, None for
        # both (an open FD carries 8 bytes less; see _Extras).
        self._extras: _Extras | None = None
        self._closer: Closing | None = None  # the close, from just before its freeze
        if registry is not None:
            check_registry("FD", registry)
        if rawfd is None:
            # init() takes the callbacks with the number: kept here, they would
            # make two places to give them and a rule for which one wins.
            check_callable("FD", "close_func", close_func)
            if close_func is not os.close or on_closing is not None:
                which = "on_closing" if on_closing is not None else "close_func"
                raise TypeError(f"FD(): {which} needs a rawfd; pass it to init() instead")
        elif type(rawfd) is not int or rawfd < 0 or on_closing is not None or not callable(
            close_func
        ):  # (the common FD(rawfd[, close_func]) is valid on sight: no call to check it)
            check_init("FD", rawfd, close_func, on_closing)
        # No other thread can see this FD yet: the transitions need no lock.
        if registry is not None:
            self._track(registry)
        if rawfd is None:
            return
        if (
            registry is None
            and on_closing is None
            and not _nogil.ENABLED
            and current_registry.get() is None
        ):
            # INIT_FRESH with nothing to record (most FDs): _init's effects
            # without its call, the holders made first, then stores only.
            holders = Holders()
            self._rawfd = rawfd
            self._close_func = close_func
            self._holders = holders
        else:
            self._init(rawfd, close_func, on_closing, True)

    # -- lifecycle -------------------------------------------------------

    def init(
        self,
        rawfd: int,
        close_func: Callable[[int], object] = os.close,
        *,
        on_closing: Callable[[int], object] | None = None,
    ) -> None:
        """UNINIT -> OPEN: own `rawfd` from now on (arguments as for FD()).

        Raises MultipleInitError if already initialized, ClosedFDError once a
        close began; TypeError or ValueError for a bad argument.
        """
        check_init("init", rawfd, close_func, on_closing)
        with _SHARED_LOCK:
            self._init(rawfd, close_func, on_closing)

    def track_lifetime(self, registry: LifetimeRegistry) -> None:
        """Report this FD's init and release to `registry`. Only before init():
        MultipleInitError after it."""
        check_registry("track_lifetime", registry)
        with _SHARED_LOCK:
            self._track(registry)

    if _nogil.ENABLED:
        do = _nogil.do
    else:

        def do(self, fn: Callable[[int], T], /) -> T:
            """Call fn(rawfd) under a borrow and return what it returns.

            The number stays valid until fn returns, however it returns. Raises
            ClosedFDError at once, without calling fn, once a close began
            (UninitializedFDError before init); fn's own exceptions propagate.
            fn must not return a coroutine (TypeError): it would run after the
            borrow ended.
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
                check_callable("do", "fn", fn)  # a bad fn is reported first
                raise self._refused(holders, "do") from None
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
                check_callable("do", "fn", fn)
                raise
            finally:
                fd = self
                # -- release (inline copy "do"; specs/cpython.md, "Signals") --
                try:
                    holders.remove(tid)
                except BufferError:
                    closing = fd._closer
                    assert closing is not None
                    closing.released += (tid,)
                    try:
                        closing.release(fd)
                    except BaseException:
                        try:
                            closing.release(fd)
                        except RecursionError:  # (the recursion limit) see Closing.rescue
                            _start_new_thread(closing.rescue, (fd,))
                        raise
                # -- end release --
            if type(result) is CoroutineType:
                _nogil.refuse_coroutine(result)
            return result

    def borrow(self) -> Borrow:
        """A context manager for one borrow: `with fd.borrow() as rawfd:` is
        fd.do(fn) for a block. Refused on entry as do() is. Use one per block."""
        borrow: Borrow = _FreshBorrow()  # Borrow(self) without its __init__ frame
        borrow._fd = self
        borrow._tid = 0
        return borrow

    def close(self, timeout: float | None = None) -> None:
        """Refuse new borrows at once, wait for the running ones, then call
        close_func once; when this returns, close_func has returned.

        timeout: seconds to wait for the running borrows (None: no limit;
            above threading.TIMEOUT_MAX: no limit). At the deadline it raises
            TimeoutError, the FD stays CLOSING, and the last borrow to return
            closes it; a deadline that strikes while close_func already runs
            waits for close_func instead.

        Raises close_func's own exception (the FD is CLOSED all the same);
        ClosedFDError if another call began the close (after waiting for it
        to finish) or it had finished; UninitializedFDError before init;
        CloseInsideBorrowError from inside a borrow of this FD, and
        CloseInsideCloseFuncError from inside its close_func (at once,
        changing nothing); TypeError or ValueError for a bad timeout.
        """
        if timeout is not None:
            check_timeout("close", timeout)
            timeout = deadline(timeout)
        if not CloseRecord.close_alone(self, timeout):
            CloseRecord.wait(self, _CLOSE, "close", timeout)

    def detach(self) -> int:
        """Like close(), but hand the raw number back instead of closing it;
        the caller owns it from now on. Waits for the borrows (no timeout),
        calls on_closing, and leaves the FD CLOSED, counted `detached` by its
        registry. If this call is interrupted before the hand-over, the number
        is closed instead. Raises as close() does."""
        return CloseRecord.wait(self, _DETACH, "detach", None)

    async def aclose(self, timeout: float | None = None) -> None:
        """close() for asyncio: waits without blocking the event loop, and
        without parking a thread (the borrow that returns last closes the
        number and wakes this task). Cancelling the task does not cancel the
        close. Arguments and errors as for close()."""
        check_timeout("aclose", timeout)
        await CloseRecord.wait_async(self, deadline(timeout))

    def dup(self, *, on_closing: Callable[[int], object] | None = None) -> FD:
        """A new, independent, OPEN FD on a duplicate of the number
        (F_DUPFD_CLOEXEC, taken under a borrow), with the same close_func and
        registry and the given on_closing (not this FD's: a wake-up such as
        shutdown() acts on the socket both numbers share). Refused as do()."""
        import fcntl

        if on_closing is not None:
            check_callable("dup", "on_closing", on_closing)
        try:
            newfd = self.do(lambda rawfd: fcntl.fcntl(rawfd, fcntl.F_DUPFD_CLOEXEC, 0))
        except (ClosedFDError, UninitializedFDError) as exc:
            raise exc.for_call("dup") from None
        try:
            return FD(newfd, self._close_func, registry=self._registry, on_closing=on_closing)
        except BaseException:
            os.close(newfd)
            raise

    # -- observation -----------------------------------------------------

    @property
    def state(self) -> State:
        """The current state (a snapshot: another thread may change it next)."""
        # The holders first: an init in progress publishes them last.
        if self._holders is _NO_BORROWS:
            return State.UNINIT
        closing = self._closer
        if closing is None or not closing.freeze:
            return State.OPEN
        return State.CLOSED if closing.stage is Stage.FINISHED else State.CLOSING

    @property
    def borrow_count(self) -> int:
        """The number of running borrows, nested ones counted each time (a
        snapshot, like state)."""
        closing = self._closer
        return len(self._holders) - (0 if closing is None else len(closing.released))

    def __repr__(self) -> str:
        try:
            state, rawfd, borrows = self.state, self._rawfd, self.borrow_count
        except AttributeError:
            # FD.__new__ without __init__, or FD() cut at its entry by a signal:
            # a traceback that shows its locals, or a debugger, still needs a repr.
            return "<rcfd.FD never initialized: FD.__init__ did not run>"
        if state is State.UNINIT:
            return "<rcfd.FD UNINIT>"
        return f"<rcfd.FD {state.name} fd={rawfd} borrows={borrows}>"

    def __enter__(self) -> FD:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """close(); a close another thread began is waited for, not an error."""
        with contextlib.suppress(ClosedFDError):
            self.close()

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        # copy.copy, copy.deepcopy and pickle all come here. A copy would be a
        # second owner of one number (close_func twice, the second time on a
        # number the kernel may have reused), or share the first one's holders.
        raise TypeError(
            f"cannot copy or pickle {type(self).__name__!r} object: it owns its "
            "descriptor; dup() makes an independent FD on a duplicate"
        )

    __del__ = _make_finalizer()

    @property
    def _registry(self) -> LifetimeRegistry | None:
        """The registry this FD reports to (set before init, read at release)."""
        extras = self._extras
        return None if extras is None else extras.registry

    @property
    def _on_closing(self) -> Callable[[int], object] | None:
        extras = self._extras
        return None if extras is None else extras.on_closing

    # -- internals -------------------------------------------------------

    def _guard(self) -> OwnedLock:
        """This FD's lock, made at its first use (a close)."""
        lock = self._lock
        if lock is None:
            new = _RLock()
            shared = _SHARED_LOCK
            # Without `with` (specs/cpython.md, "A locked step without `with`"):
            # every FD's first close comes here.
            try:
                shared.acquire()
                if self._lock is None:  # two threads that both found None agree on one lock
                    self._lock = new
                lock = self._lock
            finally:
                try:  # noqa: SIM105 - suppress() is a call: a check point before the release
                    shared.release()
                except RuntimeError:  # not taken: an interrupt struck a blocked acquire
                    pass
        return lock

    def _borrows_of(self, tid: int) -> int:
        """The running borrows of thread `tid` (step()'s caller_borrows)."""
        closing = self._closer
        mine = self._holders.count(tid)
        return mine if closing is None else mine - closing.released.count(tid)

    def _step(self, event: Event, call: str) -> Outcome:
        """step() for the calling thread, read from its TABLE; raises if it
        refuses, else returns the outcome. Needs the lock (the shared one for
        INIT and TRACK, which only an UNINIT FD accepts). The state and count
        step() gives are not stored: the FD derives both."""
        closing = self._closer
        holders = self._holders
        if closing is None and not holders and holders is not _NO_BORROWS:
            outcome = OPEN_IDLE[event]  # OPEN, and no borrow runs
        else:
            me = _get_ident()
            # The claimer runs close_func while RUNNING: a call it makes on this
            # FD meanwhile can only come from close_func itself.
            in_close_func = (
                closing is not None and closing.stage is Stage.RUNNING and closing.claimer == me
            )
            state = self.state  # before the count, which a collection may interrupt
            mine = self._borrows_of(me) > 0
            outcome = TABLE[(state, event, mine, in_close_func, not self.borrow_count)][1]
        if outcome in REFUSALS:
            raise self._error(outcome, call)
        return outcome

    def _init(
        self,
        rawfd: int,
        close_func: Callable[[int], object],
        on_closing: Callable[[int], object] | None,
        fresh: bool = False,
    ) -> None:
        """INIT, arguments already checked. Needs _SHARED_LOCK (or an unshared
        FD). A `fresh` FD (the constructor's) is UNINIT with no borrow, where
        step() is INIT_FRESH, read once at import."""
        if not fresh:
            self._step(Event.INIT, "init")
        holders = Holders()  # made before any effect: no call between them
        extras = self._extras  # (its registry, set by track_lifetime before init)
        registry = None if extras is None else extras.registry
        if registry is None:
            registry = current_registry.get()
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
        if registry is not None or on_closing is not None:
            self._extras = _Extras(registry, on_closing)
        if _nogil.ENABLED:
            self._guard()  # every borrow takes it on this path
        # Last: from here on borrows succeed, and a close (which takes the FD's
        # own lock, not _SHARED_LOCK) sees OPEN; before it, both see UNINIT.
        self._holders = holders

    def _track(self, registry: LifetimeRegistry) -> None:
        """TRACK, argument already checked. Needs _SHARED_LOCK (or an unshared FD)."""
        self._step(Event.TRACK, "track_lifetime")
        self._extras = _Extras(registry, None)  # before init: no on_closing yet

    def _refused(self, holders: array[int], call: str) -> FDError:
        """The error for a borrow whose insert met frozen `holders` (no lock:
        the close that froze them was attached before it froze them)."""
        if holders is _NO_BORROWS:
            return UninitializedFDError(call)
        return self._error(Outcome.REFUSE_CLOSED, call)

    def _error(self, outcome: Outcome, call: str) -> FDError:
        return refusal(outcome, call, self.state)

    def _release(self, tid: int) -> None:
        """End one borrow of thread `tid` (FD.do's interrupted insert)."""
        fd = self
        holders = fd._holders
        # -- release (inline copy "_release"; specs/cpython.md, "Signals") --
        try:
            holders.remove(tid)
        except BufferError:
            closing = fd._closer
            assert closing is not None
            closing.released += (tid,)
            try:
                closing.release(fd)
            except BaseException:
                try:
                    closing.release(fd)
                except RecursionError:  # (the recursion limit) see Closing.rescue
                    _start_new_thread(closing.rescue, (fd,))
                raise
        # -- end release --

    def _finalize(self) -> None:
        CloseRecord.finalize(self)

    def _close_at_exit(
        self,
        _closed: Stage = Stage.FINISHED,
        _make: type[Closing] = Closing,
        _warn: Callable[..., None] = warnings.warn,
    ) -> None:
        """The finalizer during module teardown: no lock, no waiter, names bound.
        A borrow still counted is held by garbage (a generator suspended in
        `with fd.borrow()`) that teardown finalizes after this FD, or never:
        the number is left open for it, and to the kernel, which closes it as
        the process ends, rather than closed under that borrow (guarantee 1).
        close_func's exception is warned, as the finalizer's is before exit."""
        if len(self._holders):
            return
        closing = self._closer = _make(False, None)
        closing.freeze.append(memoryview(self._holders))
        closing.stage = _closed
        try:
            self._close_func(self._rawfd)
        except Exception as exc:
            _warn(
                f"rcfd: close_func raised {exc!r} in the finalizer at exit; "
                f"fd {self._rawfd} is closed",
                RuntimeWarning,
            )
        finally:
            if self._registry is not None:
                self._registry._record_release(id(self), "finalized")

    def _after_fork(self, me: int) -> bool:
        """In a forked child: forget the lock (a vanished thread may hold it)
        and the borrows of every thread but `me`, settle a close the fork cut.
        True if a close is left to finish once every FD is repaired."""
        if not hasattr(self, "_holders"):
            return False  # never initialized (FD() cut at its entry): as __del__
        # On the no-GIL path an initialized FD needs its lock for every borrow.
        fresh = _nogil.ENABLED and self._holders is not _NO_BORROWS
        self._lock = _RLock() if fresh else None
        closing = self._closer
        if closing is not None and not closing.freeze:
            self._closer = closing = None  # cut before its freeze: never began
        if closing is None:
            holders = self._holders
            if any(tid != me for tid in holders):  # in place: a borrow of `me` holds it
                holders[:] = array("L", [tid for tid in holders if tid == me])
            return False
        return closing.after_fork(self, me)

    def _finish_after_fork(self, me: int) -> None:
        closing = self._closer
        assert closing is not None
        closing.finish_after_fork(self, me)


class Borrow:
    """The context manager returned by FD.borrow(); one borrow per `with`.

    One per block, not one per FD: it records the thread that entered, and a
    block can be left on another thread (a generator resumed elsewhere).
    """

    __slots__ = ("_fd", "_tid")

    def __init__(self, fd: FD) -> None:
        if not isinstance(fd, FD):
            raise TypeError(f"Borrow: fd must be an rcfd.FD, not {type(fd).__name__}")
        self._fd = fd
        self._tid = 0  # the borrowing thread; set by __enter__

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        # A copy would release the same borrow twice.
        raise TypeError("cannot copy or pickle 'Borrow' object: it is one borrow")

    if not _nogil.ENABLED:

        def __enter__(self) -> int:
            fd = self._fd
            tid = _get_ident()
            if self._tid:  # (no call between this check and the store below)
                raise borrow_entered_twice()
            self._tid = tid
            holders = fd._holders
            try:
                holders.insert(0, tid)  # check-and-count in one step, as in FD.do
            except BufferError:
                self._tid = 0
                raise fd._refused(holders, "borrow") from None
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
            if not tid:
                return  # not entered, left already, or dropped by the fork hook
            self._tid = 0  # left (no call before the release below)
            holders = fd._holders
            # -- release (inline copy "Borrow"; specs/cpython.md, "Signals") --
            try:
                holders.remove(tid)
            except BufferError:
                closing = fd._closer
                assert closing is not None
                closing.released += (tid,)
                try:
                    closing.release(fd)
                except BaseException:
                    try:
                        closing.release(fd)
                    except RecursionError:  # (the recursion limit) see Closing.rescue
                        _start_new_thread(closing.rescue, (fd,))
                    raise
            # -- end release --

    else:
        __enter__ = _nogil.borrow_enter
        __exit__ = _nogil.borrow_exit

    def _after_fork(self, me: int) -> bool:
        """In a forked child: a borrow entered by a thread that is gone was
        dropped with it; its exit (a generator resumed here) releases nothing."""
        if getattr(self, "_tid", me) != me:
            self._tid = 0
        return False


class _FreshBorrow(Borrow):
    """Borrow(fd) for FD.borrow, made without a Python __init__ frame (the
    `with` costs more than the borrow itself; specs/cpython.md, "One object
    per `with fd.borrow()`")."""

    __slots__ = ()
    __init__ = object.__init__


def _fresh_shared_lock() -> None:
    global _SHARED_LOCK
    _SHARED_LOCK = threading.RLock()


# fork(): the child repairs every inherited FD and Borrow (specs/rcfd.md,
# "Fork"). No per-FD cost, none on borrows.
_fork.install(FD, Borrow, LifetimeRegistry, before=_fresh_shared_lock)
