"""The model as a Hypothesis RuleBasedStateMachine.

Each rule is one call by one logical thread, split where a call can block:
begin_borrow/end_borrow (fn keeps running in between, so other threads act
while a borrow is held), close with no timeout (returns in the step that ends
the last borrow), close with a timeout that expires, a second closer, a close
inside a borrow, detach, dropping the FD (the finalizer), track_lifetime and
init. Preconditions pick only threads that can make the call (a thread
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

    def perform(self, command: Command) -> None:
        step = self.model.apply(command)
        row = self.timeline.add(command, step, self.model.observe())
        note(Timeline.line(len(self.timeline.rows) - 1, row))
        self.carry_out(command, step)

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
