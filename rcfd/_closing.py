"""CLOSING: one close of one FD, from the freeze to the last waiter woken.

A `Closing` is made by the call that begins the close (close, aclose,
detach, or the finalizer) and stays on the FD for good. It is the
sub-machine of rcfd._lifecycle.close_step:

    DRAINING --ZERO--> RUNNING --DECIDE, FINISH--> FINISHED --(wake)

The FD's lock (FD._guard) orders every change of `stage`, `wakers`,
`owner_waker` and `handed_over`; it is never held across close_func,
on_closing or a waker.

Invariants:
  freeze: empty until the holders are frozen, then their export for good;
    the FD is CLOSING from that moment (FD.state reads it), and a borrow
    that read the holders before can never find them unfrozen again;
  running borrows == len(FD._holders) - len(released): a release that meets
    the freeze appends a tombstone here (one atomic step, no lock) first;
  exactly one caller claims (ZERO in DRAINING, under the lock), and only
    it (`claimer`) calls close_func, finishes, and resumes after an interrupt;
    the finalizer's close, the owner's own zero check, a closer that joins
    and a forked child's repair claim through the same step; a claimer
    stopped by the recursion limit gives the claim up (claimer 0 past
    DRAINING) to the new thread `rescue` runs in, which resumes the run;
  how: set before the effect it names (close_func called, number handed
    over), so a resumed run never repeats it;
  wakers: appended only before FINISHED (a WAIT under the lock sees CLOSING),
    so after FINISHED they are read without the lock; each is counted in
    `woken` after its call (twice if an interrupt cut the first), then dropped;
  owner_waker: the waker of the caller that began the close while it waits
    for the outcome (None for the finalizer, and once the owner left;
    _CLAIMER while close_alone's owner runs the close itself, unwoken);
  owner_borrowed: the owner counts as a borrow while on_closing runs; it
    releases it like any borrow (there is no owner's borrow without on_closing:
    taking and releasing it with nothing between would change nothing);
  reported: set, under the lock, when the claimer has decided who gets
    close_func's error; an owner that leaves without it after that (give_up)
    reports it itself, so it is reported once;
  deferred: a release came in while this thread was inside one of the FD's
    locked steps (a finalizer or signal handler ran there): it wrote its
    tombstone but could not take the lock to decide, so the step's caller
    settles it once it has left the lock.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import threading
import warnings
from array import array
from collections import Counter
from collections.abc import Callable
from types import CoroutineType
from typing import TYPE_CHECKING, NoReturn

from rcfd import _nogil
from rcfd._lifecycle import CloseEvent, Duty, Event, Outcome, Stage, close_step
from rcfd._nogil import give_back, give_back_again
from rcfd._registry import Release, user_stacklevel

if TYPE_CHECKING:
    import asyncio

    from rcfd._fd import FD

_get_ident = threading.get_ident
_start_new_thread = _thread.start_new_thread

# The two transitions every close takes have no inputs but their stage: they
# are read from close_step once, here, and applied as constants on the close
# path (tests/test_hot_path.py keeps them equal to close_step).
CLAIM = close_step(Stage.DRAINING, CloseEvent.ZERO, 0, False, False)  # -> RUNNING, CLAIM
FINISH = close_step(Stage.RUNNING, CloseEvent.FINISH, 0, False, False)  # -> FINISHED, WAKE

# The members every close reads, read once: on 3.11 `Stage.RUNNING` is a
# descriptor call through EnumType (about 140 ns; 20-30 ns from 3.12).
DRAINING, RUNNING = Stage.DRAINING, Stage.RUNNING
DETACH, WAIT = Event.DETACH, Outcome.WAIT


_NO_OWNER_BORROW = array("L")  # stands for `mine` when the owner takes no borrow

# The holders of every UNINIT FD: empty and frozen for good, so that a borrow
# of an FD that init() has not opened fails in its one insert (rcfd._fd).
NO_BORROWS = array("L")
NO_BORROWS_FREEZE = memoryview(NO_BORROWS)


class Closing:
    """One close of one FD; see the module docstring for the invariants."""

    __slots__ = (
        "freeze",
        "released",
        "detach",
        "finalizer",
        "stage",
        "claimer",
        "how",
        "error",
        "handed_over",
        "wakers",
        "woken",
        "owner_waker",
        "owner_borrowed",
        "deferred",
        "call",
        "owner",
        "reported",
    )

    def __init__(self, detach: bool, owner_waker: Callable[[], None] | None) -> None:
        # A list, so that one C call can make the export and store it.
        self.freeze: list[memoryview] = []
        self.released: list[int] = []  # one tombstone (thread ident) per frozen-time release
        self.detach = detach  # the owner wants the number back, not closed
        self.finalizer = owner_waker is None  # begun by the finalizer: counted "finalized"
        self.stage = DRAINING
        self.claimer = 0  # the thread that claimed, once RUNNING
        self.how: Release | None = None
        self.error: BaseException | None = None  # what close_func raised, for the owner
        self.handed_over = False  # a detach's number waits for its owner to take it
        self.wakers: list[Callable[[], None]] = [] if owner_waker is None else [owner_waker]
        self.woken = 0  # how many wakers have been called (after FINISHED)
        self.owner_waker = owner_waker
        self.owner_borrowed = False
        self.deferred = False
        self.call = "close"  # what the owner called: close, aclose or detach (messages)
        self.owner = 0  # the owner's thread (0: the finalizer's close), for a fork
        self.reported = False  # the claimer has decided who gets close_func's error

    # -- beginning ------------------------------------------------------------

    @classmethod
    def begin(cls, fd: FD, event: Event, call: str, waker: Callable[[], None]) -> Closing:
        """CLOSE or DETACH: BEGIN_CLOSE makes a Closing and freezes; WAIT joins
        the close in progress. Returns the close that `waker` waits on; the
        caller owns it iff its owner_waker is `waker`. The owner has run
        on_closing and released its borrow when this returns (or raises), so
        the close may be finished already."""
        me = _get_ident()
        # (Signals rule) All the close needs is made before its first effect.
        new = cls(event is DETACH, waker)
        new.call, new.owner = call, me
        extras = fd._extras
        on_closing = None if extras is None else extras.on_closing
        mine = _NO_OWNER_BORROW if on_closing is None else array("L", (me,))
        lock = fd._lock or fd._guard()
        if lock._is_owned():
            # A finalizer or signal handler ran inside this FD's own locked
            # step on this thread: waiting here would wait for that step.
            raise fd._error(Outcome.REFUSE_CLOSE_IN_CLOSE_FUNC, call)
        joined = new
        try:
            try:
                with lock:
                    if fd._step(event, call) is WAIT:
                        current = fd._closer
                        assert current is not None
                        current.wakers.append(waker)
                        joined = current
                        # ZERO, as any caller that finds no borrow may send: the
                        # release that left none may not have claimed yet, and
                        # may be this thread's (the collector ran this close
                        # inside it, between its tombstone and its lock), which
                        # would then wait for itself, timeout or not.
                        current._zero(fd, me)
                    else:  # BEGIN_CLOSE
                        if on_closing is not None:
                            holders = fd._holders
                            holders += mine  # the owner's borrow, and (no call between)
                            new.owner_borrowed = True  # its record
                        new._freeze(fd)
                        # No on_closing: no borrow of the owner's (its release
                        # would be only this check), so it may claim at once.
                        new._zero(fd, me)
                if new.owner_borrowed and on_closing is not None:
                    # Under the owner's borrow: the number is valid.
                    woke = on_closing(fd._rawfd)
                    if type(woke) is CoroutineType:  # (no call: see run)
                        refuse_async(woke, "on_closing", fd._rawfd)
            except BaseException:
                # Leave before the owner's release below, which may run the
                # close: a detach is then not handed to nobody, and an error of
                # close_func is warned, not lost.
                joined.give_up(fd, waker, False)  # LEAVE
                raise
            finally:
                if new.owner_borrowed and _nogil.ENABLED:
                    holders = fd._holders
                    tid = me
                    # -- release (no-GIL copy "owner"; specs/cpython.md, "Signals") --
                    released: list[object] = []
                    try:
                        give_back(fd, holders, tid, released)
                    except BaseException:
                        give_back_again(fd, holders, tid, released)
                        raise
                    # -- end release --
                elif new.owner_borrowed:
                    # The owner's borrow, released like any borrow (inline: a
                    # call would add a check point before it).
                    holders = fd._holders
                    tid = me
                    # -- release (inline copy "owner"; specs/cpython.md, "Signals") --
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
                elif new.freeze:
                    # No owner's borrow: its release is this, the zero check
                    # (made in the section unless an interrupt came first) and
                    # the run of a close it claimed.
                    try:
                        new.release(fd)
                    except BaseException:  # (Signals rule) resume once
                        new.release(fd)
                        raise
                elif joined.claimer == me:  # a joiner that claimed (above) runs it
                    try:
                        joined.release(fd)
                    except BaseException:  # (Signals rule) resume once
                        joined.release(fd)
                        raise
            if joined.deferred:
                joined.settle(fd)
        except BaseException:
            # (Signals rule) An interrupt after the release may come after a
            # detach handed the number to us: we leave, so close it.
            joined.give_up(fd, waker, False)  # LEAVE
            raise
        return joined

    @classmethod
    def close_alone(cls, fd: FD, timeout: float | None) -> bool:
        """close() when no other close has begun, of an OPEN FD that no borrow
        holds and that has no on_closing: the common close. BEGIN_CLOSE and
        ZERO in one locked step, then the run by this caller, with no waker
        made: nobody waits for a close that its owner runs itself. False,
        having changed nothing, for any other FD, or when another close came
        first: the caller then takes wait(), which joins or refuses.
        """
        extras = fd._extras
        holders = fd._holders
        if fd._closer is not None or holders or (extras and extras.on_closing):
            return False  # another close, a borrow, or on_closing: wait()
        me = _get_ident()
        # (Signals rule) All the close needs is made before its first effect.
        new = cls(False, None)
        new.finalizer, new.owner_waker, new.owner = False, _CLAIMER, me  # the owner, unwoken
        try:
            try:
                if not new._begin_alone(fd, holders, me):
                    return False
            finally:
                if new.claimer == me:
                    try:
                        new.run(fd)
                    except BaseException:  # (Signals rule) resume once, through
                        new.release(fd)  # release: at the recursion limit it hands over
                        raise
                elif new.freeze:  # a borrow ran at the freeze, or an interrupt came
                    try:
                        new.release(fd)
                    except BaseException:
                        new.release(fd)
                        raise
            if new.deferred:
                new.settle(fd)
            if new.claimer != me:
                new._wait_as_owner(fd, timeout)
            elif new.error is not None:
                raise new.error
        except BaseException as exc:
            if new.freeze and exc is not new.error:  # (the error is delivered)
                owner = new.owner_waker
                new.give_up(fd, _CLAIMER if owner is None else owner, False)  # LEAVE
            raise
        return True

    def _begin_alone(self, fd: FD, holders: array[int], me: int) -> bool:
        """close_alone's locked step: BEGIN_CLOSE (OPEN_IDLE[CLOSE]), then ZERO,
        with _freeze's freeze and _zero's check written out (a call each is a
        tenth of this close). False, having changed nothing, if the FD is no
        longer idle OPEN. The lock is taken without `with`, which costs 230 ns
        before 3.14 (specs/cpython.md, "A locked step without `with`")."""
        lock = fd._lock
        if lock is None:
            lock = fd._guard()  # made just now: no frame of this thread holds it
        elif lock._is_owned():
            return False  # inside this FD's own locked step: wait() refuses it
        try:
            lock.acquire()
            if fd._closer is not None or holders is not fd._holders or holders is NO_BORROWS:
                return False  # a close came first, init's window, or UNINIT: wait()
            fd._closer = self  # before the freeze: a release that meets it finds it
            try:
                self.freeze.extend(map(memoryview, (holders,)))
            finally:
                if not self.freeze:
                    fd._closer = None
            if len(holders) == len(self.released):  # frozen: this count is final
                self.stage, self.claimer = CLAIM.stage, me
            return True
        finally:
            try:  # noqa: SIM105 - suppress() is a call: a check point before the release
                lock.release()
            except RuntimeError:  # not taken: an interrupt struck a blocked acquire
                pass

    def _wait_as_owner(self, fd: FD, timeout: float | None) -> None:
        """close_alone's owner, when a borrow that began just before the freeze
        still ran: register a waker (as wait() does before its step) unless
        that borrow's release finished the close meanwhile, then wait."""
        waiter = threading.Lock()
        waiter.acquire()
        wake: Callable[[], None] = waiter.release
        with fd._lock or fd._guard():
            if self.stage is Stage.FINISHED:
                waiter.release()  # nothing to wait for; the owner is still _CLAIMER
                wake = _CLAIMER
            else:
                self.owner_waker = wake  # (the owner first: a leave then finds it)
                self.wakers.append(wake)
        self.until_finished(fd, "close", waiter, wake, timeout)

    @classmethod
    def wait(cls, fd: FD, event: Event, call: str, timeout: float | None) -> int:
        """close() and detach(): begin (or join) the close, and block until it
        finished or `timeout` (seconds, None: no limit) ran out."""
        waiter = threading.Lock()
        waiter.acquire()
        wake = waiter.release  # one object: the close tells its owner by identity
        try:
            closing = cls.begin(fd, event, call, wake)  # from here on fd._closer
            return closing.until_finished(fd, call, waiter, wake, timeout)
        except BaseException as exc:
            # Also an interrupt as begin returned, or before the number reached
            # our caller: leaving closes a number a detach handed to us,
            # rather than orphan it (idempotent: until_finished may have left).
            # Not close_func's error: the owner received it, and leaving now
            # would make the claimer warn it as well.
            joined = fd._closer  # (None if begin refused an UNINIT FD)
            if joined is not None and exc is not joined.error:
                joined.give_up(fd, wake, False)  # LEAVE
            raise

    def until_finished(
        self,
        fd: FD,
        call: str,
        waiter: threading.Lock,
        wake: Callable[[], None],
        timeout: float | None,
    ) -> int:
        """Block on `waiter` (released by `wake`, this caller's waker) until
        this close finished, or `timeout` ran out, then return what it gives
        the caller (outcome)."""
        try:
            if not waiter.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError(timed_out(fd, call, timeout))
        except BaseException as exc:
            if self.give_up(fd, wake, isinstance(exc, TimeoutError)) is Duty.LEAVE:
                raise
            waiter.acquire()  # close_func runs or ran: its end is near
        return self.outcome(fd, call, wake)

    @classmethod
    async def wait_async(cls, fd: FD, timeout: float | None) -> None:
        """aclose(): begin (or join) the close and await it without blocking
        the loop or parking a thread: whoever finishes the close wakes the
        task through the loop. Cancelling the task does not cancel the close."""
        import asyncio

        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        # What wake() reaches, emptied once this task is done with the close:
        # the FD keeps its Closing, and so this waker, for good; not the loop.
        target = [(loop, done)]

        def wake() -> None:
            # Runs in the thread that finished the close (Closing.run calls it
            # again if an interrupt cut it: _resolve resolves once). A loop
            # closed since raises RuntimeError there: nobody is left to wake.
            for loop_, done_ in target:
                loop_.call_soon_threadsafe(_resolve, done_)

        closing = cls.begin(fd, Event.CLOSE, "aclose", wake)
        try:
            try:
                # Not asyncio.wait_for: on 3.11 it can swallow a cancellation
                # that comes as `done` resolves (CPython gh-86296).
                async with asyncio.timeout(timeout):
                    await asyncio.shield(done)
            except BaseException as exc:
                late = isinstance(exc, TimeoutError)
                if closing.give_up(fd, wake, late) is Duty.LEAVE:
                    if late:
                        raise TimeoutError(timed_out(fd, "aclose", timeout)) from None
                    raise
                try:
                    await done  # close_func runs or ran: its end is near
                except BaseException:
                    closing.give_up(fd, wake, False)  # cancelled again: LEAVE now
                    raise
            closing.outcome(fd, "aclose", wake)
        finally:
            target.clear()

    @classmethod
    def finalize(cls, fd: FD) -> None:
        """FINALIZE on an OPEN FD: begin the close as close() does, with nobody
        waiting for it. Borrows may still run, held by objects that are garbage
        too (a generator suspended in `with fd.borrow()`, in the same cycle):
        then the last of them runs close_func, as for any close."""
        me = _get_ident()
        new = cls(False, None)  # made before the first effect (Signals rule)
        lock = fd._guard()
        if lock._is_owned():
            return  # fd.__del__() called by hand inside the FD's own locked step
        with lock:
            if fd._step(Event.FINALIZE, "finalizer") is Outcome.IGNORE:
                return  # closed meanwhile (a finalizer called by hand races a close)
            new._freeze(fd)
            claimed = new._zero(fd, me)
        if claimed:
            try:
                new.run(fd)
            except BaseException:  # (Signals rule) resume once, through release:
                new.release(fd)  # at the recursion limit it hands over
                raise
        if new.deferred:
            new.settle(fd)

    @classmethod
    def finalize_elsewhere(cls, fd: FD) -> None:
        """In a new thread, for a finalizer that RecursionError cut (the
        collector ran it near the limit): FINALIZE if it began no close, else
        finish the one it began (rescue). Nobody else would: the FD is garbage,
        and this thread's reference is the last."""
        closing = fd._closer
        if closing is None:
            cls.finalize(fd)
        else:
            closing.rescue(fd)

    def _freeze(self, fd: FD) -> None:
        """Attach this close and freeze the holders: from here on every borrow
        is refused. Needs the lock. extend(map()) makes the export and stores
        it in one C call: no other thread sees the holders frozen before the
        state says CLOSING (a borrow refused in between would report OPEN),
        and (Signals rule) if an interrupt comes before it, the `finally`
        detaches this close and the FD is still OPEN."""
        fd._closer = self  # before the freeze: a release that meets it finds it
        try:
            self.freeze.extend(map(memoryview, (fd._holders,)))
        finally:
            if not self.freeze:
                fd._closer = None

    # -- the close itself -------------------------------------------------------

    def _zero(self, fd: FD, me: int) -> bool:
        """ZERO if no borrow runs: the first caller to find zero in DRAINING
        claims (CLAIM); True if that is this one. Needs the lock."""
        if self.stage is not Stage.DRAINING or fd.borrow_count:
            return False  # claimed already (close_step: NOTHING), or not zero
        self.stage = CLAIM.stage
        self.claimer = me
        return True

    def release(self, fd: FD) -> None:
        """A borrow ended after the freeze (its tombstone is written): the
        release that leaves no borrow claims and runs the close.

        (Signals rule) Idempotent, and resumable by the claimer: called again
        after an interrupt struck anywhere in it, it finishes the close that
        thread claimed, without calling close_func a second time.
        """
        me = _get_ident()
        try:
            if self.claimer != me:  # (only this thread can make it me)
                lock = fd._guard()
                if lock._is_owned():
                    # Re-entered inside one of this FD's locked steps on this thread (a
                    # finalizer or signal handler): that step decides once it is out.
                    self.deferred = True
                    return
                with lock:
                    self._zero(fd, me)
                if self.claimer != me:
                    return
            self.run(fd)
        except RecursionError:
            # (The recursion limit) The retry would fail again at this depth:
            # a claim of ours is given up, for the new thread that rescue runs
            # in (the retry then finds nothing to do).
            if self.claimer == me:
                self.claimer = 0
            _start_new_thread(self.rescue, (fd,))
            raise

    def rescue(self, fd: FD) -> None:
        """What a release cut by RecursionError left undone, in a new thread (it
        starts at depth 0): take the claim given up (not DRAINING, and no
        claimer), or send ZERO, then run the close from where it stopped.

        (The recursion limit, specs/cpython.md) Unlike one after a signal, a
        retry at the same depth fails again; the one call its handler can
        still make is a C call, `_thread.start_new_thread(closing.rescue,
        (fd,))`. Does nothing if nothing was left undone."""
        me = _get_ident()
        with fd._guard():
            if self.stage is not DRAINING and not self.claimer:
                self.claimer = me
        self.release(fd)

    def settle(self, fd: FD) -> None:
        """Decide for a release deferred while this thread held the lock (call
        it after leaving a locked step, where `deferred` is set)."""
        self.deferred = False
        self.release(fd)

    def run(self, fd: FD) -> None:
        """The claimer's part: DECIDE, call close_func (or hand the number
        over), FINISH, wake every waiter. Only the claimer calls this.

        (Signals rule) Resumable: each step is marked before it is taken (how
        before close_func, the stage before the registry), so a run cut short
        is finished by running it again, and no step happens twice; but each
        waker is counted after its call (below).
        """
        if self.how is None and self.detach:
            with fd._guard():  # decided with the owner's GIVE_UP, see close_step
                if self.how is None and self._decide() is Duty.HAND_OVER:
                    self.how = "detached"
                    self.handed_over = True
                    self._finish(fd)
        if self.how is None:  # Duty.CALL_CLOSE_FUNC
            self.how = "closed"  # before the call: close_func runs at most once
            try:
                closed = fd._close_func(fd._rawfd)
                # Checked inline: a call here, once close_func has returned,
                # could fail at the recursion limit and make its success an error.
                if closed is not None and type(closed) is CoroutineType:
                    refuse_async(closed, "close_func", fd._rawfd)
            except BaseException as exc:
                self.error = exc
                self.how = "close_failed"
        if self.stage is RUNNING:
            # Without `with` (specs/cpython.md, "A locked step without `with`").
            lock = fd._lock or fd._guard()  # (none only in a forked child)
            try:
                lock.acquire()
                self._finish(fd)
            finally:
                try:  # noqa: SIM105 - suppress() is a call: a check point before the release
                    lock.release()
                except RuntimeError:  # not taken: an interrupt struck a blocked acquire
                    pass
        # WAKE every waiter, each counted in `woken` after its call, so that a
        # run resumed after an interrupt calls again the one it cut: aclose's
        # waker is Python code, which an interrupt can cut at its entry
        # (counted first, it was never called again, and its task waited for
        # good). So a waker must be safe to call twice: aclose's resolves its
        # future once; a waiting closer's lock.release() raises RuntimeError
        # the second time, as does aclose's for a loop closed since, and both
        # are ignored. Each is replaced once called: the FD keeps its Closing
        # for good, not its waiters. (Inline: a call is a tenth of a close.)
        wakers = self.wakers  # no appends after FINISHED
        while self.woken < len(wakers):
            try:
                wakers[self.woken]()
            except RecursionError:
                raise  # not called: the rescue calls it (a RuntimeError too)
            except RuntimeError:
                pass
            wakers[self.woken] = _woken
            self.woken += 1
        if self.error is not None:
            self._report_unreceived(fd)

    def _decide(self) -> Duty:
        return close_step(
            self.stage, CloseEvent.DECIDE, 0, False, self.detach and self.owner_waker is not None
        ).duty

    def _finish(self, fd: FD) -> None:
        """FINISH: the FD is CLOSED. Needs the lock. The registry comes last: an
        interrupt in it leaves the FD CLOSED and its waiters to wake, at worst
        one release uncounted, never one counted twice."""
        self.stage = FINISH.stage
        extras = fd._extras
        if extras is not None and extras.registry is not None:
            how: Release = "finalized" if self.finalizer else self.how or "closed"
            extras.registry._record_release(id(fd), how)

    def _report_unreceived(self, fd: FD) -> None:
        """close_func's error, if nobody is left to receive it (the owner timed
        out, was interrupted or cancelled, or the finalizer began the close).
        Decided in one locked step with the owner's leaving (give_up): an
        owner that leaves after it reports the error itself, so it is
        reported once, whichever of the two comes first."""
        with fd._guard():
            self.reported = True
            owner = self.owner_waker
        if owner is None:
            self._warn_unreceived(fd)

    def _warn_unreceived(self, fd: FD) -> None:
        """Report close_func's error (Exception: a RuntimeWarning; any other:
        raised), once. It is forgotten only once reported: an interrupt that
        cuts the warning before it is out leaves it for the resumed run (at
        worst reported twice, never lost); a warning raised as an error (a
        filter, a hook that raises) is the report, so the run that exception
        cuts short does not report it again."""
        error = self.error
        if error is None:
            return
        if not isinstance(error, Exception):
            self.error = None  # (no check point between this and the raise)
            raise error
        who = "in the finalizer" if self.finalizer else f"after {self.call}() stopped waiting"
        try:
            warnings.warn(
                f"rcfd: close_func raised {error!r} {who}; {fd!r} is closed",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        except Exception:
            self.error = None
            raise
        self.error = None

    def _warn_leaving(self, fd: FD) -> None:
        """_warn_unreceived for an owner that leaves without the error, from
        the handler of its own exception (a cancellation, an interrupt), which
        must reach it: a warning raised as an error is added to that exception
        as a note instead of replacing it (a task would no longer be cancelled)."""
        leaving = sys.exception()
        try:
            self._warn_unreceived(fd)
        except Exception as exc:
            if leaving is None or isinstance(leaving, Exception):
                raise
            leaving.add_note(f"rcfd: while leaving: {type(exc).__name__}: {exc}")

    # -- the waiting closers ------------------------------------------------------

    def give_up(self, fd: FD, waker: Callable[[], None], timed_out: bool) -> Duty:
        """GIVE_UP: a waiting closer's wait ended early (a deadline, an interrupt,
        a cancellation). KEEP_WAITING if close_func runs or ran and this was a
        deadline (it bounds only the borrows); otherwise LEAVE, decided and
        done in one locked step: the caller leaves and the close goes on
        without it. The one way out for the waiters of close, aclose, detach."""
        try:
            with fd._guard():
                duty = close_step(self.stage, CloseEvent.GIVE_UP, fd.borrow_count, timed_out, False)
                leave = duty.duty is Duty.LEAVE
                # The claimer gave close_func's error to this owner, which leaves
                # without it: nobody else will report it (_report_unreceived).
                unreceived = leave and self.reported and self.owner_waker is waker
                handed = leave and self._unregister(waker)
        except RecursionError:
            # (The recursion limit) Its retry would fail the same way: a new
            # thread leaves for the caller, or a detach's number goes to nobody.
            _start_new_thread(self.give_up, (fd, waker, False))
            raise
        if handed:
            closed = fd._close_func(fd._rawfd)
            if type(closed) is CoroutineType:  # (no call: see run)
                refuse_async(closed, "close_func", fd._rawfd)
        if self.deferred:
            self.settle(fd)
        if unreceived:
            self._warn_leaving(fd)
        return duty.duty

    def _unregister(self, waker: Callable[[], None]) -> bool:
        """Forget `waker` (before FINISHED; after it, its call is harmless) and,
        if it is the owner's, the owner. Needs the lock. True if the owner of a
        detach leaves with the number already handed over: it must close it."""
        if self.stage is not Stage.FINISHED:
            with contextlib.suppress(ValueError):
                self.wakers.remove(waker)
        if self.owner_waker is not waker:
            return False
        self.owner_waker = None  # close_func's error is now nobody's: warned
        handed, self.handed_over = self.handed_over, False
        return handed

    def outcome(self, fd: FD, call: str, waker: Callable[[], None]) -> int:
        """What a finished close gives the caller that waited on `waker`: the
        owner gets close_func's error, the number (detach) or -1; a waiter
        ClosedFDError, as the second close of a closed FD. The caller leaves
        (give_up) if anything else escapes, so a handed-over number is closed."""
        if self.owner_waker is not waker:
            raise fd._error(Outcome.REFUSE_CLOSED, call)
        if self.error is not None:
            raise self.error
        # handed_over stays set (written before the wake-up that let us read
        # it): if an interrupt comes before the number reaches our caller, the
        # give_up it leads to still finds it, and closes it.
        return fd._rawfd if self.handed_over else -1

    def waiting_closers(self) -> int:
        """How many closers (the owner included) wait for this close to finish."""
        return len(self.wakers) - self.woken

    # -- fork --------------------------------------------------------------------

    def after_fork(self, fd: FD, me: int) -> bool:
        """In a forked child, for a close that had frozen the holders: drop the
        borrows of every thread but `me` (by tombstones: the holders are
        frozen), and forget the owner unless it is `me` (its thread is gone: a
        detach becomes a close, close_func's error is warned). True if the close is left for
        finish_after_fork, once every FD has a usable lock."""
        running = Counter(fd._holders)
        running.subtract(self.released)
        for tid, count in running.items():
            if tid != me and count > 0:
                self.released += [tid] * count
        if self.stage is Stage.FINISHED:
            return False
        # The owner's thread is gone, unless it forked (in on_closing, or in
        # the close_func of a close it runs): then it still waits for the
        # outcome. The wakers are all kept: the forking thread may wait among
        # them (a joiner that a signal handler forked), and a vanished
        # thread's is harmless to call (its lock, or its loop, has no waiter).
        if self.owner != me:
            self.owner_waker = None
        return True

    def finish_after_fork(self, fd: FD, me: int) -> None:
        """Finish a close inherited unfinished. If `me` (the forking thread)
        still borrows, its release will; if it is the claimer, it forked in
        close_func, and its run goes on once the fork returns. Otherwise this
        thread claims it: a close_func already called by a vanished thread is
        not called again (how is set before the call), so a number is never
        closed twice."""
        if fd.borrow_count or (self.stage is RUNNING and self.claimer == me):
            return
        self.stage, self.claimer = Stage.RUNNING, me
        self.run(fd)


def _CLAIMER() -> None:
    """The owner_waker of a close_alone owner while it has no waker (it runs
    the close itself): never in `wakers`, never called; it stands for the
    owner, who receives close_func's error."""


def _woken() -> None:
    """What stands in `wakers` for a waker once called (Closing.run)."""


def refuse_async(coroutine: object, what: str, rawfd: int) -> NoReturn:
    """The coroutine an `async def` close_func or on_closing returned, which
    nobody awaits: the number would stay open while the FD says CLOSED."""
    still = " (the number is still open)" if what == "close_func" else ""
    _nogil.refuse(
        coroutine,
        f"{what}({rawfd}) returned a coroutine, which nobody awaits: it never "
        f"ran{still}; {what} must be a blocking function, not an async def",
    )


def timed_out(fd: FD, call: str, timeout: float | None) -> str:
    return (
        f"rcfd: {call}() timed out after {timeout}s with {fd.borrow_count} "
        "borrow(s) running; the FD stays CLOSING and the last borrow will close it"
    )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
