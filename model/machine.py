"""The model as a Hypothesis RuleBasedStateMachine.

Each rule is one call by one logical thread, split where a call can block:
begin_borrow/end_borrow (fn keeps running in between, so other threads act
while a borrow is held), close with no timeout (returns in the step that ends
the last borrow), close with a timeout that expires, a second closer, a close
inside a borrow, detach, dup, track_lifetime and init; the side doors: a
borrow held by a suspended generator (hold_borrow, release_held), a callback
that pauses and takes calls until end_callback (a close_func or on_closing
calling back into its FD), dropping the FD with the generators that hold
borrows of it (the collector, in either order); and one race: a borrow and a
close started at the same moment, where either order is right but nothing in
between. Preconditions pick only threads that can make the call (a thread
blocked in close() makes no call). After every step the guarantees of
specs/rcfd.md are asserted on the model.

`carry_out` is the hook that tests/test_model_vs_fd.py overrides to perform
the same command on a real rcfd.FD and compare. `teardown` ends the
borrows still running as further steps, so a close blocked at the end of a
run is seen to return.
"""

from __future__ import annotations

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from model.guarantees import violations
from model.lifecycle import FDModel, Phase
from model.timeline import Timeline
from model.vocabulary import CALL_ARGS, Command, Step

# What a paused callback calls on its own FD (from_callback).
REENTRANT_CALLS: tuple[tuple[str, str], ...] = (
    ("close", "none"),
    ("close", "expires"),
    ("detach", ""),
    ("begin_borrow", "do"),
    ("begin_borrow", "borrow"),
    ("hold_borrow", ""),
    ("dup", ""),
    ("init", "ok"),
    ("track_lifetime", ""),
)


