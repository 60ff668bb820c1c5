"""The abstract FD of specs/rcfd.md: one descriptor shared by logical threads.

This is a second implementation of the spec, written from specs/rcfd.md
alone, for a porter to read next to it. It knows nothing of locks, clocks or
rcfd's code: each public call is a command that either returns within the
step that issued it or stays running (a borrow whose fn has not returned, a
close waiting for borrows) until a later step ends it.

Invariants of the abstract state (checked by model.guarantees):
  a thread's stack is its running borrows, innermost last, and at most one
  close/detach on top of them, which is then blocked (so the thread holds no
  borrow: a close under a borrow is refused at once);
  borrows() == the number of running borrows, 0 in UNINIT and CLOSED;
  closer is set exactly in CLOSING and CLOSED when a close/detach began it;
  close_func runs in the step whose release takes the count to zero in
  CLOSING, or when the finalizer drops an OPEN FD, and nowhere else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Phase(enum.Enum):
    """The spec's states, entered once each, in this order."""

    UNINIT = "UNINIT"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


# The calls a logical thread can make, and the argument each takes.
CALL_ARGS: dict[str, tuple[str, ...]] = {
    "init": ("ok", "raises"),  # close_func returns, or raises after closing the number
    "track_lifetime": ("",),
    "begin_borrow": ("do", "borrow"),  # do(fn) or `with fd.borrow()`; fn keeps running
    "end_borrow": ("return", "raise", "interrupt"),  # how the innermost fn exits
    "close": ("none", "expires", "invalid"),  # timeout: None, one that expires, negative
    "detach": ("",),
    "drop": ("",),  # the last reference goes: the finalizer's turn
}

# Results, in a vocabulary a port can map onto its own errors (specs/traces.md).
OK = "ok"
OK_FN = "ok:fn"  # do()/borrow() returned what fn returned
OK_RAWFD = "ok:rawfd"  # detach() handed the number back
ERR_UNINIT = "err:UninitializedFD"
ERR_CLOSED = "err:ClosedFD"
ERR_MULTIPLE_INIT = "err:MultipleInit"
ERR_CLOSE_IN_BORROW = "err:CloseInsideBorrow"
ERR_TIMEOUT = "err:Timeout"
ERR_INVALID = "err:InvalidArgument"
ERR_FN = "err:FnError"  # fn's own exception, propagated by do()
ERR_FN_INTERRUPT = "err:FnInterrupt"  # fn's BaseException (KeyboardInterrupt-like)
ERR_CLOSE_FUNC = "err:CloseFuncError"  # close_func's exception, to the closer that began

REFUSALS = frozenset({ERR_UNINIT, ERR_CLOSED, ERR_MULTIPLE_INIT, ERR_CLOSE_IN_BORROW, ERR_INVALID})


@dataclass(frozen=True)
class Command:
    """`thread` makes `call` with `arg` (one of CALL_ARGS[call]); drop has no thread."""

    thread: int
    call: str
    arg: str = ""

    def __str__(self) -> str:
        shown = f"({self.arg})" if self.arg else "()"
        who = "--" if self.call == "drop" else f"T{self.thread}"
        return f"{who} {self.call}{shown}"


@dataclass
class Call:
    """One call made by one thread; `result` is None while it runs."""

    id: int  # the step that started it
    thread: int
    command: Command
    result: str | None = None

    def __str__(self) -> str:
        return f"T{self.thread} {self.command.call}#{self.id}"


@dataclass(frozen=True)
class TableEvent:
    """One application of the spec's `step` (a row of its transition table)."""

    state: str
    event: str
    borrows: int
    caller: int
    next_state: str
    borrows_after: int
    outcome: str


@dataclass(frozen=True)
class Registry:
    """LifetimeRegistry.fd_stats() counts, `in_flight` as a number of FDs."""

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
    close_func_calls: int
    on_closing_calls: int
    registry: Registry
    resource_warnings: int  # "unclosed <rcfd.FD ...>" from the finalizer
    runtime_warnings: int  # close_func raised after its closer stopped waiting


@dataclass
class Step:
    """What one command did: the call it started, the calls that returned."""

    started: Call
    entered: bool  # a borrow began: its fn is running
    completed: list[Call]
    events: list[TableEvent]
    blocks: bool  # the started call is still running (a borrow or a waiting close)


