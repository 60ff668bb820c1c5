"""The FD lifecycle as pure functions: states, events, outcomes, `step`, and
the CLOSING sub-machine's stages and `close_step`.

This module owns the state machines and nothing else: no locks, no I/O, no
clock. `rcfd._fd.FD` applies `step` under its lock for transitions, and
inline (one atomic insert or remove, no lock) for a borrow or a release in
OPEN; `tests/test_hot_path.py` keeps the inline form equal to `step`.
`rcfd._closing.Closing` applies `close_step` to one close. `specs/rcfd.md`
holds the same rules as two tables, and `tests/test_spec_table.py` keeps
each equal to its function.

    UNINIT --INIT--> OPEN --CLOSE/DETACH/FINALIZE--> CLOSING --FINISH--> CLOSED
                                         CLOSING = DRAINING -> RUNNING -> FINISHED

A close begins by refusing new borrows, and the running ones drain; the
release that brings the count to zero in CLOSING is told to RUN_CLOSE (the
closer counts as a borrow while it runs on_closing, and finds zero itself
when nothing was running). That single rule is why close_func runs exactly
once and never under a borrow.
"""

from __future__ import annotations

import enum
import itertools
from typing import NamedTuple


class State(enum.Enum):
    """Where an FD is in its life. Each state is entered once, in this order."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    UNINIT = "uninit"  # no descriptor yet; init() is the only way forward
    OPEN = "open"  # the descriptor is valid; borrows may start
    CLOSING = "closing"  # close began; no borrow may start; close_func not finished
    CLOSED = "closed"  # close_func has returned (or raised); the number is gone


class Event(enum.Enum):
    """What a caller asks of the FD (one per public call, plus internal steps)."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    INIT = "init"  # init(rawfd, close_func)
    TRACK = "track"  # track_lifetime(registry)
    BORROW = "borrow"  # do(fn) / borrow() / dup() begins
    RELEASE = "release"  # a borrow ends, however fn exited
    CLOSE = "close"  # close() / aclose() / __exit__
    DETACH = "detach"  # detach(): a close that hands the number back
    FINALIZE = "finalize"  # the FD became unreachable (never while borrowed)
    FINISH = "finish"  # close_func returned or raised, or a detach handed the number over