class FDModelMachine(RuleBasedStateMachine):
    THREADS = 3

    def __init__(self) -> None:
        super().__init__()
        self.model = FDModel(self.THREADS)
        self.timeline = Timeline()
        self.failed = False  # a step disagreed (set by carry_out overrides)

    # -- the hook ----------------------------------------------------------

    def carry_out(self, command: Command, step: Step) -> None:
        """Perform `command` elsewhere and compare with `step`; nothing here."""

    def race(self, first: tuple[int, Command], second: tuple[int, Command], hint: bool) -> bool:
        """Start two (call id, command) at once elsewhere; True if `first` took
        effect first. Here there is nowhere else: `hint` decides."""
        return hint

    def carry_out_race(self, steps: list[Step]) -> None:
        """Compare the raced calls' `steps` (in the order they took effect)."""

    def perform(self, command: Command) -> None:
        step = self._apply(command)
        self.carry_out(command, step)

    def _apply(self, command: Command, call_id: int | None = None) -> Step:
        step = self.model.apply(command, call_id)
        row = self.timeline.add(command, step, self.model.observe())
        note(Timeline.line(len(self.timeline.rows) - 1, row))
        # After every step, not only after every rule: a rule may make several.
        found = violations(self.model)
        assert not found, self.timeline.render(tuple(found))
        return step

    # -- who may call ------------------------------------------------------

    def _pick(self, data: st.DataObject, threads: list[int]) -> int:
        return data.draw(st.sampled_from(threads), label="thread")

    def _callers(self) -> list[int]:
        return [t for t in range(self.THREADS) if self.model.can_call(t)]

    def _borrowers(self) -> list[int]:
        return [t for t in range(self.THREADS) if self.model.in_borrow(t)]

    def _idle(self) -> list[int]:
        return [t for t in self._callers() if not self.model.stacks[t]]

    def _in_callbacks(self) -> list[int]:
        return [t for t in range(self.THREADS) if self.model.in_callback(t)]

    # -- rules -------------------------------------------------------------

    @initialize(
        track=st.booleans(),
        # Pausing callbacks more often: the side doors need them to open, and
        # a detach or a drop ends many runs before close_func runs.
        init=st.sampled_from(
            (*CALL_ARGS["init"], "pauses", "pauses", "pauses", "on_closing_pauses", "not yet")
        ),
        borrowers=st.lists(
            st.tuples(st.integers(0, THREADS - 1), st.sampled_from(("do", "borrow", "hold"))),
            max_size=3,
        ),
    )
    def start(self, track: bool, init: str, borrowers: list[tuple[int, str]]) -> None:
        """Most runs start from an initialized FD with borrows running, so that
        the budget goes to closes meeting borrows; Hypothesis's rule choice
        alone leaves many runs in UNINIT or with no borrow. The rules still
        reach every state from UNINIT."""
        if track:
            self.perform(Command(0, "track_lifetime"))
        if init != "not yet":
            self.perform(Command(0, "init", init))
            for thread, via in borrowers:
                if via == "hold":
                    self.perform(Command(thread, "hold_borrow"))
                else:
                    self.perform(Command(thread, "begin_borrow", via))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data(), close_func=st.sampled_from(CALL_ARGS["init"]))
    def init(self, data: st.DataObject, close_func: str) -> None:
        self.perform(Command(self._pick(data, self._callers()), "init", close_func))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data())
    def track_lifetime(self, data: st.DataObject) -> None:
        self.perform(Command(self._pick(data, self._callers()), "track_lifetime"))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data(), via=st.sampled_from(CALL_ARGS["begin_borrow"]))
    def begin_borrow(self, data: st.DataObject, via: str) -> None:
        self.perform(Command(self._pick(data, self._callers()), "begin_borrow", via))

    @precondition(lambda self: any(self.model.in_borrow(t) for t in range(self.THREADS)))
    @rule(data=st.data(), how=st.sampled_from(CALL_ARGS["end_borrow"]))
    def end_borrow(self, data: st.DataObject, how: str) -> None:
        self.perform(Command(self._pick(data, self._borrowers()), "end_borrow", how))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data(), timeout=st.sampled_from(CALL_ARGS["close"]))
    def close(self, data: st.DataObject, timeout: str) -> None:
        self.perform(Command(self._pick(data, self._callers()), "close", timeout))

    @precondition(lambda self: self.model.phase is Phase.CLOSING and bool(self._idle()))
    @rule(data=st.data(), timeout=st.sampled_from(("none", "expires")))
    def second_close(self, data: st.DataObject, timeout: str) -> None:
        self.perform(Command(self._pick(data, self._idle()), "close", timeout))

    @precondition(lambda self: any(self.model.in_borrow(t) for t in range(self.THREADS)))
    @rule(data=st.data(), call=st.sampled_from(("close", "detach")))
    def close_inside_borrow(self, data: st.DataObject, call: str) -> None:
        arg = "none" if call == "close" else ""
        self.perform(Command(self._pick(data, self._borrowers()), call, arg))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        self.perform(Command(self._pick(data, self._callers()), "detach"))

    @precondition(
        lambda self: (
            self.model.phase is Phase.OPEN
            and not self.model.borrows()
            and len(self._idle()) >= 2
            and self.model.close_func_does != "pauses"
            and not self.model.on_closing_pauses
        )
    )
    @rule(data=st.data(), borrow_first=st.booleans())
    def race_borrow_and_close(self, data: st.DataObject, borrow_first: bool) -> None:
        """A borrow and a close start at the same moment on two threads. Either
        order is allowed, nothing in between: the borrow runs and the close
        waits for it, or the borrow is refused and the close completes.

        Both orders end in the same state (a borrow that ran is then ended,
        which completes the close), so the rules Hypothesis can draw next do
        not depend on which order the real threads took. (Not with callbacks
        that pause: which thread then runs close_func depends on the order.)"""
        idle = self._idle()
        borrower = self._pick(data, idle)
        closer = self._pick(data, [t for t in idle if t != borrower])
        n = len(self.model.calls)
        borrow = (n, Command(borrower, "begin_borrow", "do"))
        close = (n + 1, Command(closer, "close", "none"))
        borrow_first = self.race(borrow, close, borrow_first)
        note(f"race: #{n} and #{n + 1} started together; #{n if borrow_first else n + 1} first")
        order = (borrow, close) if borrow_first else (close, borrow)
        self.carry_out_race([self._apply(command, call_id) for call_id, command in order])
        if borrow_first:
            self.perform(Command(borrower, "end_borrow", "return"))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data())
    def hold_borrow(self, data: st.DataObject) -> None:
        self.perform(Command(self._pick(data, self._callers()), "hold_borrow"))

    @precondition(lambda self: not self.model.gone and bool(self.model.held))
    @rule(data=st.data())
    def release_held(self, data: st.DataObject) -> None:
        self.perform(Command(self._pick(data, self._callers()), "release_held"))

    @precondition(lambda self: not self.model.gone)
    @rule(data=st.data())
    def dup(self, data: st.DataObject) -> None:
        self.perform(Command(self._pick(data, self._callers()), "dup"))

    @precondition(lambda self: bool(self._in_callbacks()))
    @rule(data=st.data(), calls=st.lists(st.sampled_from(REENTRANT_CALLS), min_size=1, max_size=3))
    def from_callback(self, data: st.DataObject, calls: list[tuple[str, str]]) -> None:
        """A paused close_func or on_closing calls back into its own FD, a few
        times (each call returns at once: the callback is still paused)."""
        thread = self._pick(data, self._in_callbacks())
        for call in calls:
            if self.model.in_callback(thread):  # else the guarantees have said why
                self.perform(Command(thread, *call))

    @precondition(lambda self: bool(self._in_callbacks()))
    @rule(data=st.data(), how=st.sampled_from(CALL_ARGS["end_callback"]))
    def end_callback(self, data: st.DataObject, how: str) -> None:
        self.perform(Command(self._pick(data, self._in_callbacks()), "end_callback", how))

    @precondition(
        lambda self: not self.model.gone and not self.model.dropped and self.model.all_idle()
    )
    @rule(data=st.data(), order=st.sampled_from(CALL_ARGS["drop"]))
    def drop(self, data: st.DataObject, order: str) -> None:
        """The FD becomes garbage, with the generators holding borrows of it."""
        thread = data.draw(st.integers(0, self.THREADS - 1), label="thread")
        self.perform(Command(thread, "drop", order if self.model.held else ""))

    @precondition(
        lambda self: (
            self.model.phase is Phase.OPEN
            and not self.model.dropped
            and self.model.all_idle()
            and not self.model.on_closing_pauses
        )
    )
    @rule(data=st.data(), order=st.sampled_from(CALL_ARGS["drop"]))
    def abandon_a_timed_out_close(self, data: st.DataObject, order: str) -> None:
        """A close times out on a borrow held by a generator, and then the FD
        and the generator become garbage: the finalizer meets CLOSING."""
        holder = self._pick(data, list(range(self.THREADS)))
        if not self.model.held:
            self.perform(Command(holder, "hold_borrow"))
        closers = [t for t in range(self.THREADS) if not self.model.holds(t)]
        if not closers:
            return
        closer = self._pick(data, closers)
        self.perform(Command(closer, "close", "expires"))
        drop = Command(closer, "drop", order)
        if self.model.can_apply(drop):  # not while close_func runs, paused
            self.perform(drop)

    @precondition(lambda self: self.model.gone)
    @rule()
    def nothing_left_to_call(self) -> None:
        """An unreachable FD takes no calls; this keeps one rule valid."""

    def teardown(self) -> None:
        """End every borrow and callback, innermost first, and close every
        held generator, as steps like any other, so that every run also shows
        its blocked closers return (or not) at the end."""
        if self.failed or violations(self.model):
            return  # keep the failure that was found; do not pile steps on it
        for _ in range(1000):  # each round ends a frame or a held borrow; runs are shorter
            ended = False
            for thread in range(self.THREADS):
                if self.model.in_borrow(thread):
                    self.perform(Command(thread, "end_borrow", "return"))
                    ended = True
                elif self.model.in_callback(thread):
                    self.perform(Command(thread, "end_callback", "return"))
                    ended = True
            if not ended and self.model.held and self._callers():
                self.perform(Command(self._callers()[0], "release_held"))
            elif not ended:
                return

    @invariant()
    def keeps_the_guarantees(self) -> None:
        found = violations(self.model)
        assert not found, self.timeline.render(tuple(found))
