"""The FD lifecycle as a pure function: states, events, outcomes, and `step`.

This module owns the state machine and nothing else: no locks, no I/O, no
clock. `rcfd._fd.FD` applies `step` under its lock for transitions, and
inline (one atomic append or remove, no lock) for a borrow or a release in
OPEN; `tests/test_hot_path.py` keeps the inline form equal to `step`.
`specs/rcfd.md` holds the same rules as a table, and
`tests/test_spec_table.py` keeps the two equal.

    UNINIT --INIT--> OPEN --CLOSE/DETACH--> CLOSING --FINISH--> CLOSED

A close begins by taking a borrow of its own (so that `on_closing` runs on a
valid descriptor) and then releases it like any other borrow; the release
that brings the count to zero in CLOSING is told to RUN_CLOSE. That single
rule is why close_func runs exactly once and never under a borrow.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class State(enum.Enum):
    """Where an FD is in its life. Each state is entered once, in this order."""

    UNINIT = "uninit"  # no descriptor yet; init() is the only way forward
    OPEN = "open"  # the descriptor is valid; borrows may start
    CLOSING = "closing"  # close began; no borrow may start; close_func not finished
    CLOSED = "closed"  # close_func has returned (or raised); the number is gone


class Event(enum.Enum):
    """What a caller asks of the FD (one per public call, plus internal steps)."""

    INIT = "init"  # init(rawfd, close_func)
    TRACK = "track"  # track_lifetime(registry)
    BORROW = "borrow"  # do(fn) / borrow() / dup() begins
    RELEASE = "release"  # a borrow ends, however fn exited
    CLOSE = "close"  # close() / aclose() / __exit__
    DETACH = "detach"  # detach(): a close that hands the number back
    FINALIZE = "finalize"  # the FD became unreachable (never while borrowed)
    FINISH = "finish"  # close_func returned or raised


class Outcome(enum.Enum):
    """What the caller must do after `step`. REFUSE_* outcomes change nothing."""

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

    # Event.FINISH: close_func returned; only the RUN_CLOSE caller sends it.
    if state is State.CLOSING and borrows == 0:
        return Transition(State.CLOSED, 0, Outcome.OK)
    return Transition(state, borrows, Outcome.IGNORE)
