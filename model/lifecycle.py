"""The abstract FD of specs/rcfd.md: one descriptor shared by logical threads.

This is a second implementation of the spec, written from specs/rcfd.md
alone, for a porter to read next to it. It knows nothing of locks, clocks or
rcfd's code: each public call is a command that either returns within the
step that issued it or stays running (a borrow whose fn has not returned, a
close waiting for borrows, a call whose callback paused) until a later step
ends it. The words (commands, results, observations) are model.vocabulary's.

The side doors are commands like any other: a callback that *pauses* (init
"pauses" / "on_closing_pauses") leaves its thread taking calls from inside
close_func or on_closing until end_callback; a borrow held by a suspended
generator (hold_borrow) is a borrow no thread's stack shows; drop makes the
FD and those generators garbage together, and the collector runs their
finalizers in either order, on the dropping thread.

Invariants of the abstract state (checked by model.guarantees):
  a thread's stack is its running calls, innermost last: borrows whose fn
  runs, then at most one blocked call (close/detach waiting, drop or
  release_held running close_func), then at most one paused callback, which
  is on top: a call made from inside a callback returns at once;
  borrows() == the running borrows: fn borrows on stacks, borrows held by
  generators, and the closer's own borrow while its on_closing runs;
  0 in UNINIT and CLOSED;
  closer is set exactly in CLOSING and CLOSED when a close/detach or the
  finalizer began the close;
  close_func runs in the step whose release takes the count to zero in
  CLOSING, or when the finalizer meets an OPEN FD with no borrow, and
  nowhere else; CLOSING at zero borrows lasts only while close_func runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from model.vocabulary import (
    CALL_ARGS,
    ERR_CLOSE_FUNC,
    ERR_CLOSE_IN_BORROW,
    ERR_CLOSE_IN_CLOSE_FUNC,
    ERR_CLOSED,
    ERR_FN,
    ERR_FN_INTERRUPT,
    ERR_INVALID,
    ERR_MULTIPLE_INIT,
    ERR_ON_CLOSING,
    ERR_TIMEOUT,
    ERR_UNINIT,
    FINISHED,
    OK,
    OK_DUP,
    OK_FN,
    OK_RAWFD,
    REFUSALS,
    Call,
    Callback,
    Command,
    Frame,
    Observation,
    Registry,
    Step,
    TableEvent,
)

Then = Callable[[], None]  # what to do once a step that may pause has finished


class Phase(enum.Enum):
    """The spec's states, entered once each, in this order."""

    UNINIT = "UNINIT"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