class Outcome(enum.Enum):
    """What the caller must do after `step`. REFUSE_* outcomes change nothing."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    OK = "ok"  # done; nothing more to do
    BEGIN_CLOSE = "begin_close"  # this caller began the close and holds its borrow
    RUN_CLOSE = "run_close"  # count reached zero in CLOSING: run close_func now
    WAIT = "wait"  # another caller began the close: wait for CLOSED
    IGNORE = "ignore"  # nothing to do (a finalizer on a FD that needs none)
    REFUSE_UNINIT = "refuse_uninit"  # -> UninitializedFDError
    REFUSE_CLOSED = "refuse_closed"  # -> ClosedFDError
    REFUSE_MULTIPLE_INIT = "refuse_multiple_init"  # -> MultipleInitError
    REFUSE_CLOSE_IN_BORROW = "refuse_close_in_borrow"  # -> CloseInsideBorrowError
    REFUSE_CLOSE_IN_CLOSE_FUNC = "refuse_close_in_close_func"  # -> CloseInsideCloseFuncError


REFUSALS = frozenset(
    {
        Outcome.REFUSE_UNINIT,
        Outcome.REFUSE_CLOSED,
        Outcome.REFUSE_MULTIPLE_INIT,
        Outcome.REFUSE_CLOSE_IN_BORROW,
        Outcome.REFUSE_CLOSE_IN_CLOSE_FUNC,
    }
)


class Transition(NamedTuple):
    """The result of `step`: the FD's next state and count, and the caller's duty."""

    state: State
    borrows: int
    outcome: Outcome



def step(
    state: State, borrows: int, caller_borrows: int, event: Event, in_close_func: bool = False
) -> Transition:
    """Apply `event` to an FD in `state` with `borrows` running borrows, of which
    `caller_borrows` belong to the calling thread; `in_close_func` says that the
    calling thread is the one running this FD's close_func (a callback calling
    back into its own FD).

    pre: 0 <= caller_borrows <= borrows
    pre: not in_close_func or (state == State.CLOSING and borrows == 0)
    pre: state != State.UNINIT or borrows == 0
    pre: state != State.CLOSED or borrows == 0
    pre: event != Event.RELEASE or caller_borrows > 0
    post: __return__.borrows >= 0
    post: __return__.state != State.CLOSED or __return__.borrows == 0
    post: __return__.state != State.UNINIT or __return__.borrows == 0
    post: (__return__.outcome not in REFUSALS) or (__return__.state, __return__.borrows) == (state, borrows)
    post: __return__.outcome != Outcome.RUN_CLOSE or (__return__.state == State.CLOSING and __return__.borrows == 0)
    post: (__return__.borrows > borrows) == (__return__.outcome in (Outcome.OK, Outcome.BEGIN_CLOSE) and event in (Event.BORROW, Event.CLOSE, Event.DETACH))
    post: not (state in (State.CLOSING, State.CLOSED) and event == Event.BORROW) or __return__.outcome == Outcome.REFUSE_CLOSED
    post: state != State.CLOSED or __return__.state == State.CLOSED
    post: not (in_close_func and event in (Event.CLOSE, Event.DETACH)) or __return__.outcome == Outcome.REFUSE_CLOSE_IN_CLOSE_FUNC
    post: not (state == State.OPEN and event == Event.FINALIZE) or __return__.state == State.CLOSING
    """
    if event is Event.INIT:
        # Go's rc: init on a closed FD is ErrClosedFD, on an initialized one
        # ErrMultipleInit. CLOSING counts as closed: the close has begun.
        if state is State.UNINIT:
            return Transition(State.OPEN, 0, Outcome.OK)
        if state is State.OPEN:
            return Transition(state, borrows, Outcome.REFUSE_MULTIPLE_INIT)
        return Transition(state, borrows, Outcome.REFUSE_CLOSED)

    if event is Event.TRACK:
        # A registry attached after init would see a close without its init.
        if state is State.UNINIT:
            return Transition(state, borrows, Outcome.OK)
        return Transition(state, borrows, Outcome.REFUSE_MULTIPLE_INIT)

    if event is Event.BORROW:
        # Refused at once in CLOSING: a borrow that waited would let a stream
        # of borrowers starve the closer (Go's rc blocks; internal/poll refuses).
        if state is State.OPEN:
            return Transition(state, borrows + 1, Outcome.OK)
        if state is State.UNINIT:
            return Transition(state, borrows, Outcome.REFUSE_UNINIT)
        return Transition(state, borrows, Outcome.REFUSE_CLOSED)

    if event is Event.RELEASE:
        # Only a borrower releases, so the state is OPEN or CLOSING here.
        if state is State.CLOSING and borrows == 1:
            return Transition(state, 0, Outcome.RUN_CLOSE)
        return Transition(state, borrows - 1, Outcome.OK)

    if event is Event.CLOSE or event is Event.DETACH:
        if state is State.UNINIT:
            return Transition(state, borrows, Outcome.REFUSE_UNINIT)
        # Waiting for our own borrow would never end (Go's rc deadlocks here);
        # nor would waiting, from inside close_func, for close_func to return.
        if caller_borrows > 0:
            return Transition(state, borrows, Outcome.REFUSE_CLOSE_IN_BORROW)
        if in_close_func:
            return Transition(state, borrows, Outcome.REFUSE_CLOSE_IN_CLOSE_FUNC)
        if state is State.OPEN:
            return Transition(State.CLOSING, borrows + 1, Outcome.BEGIN_CLOSE)
        if state is State.CLOSING:
            return Transition(state, borrows, Outcome.WAIT)
        return Transition(state, borrows, Outcome.REFUSE_CLOSED)

    if event is Event.FINALIZE:
        # The FD is unreachable, yet borrows may still run: held by objects
        # that are garbage too (a suspended generator in the same cycle), whose
        # finalizers release them later. The finalizer begins the close like
        # close() does, so the release that brings the count to zero runs it.
        if state is State.OPEN:
            if borrows == 0:
                return Transition(State.CLOSING, 0, Outcome.RUN_CLOSE)
            return Transition(State.CLOSING, borrows, Outcome.OK)
        return Transition(state, borrows, Outcome.IGNORE)

    # Event.FINISH: close_func returned or raised, or a detach handed the
    # number over; only the RUN_CLOSE caller sends it.
    if state is State.CLOSING and borrows == 0:
        return Transition(State.CLOSED, 0, Outcome.OK)
    return Transition(state, borrows, Outcome.IGNORE)


# -- step() as data, for the FD ------------------------------------------------

Key = tuple[State, Event, bool, bool, bool]
"""(state, event, the caller holds a borrow, the caller runs close_func, no
borrow runs): everything step() reads for the events the FD applies under its
lock (INIT, TRACK, CLOSE, DETACH, FINALIZE); RELEASE and BORROW it applies
inline (rcfd._fd, tests/test_hot_path.py)."""


def _table() -> dict[Key, tuple[State, Outcome]]:
    """step() on every input the FD can present for those events, read once at
    import: a dict lookup on each close instead of a call (a step() call costs
    about as much as the rest of a close). `borrows` is left out of the value:
    the FD derives its count from its holders (a port with a counter stores it)."""
    table = {}
    for state in State:
        for event in (Event.INIT, Event.TRACK, Event.CLOSE, Event.DETACH, Event.FINALIZE):
            for holds, in_close_func, none in itertools.product((False, True), repeat=3):
                borrows = 0 if none else 2
                if (none and holds) or (borrows and state in (State.UNINIT, State.CLOSED)):
                    continue
                if in_close_func and (state is not State.CLOSING or borrows):
                    continue
                t = step(state, borrows, 1 if holds else 0, event, in_close_func)
                table[(state, event, holds, in_close_func, none)] = (t.state, t.outcome)
    return table


TABLE = _table()


# -- CLOSING, one close from the freeze to the last waiter woken ------------


class Stage(enum.Enum):
    """Where one close is. The FD is CLOSING in DRAINING and RUNNING, CLOSED
    in FINISHED. Each stage is entered once, in this order."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    DRAINING = "draining"  # borrows refused; the running ones drain to zero
    RUNNING = "running"  # a caller found zero and claimed: it calls close_func (or hands over)
    FINISHED = "finished"  # CLOSED: close_func returned or raised, or the number was handed over


