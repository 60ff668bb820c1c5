"""The words the model, the traces and the drivers share: commands, results,
what one step did, and what can be observed of an FD between steps.

Nothing here knows how an FD works; model.lifecycle gives the words their
meaning, and specs/traces.md documents them for ports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The calls a logical thread can make, and the argument each takes.
CALL_ARGS: dict[str, tuple[str, ...]] = {
    # What close_func and on_closing do: close_func closes the number and
    # returns ("ok") or then raises ("raises"); or close_func *pauses*
    # ("pauses"): it keeps a reference to its FD, and the thread that runs it
    # takes calls (on that FD) until end_callback; run by the finalizer, it
    # makes the FD reachable again. "on_closing_pauses": on_closing pauses
    # the same way, in the closer's thread, under the closer's borrow.
    "init": ("ok", "raises", "pauses", "on_closing_pauses"),
    "track_lifetime": ("",),
    "begin_borrow": ("do", "borrow"),  # do(fn) or `with fd.borrow()`; fn keeps running
    "end_borrow": ("return", "raise", "interrupt"),  # how the innermost fn exits
    # A generator, on this thread, enters `with fd.borrow()` and suspends:
    # the borrow is this thread's, held by the generator object.
    "hold_borrow": ("",),
    "release_held": ("",),  # this thread closes the oldest such generator: its borrow ends
    "close": ("none", "expires", "invalid"),  # timeout: None, one that expires, negative
    "detach": ("",),
    "dup": ("",),  # dup(), then close the copy at once (same close_func and registry)
    "end_callback": ("return", "raise"),  # the thread's paused callback returns or raises
    # The FD and every generator holding a borrow of it become garbage
    # together; the collector runs their finalizers on this thread, the FD's
    # first ("") or the generators' first ("holders-first").
    "drop": ("", "holders-first"),
}

# Results, in a vocabulary a port can map onto its own errors (specs/traces.md).
OK = "ok"
OK_FN = "ok:fn"  # do()/borrow() returned what fn returned
OK_RAWFD = "ok:rawfd"  # detach() handed the number back
OK_DUP = "ok:dup"  # dup() returned a new FD
ERR_UNINIT = "err:UninitializedFD"
ERR_CLOSED = "err:ClosedFD"
ERR_MULTIPLE_INIT = "err:MultipleInit"
ERR_CLOSE_IN_BORROW = "err:CloseInsideBorrow"
ERR_CLOSE_IN_CLOSE_FUNC = "err:CloseInsideCloseFunc"
ERR_TIMEOUT = "err:Timeout"
ERR_INVALID = "err:InvalidArgument"
ERR_FN = "err:FnError"  # fn's own exception, propagated by do()
ERR_FN_INTERRUPT = "err:FnInterrupt"  # fn's BaseException (KeyboardInterrupt-like)
ERR_CLOSE_FUNC = "err:CloseFuncError"  # close_func's exception, to the closer that began
ERR_ON_CLOSING = "err:OnClosingError"  # on_closing's exception, to the closer that ran it

REFUSALS = frozenset(
    {
        ERR_UNINIT,
        ERR_CLOSED,
        ERR_MULTIPLE_INIT,
        ERR_CLOSE_IN_BORROW,
        ERR_CLOSE_IN_CLOSE_FUNC,
        ERR_INVALID,
    }
)
# What a close/detach returns once close_func has finished (guarantee 5).
FINISHED = frozenset({OK, OK_RAWFD, ERR_CLOSE_FUNC, ERR_CLOSED})


@dataclass(frozen=True)
class Command:
    """`thread` makes `call` with `arg` (one of CALL_ARGS[call])."""

    thread: int
    call: str
    arg: str = ""

    def __str__(self) -> str:
        shown = f"({self.arg})" if self.arg else "()"
        return f"T{self.thread} {self.call}{shown}"


@dataclass
class Call:
    """One call made by one thread; `result` is None while it runs."""

    id: int  # the step that started it
    thread: int
    command: Command
    result: str | None = None

    def __str__(self) -> str:
        return f"T{self.thread} {self.command.call}#{self.id}"


@dataclass
class Callback:
    """close_func or on_closing, paused in `thread`: the thread takes calls
    until end_callback; then `then` carries on with what the callback
    interrupted (finish the close, return the calls waiting for it)."""

    kind: str  # "close_func" or "on_closing"
    thread: int
    then: Callable[[bool], None]  # called with whether the callback raised

    def __str__(self) -> str:
        return f"T{self.thread} in {self.kind}"


Frame = Call | Callback  # a thread's stack holds running calls and paused callbacks


@dataclass(frozen=True)
class TableEvent:
    """One application of the spec's `step` (a row of its transition table)."""

    state: str
    event: str
    borrows: int
    caller: int
    in_close_func: bool
    next_state: str
    borrows_after: int
    outcome: str


@dataclass(frozen=True)
class Registry:
    """LifetimeRegistry.fd_stats() counts; `in_flight` is a number of FDs."""

    initialized: int = 0
    closed: int = 0
    close_failed: int = 0
    detached: int = 0
    finalized: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class Observation:
    """What a test can see of an FD between steps. state "GONE" once dropped."""

    state: str
    borrows: int
    close_func_calls: int  # calls on the FD's own number (a dup's copy has its own)
    on_closing_calls: int
    # close/detach calls that will return when the FD reaches CLOSED: the one
    # that began the close while it still waits (or runs on_closing), and
    # every one that found the close begun (WAIT). A closer counts from the
    # moment it has registered, so a replayer can tell it is waiting.
    closers_waiting: int
    registry: Registry
    resource_warnings: int  # "unclosed <rcfd.FD ...>" from the finalizer
    runtime_warnings: int  # close_func raised and nobody was waiting for the close


@dataclass
class Step:
    """What one command did: the call it started, the calls that returned."""

    started: Call
    entered: bool  # a borrow began: its fn is running
    completed: list[Call]
    events: list[TableEvent]
    blocks: bool  # the started call is still running (a borrow, a wait, a paused callback)
    paused: list[Callback]  # callbacks that began in this step and are now paused