@dataclass
class FDModel:
    """The FD, its registry and the logical threads that use it."""

    threads: int
    phase: Phase = Phase.UNINIT
    stacks: list[list[Frame]] = field(default_factory=list)  # per thread, innermost last
    held: list[Call] = field(default_factory=list)  # hold_borrow calls holding a borrow
    close_func_does: str = "ok"  # "ok", "raises" or "pauses" (init's argument)
    on_closing_pauses: bool = False
    tracked: bool = False
    closer: Call | None = None  # the close/detach, or the drop, that began the close
    finalizer_close: bool = False  # the finalizer began it: counted "finalized"
    closer_waiting: bool = False  # the closer still waits (no timeout, no error)
    closer_borrow: bool = False  # the closer's own borrow is held: its on_closing runs
    waiters: list[Call] = field(default_factory=list)  # closers that found it begun (WAIT)
    close_func_calls: int = 0
    on_closing_calls: int = 0
    handed_back: bool = False
    registry: Registry = field(default_factory=Registry)
    resource_warnings: int = 0
    runtime_warnings: int = 0
    copies: int = 0  # dup()'s copies: each initialized and closed on the same registry
    dropped: bool = False  # the finalizer has had its turn (drop)
    dropping: bool = False  # a drop has not returned yet
    resurrected: bool = False  # close_func, run by the collector, made the FD reachable
    gone: bool = False  # unreachable: nobody can call it any more
    calls: list[Call] = field(default_factory=list)
    # History the guarantees are stated over (model.guarantees).
    borrows_at_close_func: list[int] = field(default_factory=list)
    close_func_raised: int = 0  # runs of close_func that raised
    table_count: int = 0  # the count as the table's steps moved it (borrows_after - borrows)
    borrows_at_on_closing: list[int] = field(default_factory=list)
    borrows_begun_after_close: int = 0
    closers_returned_before_closed: list[str] = field(default_factory=list)
    refusals_that_changed: list[str] = field(default_factory=list)
    timeouts_without_borrows: list[str] = field(default_factory=list)
    dropped_open: bool = False  # OPEN when dropped: the finalizer must close it
    _events: list[TableEvent] = field(default_factory=list)
    _completed: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stacks:
            self.stacks = [[] for _ in range(self.threads)]

    # -- what can happen next ----------------------------------------------

    def borrows(self) -> int:
        return sum(self.holds(t) for t in range(self.threads))

    def holds(self, thread: int) -> int:
        """The borrows of `thread`: step()'s `caller` when it calls."""
        n = sum(1 for frame in self.stacks[thread] if _is_borrow(frame))
        n += sum(1 for call in self.held if call.thread == thread)
        closer = self.closer
        return n + (self.closer_borrow and closer is not None and closer.thread == thread)

    def can_call(self, thread: int) -> bool:
        """Idle, inside a borrow's fn, or inside a paused callback."""
        stack = self.stacks[thread]
        return not self.gone and (
            not stack or _is_borrow(stack[-1]) or isinstance(stack[-1], Callback)
        )

    def in_borrow(self, thread: int) -> bool:
        stack = self.stacks[thread]
        return not self.gone and bool(stack) and _is_borrow(stack[-1])

    def in_callback(self, thread: int) -> str | None:
        """The callback (close_func or on_closing) `thread` runs, paused, if any."""
        stack = self.stacks[thread]
        return stack[-1].kind if stack and isinstance(stack[-1], Callback) else None

    def in_close_func(self, thread: int) -> bool:
        return self.in_callback(thread) == "close_func"

    def all_idle(self) -> bool:
        return all(not stack for stack in self.stacks)

    def running(self) -> list[Call]:
        return [frame for stack in self.stacks for frame in stack if isinstance(frame, Call)]

    def callbacks(self) -> list[Callback]:
        return [frame for stack in self.stacks for frame in stack if isinstance(frame, Callback)]

    def closers_waiting(self) -> int:
        return self.closer_waiting + len(self.waiters)

    def observe(self) -> Observation:
        return Observation(
            state="GONE" if self.gone else self.phase.value,
            borrows=self.borrows(),
            close_func_calls=self.close_func_calls,
            on_closing_calls=self.on_closing_calls,
            closers_waiting=self.closers_waiting(),
            registry=self.registry,
            resource_warnings=self.resource_warnings,
            runtime_warnings=self.runtime_warnings,
        )

    def can_apply(self, command: Command) -> bool:
        """Whether `command` may be issued now (apply raises ValueError if not)."""
        t = command.thread
        if command.call not in CALL_ARGS or command.arg not in CALL_ARGS[command.call]:
            return False
        if not 0 <= t < self.threads or self.gone:
            return False
        if command.call == "drop":
            return not self.dropped and self.all_idle()
        if command.call == "end_borrow":
            return self.in_borrow(t)
        if command.call == "end_callback":
            return self.in_callback(t) is not None
        if command.call == "release_held":
            return bool(self.held) and self.can_call(t)
        return self.can_call(t)

    # -- the commands ------------------------------------------------------

    def apply(self, command: Command, call_id: int | None = None) -> Step:
        """Carry out `command`; every call it lets return returns in this step.

        The call's id is the number of calls so far unless `call_id` names it
        (two raced calls keep their ids whichever the model applies first).
        """
        if not self.can_apply(command):
            raise ValueError(f"{command} cannot be issued now")
        self._events, self._completed = [], []
        call = Call(len(self.calls) if call_id is None else call_id, command.thread, command)
        self.calls.append(call)
        before = self._snapshot()
        callbacks = self.callbacks()
        entered = False
        do: dict[str, Callable[[Call], None]] = {
            "init": self._init,
            "track_lifetime": self._track,
            "hold_borrow": self._hold_borrow,
            "release_held": self._release_held,
            "dup": self._dup,
            "end_borrow": self._end_borrow,
            "end_callback": self._end_callback,
            "close": self._close,
            "detach": self._close,
            "drop": self._drop,
        }
        if command.call == "begin_borrow":
            entered = self._begin_borrow(call)
        else:
            do[command.call](call)
        if call.result in REFUSALS and self._snapshot() != before:
            self.refusals_that_changed.append(f"{call}: {call.result}")
        paused = [c for c in self.callbacks() if all(c is not old for old in callbacks)]
        return Step(call, entered, self._completed, self._events, call.result is None, paused)

    def _init(self, call: Call) -> None:
        if self.phase is Phase.UNINIT:
            self._event(call.thread, "INIT", Phase.OPEN, 0, "OK")
            arg = call.command.arg
            self.close_func_does = arg if arg in ("raises", "pauses") else "ok"
            self.on_closing_pauses = arg == "on_closing_pauses"
            self._count(initialized=1, in_flight=1)
            self._return(call, OK)
        elif self.phase is Phase.OPEN:
            self._event(call.thread, "INIT", self.phase, self.borrows(), "REFUSE_MULTIPLE_INIT")
            self._return(call, ERR_MULTIPLE_INIT)
        else:  # the FD has had its one life
            self._event(call.thread, "INIT", self.phase, self.borrows(), "REFUSE_CLOSED")
            self._return(call, ERR_CLOSED)

    def _track(self, call: Call) -> None:
        if self.phase is Phase.UNINIT:
            self._event(call.thread, "TRACK", self.phase, 0, "OK")
            self.tracked = True
            self._return(call, OK)
        else:  # after init the registry would see a release without its init
            self._event(call.thread, "TRACK", self.phase, self.borrows(), "REFUSE_MULTIPLE_INIT")
            self._return(call, ERR_MULTIPLE_INIT)

    def _borrow(self, call: Call) -> bool:
        """BORROW: counted (True) in OPEN; refused at once, and returned, otherwise."""
        if self.phase is Phase.OPEN:
            self._event(call.thread, "BORROW", self.phase, self.borrows() + 1, "OK")
            return True
        if self.phase is Phase.UNINIT:
            self._event(call.thread, "BORROW", self.phase, 0, "REFUSE_UNINIT")
            self._return(call, ERR_UNINIT)
        else:  # refused at once, never queued: a stream of borrows cannot starve a close
            self._event(call.thread, "BORROW", self.phase, self.borrows(), "REFUSE_CLOSED")
            self._return(call, ERR_CLOSED)
        return False

    def _begin_borrow(self, call: Call) -> bool:
        if self._borrow(call):
            self.stacks[call.thread].append(call)
            return True
        return False

    def _hold_borrow(self, call: Call) -> None:
        """The generator's borrow is the thread's, but no fn of it runs."""
        if self._borrow(call):
            self.held.append(call)
            self._return(call, OK)

    def _dup(self, call: Call) -> None:
        """A borrow, during which the number is duplicated; the copy is a new
        FD on the same registry, closed at once by the caller."""
        t = call.thread
        if self._borrow(call):
            n = self.borrows() + 1
            self._event(t, "RELEASE", self.phase, n - 1, "OK", self.holds(t) + 1, n)
            self.copies += 1
            self._count(initialized=1, closed=1)
            self._return(call, OK_DUP)

    def _end_borrow(self, call: Call) -> None:
        """The innermost fn of the thread exits as told; the borrow ends either way."""
        t = call.thread
        borrow = self.stacks[t].pop()
        assert isinstance(borrow, Call)
        self._return(call, OK)
        how = call.command.arg
        result = OK_FN if how == "return" else ERR_FN if how == "raise" else ERR_FN_INTERRUPT
        self._release(self.holds(t) + 1, t, lambda: self._return(borrow, result))

    def _release_held(self, call: Call) -> None:
        """The oldest generator is closed on this thread: its `with` block
        exits, releasing the borrow of the thread that entered it."""
        held = self.held[0]
        caller = self.holds(held.thread)
        self.held.pop(0)
        self.stacks[call.thread].append(call)
        self._release(caller, call.thread, lambda: self._return(call, OK))

    def _end_callback(self, call: Call) -> None:
        callback = self.stacks[call.thread].pop()
        assert isinstance(callback, Callback)
        self._return(call, OK)
        callback.then(call.command.arg == "raise")

    def _close(self, call: Call) -> None:
        """close()/detach(): refuse, begin the close, or wait for another's."""
        t, kind = call.thread, call.command.call.upper()
        if call.command.arg == "invalid":  # arguments are checked before the state
            self._return(call, ERR_INVALID)
            return
        n = self.borrows()
        refusal = (
            ("REFUSE_UNINIT", ERR_UNINIT)
            if self.phase is Phase.UNINIT
            else ("REFUSE_CLOSED", ERR_CLOSED)
            if self.phase is Phase.CLOSED
            # it would wait for its own borrow forever
            else ("REFUSE_CLOSE_IN_BORROW", ERR_CLOSE_IN_BORROW)
            if self.holds(t)
            # it would wait for close_func, that is for itself, forever
            else ("REFUSE_CLOSE_IN_CLOSE_FUNC", ERR_CLOSE_IN_CLOSE_FUNC)
            if self.in_close_func(t)
            else None
        )
        if refusal is not None:
            self._event(t, kind, self.phase, n, refusal[0])
            self._return(call, refusal[1])
            return
        self.stacks[t].append(call)
        if self.phase is Phase.CLOSING:
            self._event(t, kind, self.phase, n, "WAIT")
            self.waiters.append(call)
            self._deadline(call)
            return
        # The close takes a borrow of its own, so on_closing sees a valid
        # number, then releases it like any other borrow.
        self._event(t, kind, Phase.CLOSING, n + 1, "BEGIN_CLOSE")
        self.closer, self.finalizer_close = call, False
        self.closer_waiting = self.closer_borrow = True
        self.on_closing_calls += 1
        self.borrows_at_on_closing.append(self.borrows())
        if self.on_closing_pauses:
            self.stacks[t].append(Callback("on_closing", t, self._on_closing_ended))
        else:
            self._on_closing_ended(False)

    def _on_closing_ended(self, raised: bool) -> None:
        """The closer releases its own borrow. If on_closing raised, the closer
        leaves with that error (unregistered first, so nobody waits for it and
        a detach becomes a close); the last borrow still closes the FD."""
        closer = self.closer
        assert closer is not None
        self.closer_borrow = False
        if raised:
            self.closer_waiting = False

        def then() -> None:
            if raised:
                self._return(closer, ERR_ON_CLOSING)
            else:
                self._deadline(closer)

        self._release(1, closer.thread, then)

    def _deadline(self, call: Call) -> None:
        """A close with a timeout that expires: if borrows still run at the
        deadline, it gives up (the last borrow will close the FD). At zero
        borrows close_func is running: the timeout bounds the wait for
        borrows only, so it waits for close_func (guarantee 8)."""
        if call.command.arg != "expires" or call.result is not None or not self.borrows():
            return
        if call is self.closer:
            self.closer_waiting = False
        else:
            self.waiters.remove(call)
        self._return(call, ERR_TIMEOUT)

    def _drop(self, call: Call) -> None:
        """The FD became unreachable, with the generators that hold borrows of
        it: the collector runs their finalizers and the FD's on this thread,
        in the order the argument says."""
        self.stacks[call.thread].append(call)
        self.dropped = self.dropping = True
        self.dropped_open = self.phase is Phase.OPEN
        holders = [self._collect(held, call) for held in list(self.held)]

        def finalize(then: Then) -> None:
            self._finalize(call, then)

        first = call.command.arg == "holders-first"
        order = [*holders, finalize] if first else [finalize, *holders]

        def done() -> None:
            self.dropping = False
            self.gone = not self.resurrected
            self._return(call, OK)

        _chain(order, done)

    def _collect(self, held: Call, drop: Call) -> Callable[[Then], None]:
        """A garbage generator's finalizer: it closes the generator, whose
        `with` block exits and releases its borrow, on the collector's thread."""

        def release(then: Then) -> None:
            caller = self.holds(held.thread)
            self.held.remove(held)
            self._release(caller, drop.thread, then)

        return release

    def _finalize(self, drop: Call, then: Then) -> None:
        """FINALIZE: an OPEN FD begins the close as close() does, with nobody
        waiting for it; with borrows held by garbage, the last release runs
        close_func. Any other state needs nothing."""
        n = self.borrows()
        if self.phase is not Phase.OPEN:
            self._event(drop.thread, "FINALIZE", self.phase, n, "IGNORE")
            then()
            return
        self.resource_warnings += 1  # first, naming the FD while it is OPEN
        self.closer, self.finalizer_close, self.closer_waiting = drop, True, False
        if n:
            self._event(drop.thread, "FINALIZE", Phase.CLOSING, n, "OK")
            then()
        else:
            self._event(drop.thread, "FINALIZE", Phase.CLOSING, 0, "RUN_CLOSE")
            self._run_close(drop.thread, then)

    # -- internal steps ----------------------------------------------------

    def _release(self, caller: int, runner: int, then: Then) -> None:
        """One borrow ends (already off every stack and list: the count before
        it is borrows() + 1) on thread `runner`, which runs close_func if this
        was the last borrow in CLOSING; `then` once that is done."""
        n = self.borrows() + 1
        if self.phase is Phase.CLOSING and n == 1:
            self._event(runner, "RELEASE", self.phase, 0, "RUN_CLOSE", caller, n)
            self._run_close(runner, then)
        else:
            self._event(runner, "RELEASE", self.phase, n - 1, "OK", caller, n)
            then()

    def _run_close(self, runner: int, then: Then) -> None:
        """The count reached zero in CLOSING: hand the number back to a detach
        still waiting, or run close_func on `runner` (now, or paused)."""
        closer = self.closer
        assert closer is not None
        if closer.command.call == "detach" and self.closer_waiting:
            self.handed_back = True
            self._count(detached=1, in_flight=-1)
            self._finish(raised=False)
            then()
            return
        self.borrows_at_close_func.append(self.borrows())
        self.close_func_calls += 1

        def returned(raised: bool) -> None:
            self.close_func_raised += raised
            if self.finalizer_close:
                self._count(finalized=1, in_flight=-1)
            elif raised:
                self._count(close_failed=1, in_flight=-1)
            else:
                self._count(closed=1, in_flight=-1)
            self._finish(raised)
            then()

        if self.close_func_does == "pauses":
            # It keeps a reference to its FD: run by the collector, it makes
            # the FD reachable again.
            self.resurrected |= self.dropping
            self.stacks[runner].append(Callback("close_func", runner, returned))
        else:
            returned(self.close_func_does == "raises")

    def _finish(self, raised: bool) -> None:
        """FINISH: CLOSED; every closer waiting returns."""
        closer = self.closer
        assert closer is not None
        self._event(closer.thread, "FINISH", Phase.CLOSED, 0, "OK", 0, 0)
        for waiter in self.waiters:
            self._return(waiter, ERR_CLOSED)
        self.waiters = []
        if self.closer_waiting:
            self.closer_waiting = False
            result = OK_RAWFD if self.handed_back else ERR_CLOSE_FUNC if raised else OK
            self._return(closer, result)
        elif raised:
            self.runtime_warnings += 1  # nobody is left to receive the error

    def _event(
        self,
        thread: int,
        event: str,
        next_state: Phase,
        borrows_after: int,
        outcome: str,
        caller: int | None = None,
        borrows: int | None = None,
    ) -> None:
        """Record one table step of `thread` and move to `next_state`."""
        n = self.borrows() if borrows is None else borrows
        c = self.holds(thread) if caller is None else caller
        in_close_func = self.in_close_func(thread) and event not in ("RELEASE", "FINISH")
        if event in ("FINALIZE", "FINISH"):
            c, in_close_func = 0, False
        self._events.append(
            TableEvent(
                self.phase.value,
                event,
                n,
                c,
                in_close_func,
                next_state.value,
                borrows_after,
                outcome,
            )
        )
        if event == "BORROW" and outcome == "OK" and self.phase is not Phase.OPEN:
            self.borrows_begun_after_close += 1
        self.table_count += borrows_after - n
        self.phase = next_state

    def _return(self, call: Call, result: str) -> None:
        call.result = result
        self._completed.append(call)
        stack = self.stacks[call.thread]
        for i, frame in enumerate(stack):
            if frame is call:
                del stack[i]
                break
        closer = call.command.call in ("close", "detach")
        # Guarantee 5: a closer returns (other than by a refusal of its own, a
        # timeout or on_closing's error) only once close_func has finished.
        if closer and result in FINISHED and self.phase is not Phase.CLOSED:
            self.closers_returned_before_closed.append(f"{call}: {result}")
        if closer and result == ERR_TIMEOUT and not self.borrows():
            self.timeouts_without_borrows.append(str(call))

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

    def _snapshot(self) -> tuple[object, ...]:
        return (
            self.phase,
            self.borrows(),
            self.registry,
            self.close_func_calls,
            self.closers_waiting(),
            len(self.held),
        )


def _is_borrow(frame: Frame) -> bool:
    return isinstance(frame, Call) and frame.command.call == "begin_borrow"


def _chain(steps: list[Callable[[Then], None]], then: Then) -> None:
    """Run `steps` in order, each given the rest as what to do when it has
    finished (a step that pauses in a callback carries on when it ends)."""
    if not steps:
        then()
    else:
        steps[0](lambda: _chain(steps[1:], then))