class CloseEvent(enum.Enum):
    """What happens to one close."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    ZERO = "zero"  # a release (or the closer, or the finalizer) found no borrow running
    DECIDE = "decide"  # the claimer chooses: call close_func, or hand the number over
    FINISH = "finish"  # close_func returned or raised, or a detach handed the number over, or the number was handed over
    GIVE_UP = "give_up"  # a waiting closer's wait ended early: timeout, interrupt, cancellation


class Duty(enum.Enum):
    """What the caller of `close_step` must do next."""

    __hash__ = object.__hash__  # members are singletons: identity is equality

    CLAIM = "claim"  # this caller, and only it, runs the close (DECIDE, then FINISH)
    NOTHING = "nothing"  # someone else has it in hand
    CALL_CLOSE_FUNC = "call_close_func"  # close the number
    HAND_OVER = "hand_over"  # a detach whose owner still waits: the number is the owner's
    WAKE = "wake"  # call every waiter's waker, once each
    KEEP_WAITING = "keep_waiting"  # close_func runs or ran: the deadline bounded only the borrows
    LEAVE = "leave"  # stop waiting; the close goes on without this caller


class CloseTransition(NamedTuple):
    """The result of `close_step`: the close's next stage, and the caller's duty."""

    stage: Stage
    duty: Duty


def close_step(
    stage: Stage, event: CloseEvent, borrows: int, timed_out: bool, owner_waits: bool
) -> CloseTransition:
    """Apply `event` to a close in `stage`, with `borrows` still running.
    `timed_out`: a GIVE_UP is a deadline (not an interrupt or a cancellation).
    `owner_waits`: the close is a detach whose caller still waits for its number.

    pre: borrows >= 0
    pre: event != CloseEvent.ZERO or borrows == 0
    pre: event != CloseEvent.DECIDE or stage == Stage.RUNNING
    pre: event != CloseEvent.FINISH or stage != Stage.DRAINING
    pre: stage == Stage.DRAINING or borrows == 0
    post: __return__.duty != Duty.CLAIM or (stage == Stage.DRAINING and __return__.stage == Stage.RUNNING)
    post: __return__.stage != Stage.FINISHED or stage != Stage.DRAINING
    post: __return__.duty != Duty.WAKE or (stage == Stage.RUNNING and __return__.stage == Stage.FINISHED)
    post: __return__.duty != Duty.HAND_OVER or owner_waits
    post: event != CloseEvent.GIVE_UP or __return__.stage == stage
    post: __return__.duty != Duty.KEEP_WAITING or (timed_out and borrows == 0)
    """
    if event is CloseEvent.ZERO:
        # The first to find zero claims; the others (a late release, the
        # closer re-checking after an interrupt) leave it to the claimer.
        if stage is Stage.DRAINING:
            return CloseTransition(Stage.RUNNING, Duty.CLAIM)
        return CloseTransition(stage, Duty.NOTHING)
    if event is CloseEvent.DECIDE:
        # Decided under the lock with the owner's GIVE_UP: an owner that
        # leaves either finds the number handed over (and closes it) or not
        # yet (and then close_func closes it); it is never orphaned.
        if owner_waits:
            return CloseTransition(stage, Duty.HAND_OVER)
        return CloseTransition(stage, Duty.CALL_CLOSE_FUNC)
    if event is CloseEvent.FINISH:
        if stage is Stage.RUNNING:
            return CloseTransition(Stage.FINISHED, Duty.WAKE)
        return CloseTransition(stage, Duty.NOTHING)  # a resumed run: already finished
    # GIVE_UP. The timeout bounds the wait for borrows (guarantee 8): once none
    # runs, close_func runs or is about to, and a deadline waits for it.
    if timed_out and borrows == 0:
        return CloseTransition(stage, Duty.KEEP_WAITING)
    return CloseTransition(stage, Duty.LEAVE)
