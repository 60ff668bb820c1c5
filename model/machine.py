"""The model as a Hypothesis RuleBasedStateMachine.

Each rule is one call by one logical thread, split where a call can block:
begin_borrow/end_borrow (fn keeps running in between, so other threads act
while a borrow is held), close with no timeout (returns in the step that ends
the last borrow), close with a timeout that expires, a second closer, a close
inside a borrow, detach, dropping the FD (the finalizer), track_lifetime and
init; and one race: a borrow and a close started at the same moment, where
either order is right but nothing in between. Preconditions pick only
threads that can make the call (a thread blocked in close() makes no call).
After every step the guarantees of specs/rcfd.md are asserted on the model.

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
from model.lifecycle import CALL_ARGS, Command, FDModel, Phase, Step
from model.timeline import Timeline


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
        return step

    # -- who may call ------------------------------------------------------

    def _pick(self, data: st.DataObject, threads: list[int]) -> int:
        return data.draw(st.sampled_from(threads), label="thread")

    def _callers(self) -> list[int]:
        return [t for t in range(self.THREADS) if self.model.can_call(t)]

    def _borrowers(self) -> list[int]:
        return [t for t in range(self.THREADS) if self.model.in_borrow(t)]

    def _idle(self) -> list[int]:
        return [t for t in self._callers() if not self.model.in_borrow(t)]

    # -- rules -------------------------------------------------------------

    @initialize(
        track=st.booleans(),
        init=st.sampled_from((*CALL_ARGS["init"], "not yet")),
        borrowers=st.lists(st.integers(0, THREADS - 1), max_size=3),
    )
    def start(self, track: bool, init: str, borrowers: list[int]) -> None:
        """Most runs start from an initialized FD with borrows running, so that
        the budget goes to closes meeting borrows; Hypothesis's rule choice
        alone leaves many runs in UNINIT or with no borrow. The rules still
        reach every state from UNINIT."""
        if track:
            self.perform(Command(0, "track_lifetime"))
        if init != "not yet":
            self.perform(Command(0, "init", init))
            for i, thread in enumerate(borrowers):
                self.perform(Command(thread, "begin_borrow", CALL_ARGS["begin_borrow"][i % 2]))

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
            self.model.phase is Phase.OPEN and not self.model.borrows() and len(self._idle()) >= 2
        )
    )
    @rule(data=st.data(), borrow_first=st.booleans())
    def race_borrow_and_close(self, data: st.DataObject, borrow_first: bool) -> None:
        """A borrow and a close start at the same moment on two threads. Either
        order is allowed, nothing in between: the borrow runs and the close
        waits for it, or the borrow is refused and the close completes.

        Both orders end in the same state (a borrow that ran is then ended,
        which completes the close), so the rules Hypothesis can draw next do
        not depend on which order the real threads took."""
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

    @precondition(lambda self: not self.model.gone and self.model.all_idle())
    @rule()
    def drop(self) -> None:
        self.perform(Command(0, "drop"))

    @precondition(lambda self: self.model.gone)
    @rule()
    def nothing_left_to_call(self) -> None:
        """An unreachable FD takes no calls; this keeps one rule valid."""

    def teardown(self) -> None:
        """End every borrow, innermost first, as steps like any other, so that
        every run also shows its blocked closers return (or not) at the end."""
        if self.failed or violations(self.model):
            return  # keep the failure that was found; do not pile steps on it
        for thread in range(self.THREADS):
            while self.model.in_borrow(thread):
                self.perform(Command(thread, "end_borrow", "return"))

    @invariant()
    def keeps_the_guarantees(self) -> None:
        found = violations(self.model)
        assert not found, self.timeline.render(tuple(found))