@dataclass
class FDModel:
    """The FD, its registry and the logical threads that use it."""

    threads: int
    phase: Phase = Phase.UNINIT
    stacks: list[list[Call]] = field(default_factory=list)  # per thread, innermost last
    close_func_fails: bool = False
    tracked: bool = False
    closer: Call | None = None  # the close/detach that began the close
    closer_waiting: bool = False  # it has not returned yet (no timeout, no error)
    waiters: list[Call] = field(default_factory=list)  # second closers (WAIT)
    close_func_calls: int = 0
    on_closing_calls: int = 0
    handed_back: bool = False
    registry: Registry = Registry()
    resource_warnings: int = 0
    runtime_warnings: int = 0
    gone: bool = False
    calls: list[Call] = field(default_factory=list)
    # History the guarantees are stated over (model.guarantees).
    borrows_at_close_func: list[int] = field(default_factory=list)
    borrows_begun_after_close: int = 0
    closers_returned_before_closed: list[str] = field(default_factory=list)
    refusals_that_changed: list[str] = field(default_factory=list)
    _events: list[TableEvent] = field(default_factory=list)
    _completed: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stacks:
            self.stacks = [[] for _ in range(self.threads)]

    # -- what can happen next ----------------------------------------------

    def borrows(self) -> int:
        return sum(self.holds(t) for t in range(self.threads))

    def holds(self, thread: int) -> int:
        return sum(1 for call in self.stacks[thread] if call.command.call == "begin_borrow")

    def can_call(self, thread: int) -> bool:
        """The thread is idle, or running inside a borrow's fn (which takes commands)."""
        stack = self.stacks[thread]
        return not self.gone and (not stack or stack[-1].command.call == "begin_borrow")

    def in_borrow(self, thread: int) -> bool:
        stack = self.stacks[thread]
        return not self.gone and bool(stack) and stack[-1].command.call == "begin_borrow"

    def all_idle(self) -> bool:
        return all(not stack for stack in self.stacks)

    def running(self) -> list[Call]:
        return [call for stack in self.stacks for call in stack]

    def observe(self) -> Observation:
        return Observation(
            state="GONE" if self.gone else self.phase.value,
            borrows=self.borrows(),
            close_func_calls=self.close_func_calls,
            on_closing_calls=self.on_closing_calls,
            registry=self.registry,
            resource_warnings=self.resource_warnings,
            runtime_warnings=self.runtime_warnings,
        )

    # -- the commands ------------------------------------------------------

    def apply(self, command: Command, call_id: int | None = None) -> Step:
        """Carry out `command`; every call it lets return returns in this step.

        The call's id is the number of calls so far unless `call_id` names it
        (two raced calls keep their ids whichever the model applies first).
        """
        if command.call not in CALL_ARGS or command.arg not in CALL_ARGS[command.call]:
            raise ValueError(f"not a command: {command}")
        if command.call == "drop":
            if not self.all_idle() or self.gone:
                raise ValueError("drop needs a live FD that no thread is using")
        elif command.call == "end_borrow":
            if not self.in_borrow(command.thread):
                raise ValueError(f"T{command.thread} is not inside a borrow")
        elif not self.can_call(command.thread):
            raise ValueError(f"T{command.thread} is blocked and cannot call")
        self._events, self._completed = [], []
        call = Call(len(self.calls) if call_id is None else call_id, command.thread, command)
        self.calls.append(call)
        before = self._snapshot()
        blocks = entered = False
        if command.call == "init":
            self._init(call)
        elif command.call == "track_lifetime":
            self._track(call)
        elif command.call == "begin_borrow":
            entered = blocks = self._begin_borrow(call)
        elif command.call == "end_borrow":
            self._end_borrow(call)
        elif command.call in ("close", "detach"):
            blocks = self._close(call)
        else:
            self._drop(call)
        if call.result in REFUSALS and self._snapshot() != before:
            self.refusals_that_changed.append(f"{call}: {call.result}")
        return Step(call, entered, self._completed, self._events, blocks)

    def _init(self, call: Call) -> None:
        if self.phase is Phase.UNINIT:
            self._event(call, "INIT", Phase.OPEN, 0, "OK")
            self.close_func_fails = call.command.arg == "raises"
            self._count(initialized=1, in_flight=1)
            self._return(call, OK)
        elif self.phase is Phase.OPEN:
            self._event(call, "INIT", self.phase, self.borrows(), "REFUSE_MULTIPLE_INIT")
            self._return(call, ERR_MULTIPLE_INIT)
        else:  # the FD has had its one life
            self._event(call, "INIT", self.phase, self.borrows(), "REFUSE_CLOSED")
            self._return(call, ERR_CLOSED)

    def _track(self, call: Call) -> None:
        if self.phase is Phase.UNINIT:
            self._event(call, "TRACK", self.phase, 0, "OK")
            self.tracked = True
            self._return(call, OK)
        else:  # after init the registry would see a release without its init
            self._event(call, "TRACK", self.phase, self.borrows(), "REFUSE_MULTIPLE_INIT")
            self._return(call, ERR_MULTIPLE_INIT)

    def _begin_borrow(self, call: Call) -> bool:
        if self.phase is Phase.OPEN:
            self._event(call, "BORROW", self.phase, self.borrows() + 1, "OK")
            self.stacks[call.thread].append(call)
            return True
        if self.phase is Phase.UNINIT:
            self._event(call, "BORROW", self.phase, 0, "REFUSE_UNINIT")
            self._return(call, ERR_UNINIT)
        else:  # refused at once, never queued: a stream of borrows cannot starve a close
            self._event(call, "BORROW", self.phase, self.borrows(), "REFUSE_CLOSED")
            self._return(call, ERR_CLOSED)
        return False

    def _end_borrow(self, call: Call) -> None:
        """The innermost fn of the thread exits as told; the borrow ends either way."""
        borrow = self.stacks[call.thread].pop()
        self._return(call, OK)
        how = call.command.arg
        result = OK_FN if how == "return" else ERR_FN if how == "raise" else ERR_FN_INTERRUPT
        self._release(borrow, caller=self.holds(call.thread) + 1)
        self._return(borrow, result)

    def _close(self, call: Call) -> bool:
        """close()/detach(): refuse, begin the close, or wait for another's."""
        t, kind = call.thread, call.command.call.upper()
        if call.command.arg == "invalid":  # arguments are checked before the state
            self._return(call, ERR_INVALID)
            return False
        expires = call.command.arg == "expires"
        n, caller = self.borrows(), self.holds(t)
        if self.phase is Phase.UNINIT:
            self._event(call, kind, self.phase, n, "REFUSE_UNINIT", caller)
            self._return(call, ERR_UNINIT)
            return False
        if self.phase is Phase.CLOSED:
            self._event(call, kind, self.phase, n, "REFUSE_CLOSED", caller)
            self._return(call, ERR_CLOSED)
            return False
        if caller > 0:  # it would wait for its own borrow forever
            self._event(call, kind, self.phase, n, "REFUSE_CLOSE_IN_BORROW", caller)
            self._return(call, ERR_CLOSE_IN_BORROW)
            return False
        self.stacks[t].append(call)
        if self.phase is Phase.CLOSING:
            self._event(call, kind, self.phase, n, "WAIT")
            self.waiters.append(call)
        else:
            # The close takes a borrow of its own, so on_closing sees a valid
            # number, then releases it like any other borrow.
            self._event(call, kind, Phase.CLOSING, n + 1, "BEGIN_CLOSE")
            self.closer, self.closer_waiting = call, True
            self.on_closing_calls += 1
            self._release(call, caller=1)
        if call.result is None and expires:
            # Borrows still run at the deadline: give up waiting; the last
            # borrow will close the FD.
            self.stacks[t].remove(call)
            if call is self.closer:
                self.closer_waiting = False
            else:
                self.waiters.remove(call)
            self._return(call, ERR_TIMEOUT)
        return call.result is None

    def _drop(self, call: Call) -> None:
        """The FD became unreachable (so no borrow runs): its finalizer's turn."""
        n = self.borrows()
        if self.phase is Phase.OPEN:
            self._event(call, "FINALIZE", Phase.CLOSING, 0, "RUN_CLOSE")
            self.resource_warnings += 1
            self._run_close_func(finalized=True)
            self._event(call, "FINISH", Phase.CLOSED, 0, "OK", 0, 0)
        else:
            self._event(call, "FINALIZE", self.phase, n, "IGNORE")
        self.gone = True
        self._return(call, OK)

    # -- internal steps ----------------------------------------------------

    def _release(self, borrow: Call, caller: int) -> None:
        """One borrow ends: an ended fn's (already off its stack) or a closer's own
        (never on a stack), so the count before this release is borrows() + 1."""
        n = self.borrows() + 1
        if self.phase is Phase.CLOSING and n == 1:
            self._event(borrow, "RELEASE", self.phase, 0, "RUN_CLOSE", caller, n)
            self._finish_close()
        else:
            self._event(borrow, "RELEASE", self.phase, n - 1, "OK", caller, n)

    def _finish_close(self) -> None:
        """The count reached zero in CLOSING: close (or hand back), then CLOSED."""
        closer = self.closer
        assert closer is not None
        if closer.command.call == "detach" and self.closer_waiting:
            self.handed_back = True
            self._count(detached=1, in_flight=-1)
        else:
            self._run_close_func(finalized=False)
        self._event(closer, "FINISH", Phase.CLOSED, 0, "OK", 0, 0)
        for waiter in self.waiters:
            self.stacks[waiter.thread].remove(waiter)
            self._return(waiter, ERR_CLOSED)
        self.waiters = []
        if self.closer_waiting:
            self.stacks[closer.thread].remove(closer)
            self.closer_waiting = False
            if self.handed_back:
                self._return(closer, OK_RAWFD)
            else:
                self._return(closer, ERR_CLOSE_FUNC if self.close_func_fails else OK)
        elif self.close_func_fails:
            self.runtime_warnings += 1  # nobody is left to receive the error

    def _run_close_func(self, finalized: bool) -> None:
        self.borrows_at_close_func.append(self.borrows())
        self.close_func_calls += 1
        if finalized:
            self._count(finalized=1, in_flight=-1)
        elif self.close_func_fails:
            self._count(close_failed=1, in_flight=-1)
        else:
            self._count(closed=1, in_flight=-1)

    def _event(
        self,
        call: Call,
        event: str,
        next_state: Phase,
        borrows_after: int,
        outcome: str,
        caller: int | None = None,
        borrows: int | None = None,
    ) -> None:
        """Record one table step and move to `next_state`."""
        n = self.borrows() if borrows is None else borrows
        c = self.holds(call.thread) if caller is None else caller
        if event == "FINALIZE" or event == "FINISH":
            c = 0
        self._events.append(
            TableEvent(self.phase.value, event, n, c, next_state.value, borrows_after, outcome)
        )
        if event == "BORROW" and outcome == "OK" and self.phase is not Phase.OPEN:
            self.borrows_begun_after_close += 1
        self.phase = next_state

    def _return(self, call: Call, result: str) -> None:
        call.result = result
        self._completed.append(call)
        # Guarantee 5: a closer returns (other than by a refusal of its own or
        # a timeout) only once close_func has finished.
        finished = (OK, OK_RAWFD, ERR_CLOSE_FUNC, ERR_CLOSED)
        closer = call.command.call in ("close", "detach")
        if closer and result in finished and self.phase is not Phase.CLOSED:
            self.closers_returned_before_closed.append(f"{call}: {result}")

    def _count(self, **delta: int) -> None:
        """Report to the registry; an FD that was given none reports nothing."""
        if not self.tracked:
            return
        r = self.registry
        self.registry = Registry(
            initialized=r.initialized + delta.get("initialized", 0),
            closed=r.closed + delta.get("closed", 0),
            close_failed=r.close_failed + delta.get("close_failed", 0),
            detached=r.detached + delta.get("detached", 0),
            finalized=r.finalized + delta.get("finalized", 0),
            in_flight=r.in_flight + delta.get("in_flight", 0),
        )

    def _snapshot(self) -> tuple[Phase, int, Registry, int]:
        return (self.phase, self.borrows(), self.registry, self.close_func_calls)
