"""rcfd.FD checked against the model (model/), call by call, with real threads.

Each logical thread of model.machine.FDModelMachine is a real thread running
real FD calls on a real eventfd (tests/_model_harness.py). After every step
the test compares what returned, with what result, the FD's state and borrow
count, close_func and on_closing calls, the registry and the warnings with
the model's prediction. A disagreement fails with the shrunk run printed as
a timeline (thread, call, what returned, FD after), the last row marked.

Steps are sequential except in the race rule: a borrow and a close released
together by a barrier with sys.setswitchinterval(1e-6), so that one can run
in the middle of the other. The model then follows whichever took effect
first (the borrow did iff its fn was entered), and the rest must agree: a
check of the state outside the lock lets a borrow start after the close has
finished, which agrees with neither order. This is a chance, not a proof;
the interleaving exploration (tools/explore.py) is the systematic check.

Budget (fixed, derandomized, so a green run means the same every time):
EXAMPLES runs of at most STEPS steps each, 3 threads. Run it alone with
    .venv/3.13/bin/python -m pytest -q -s -p no:cacheprovider tests/test_model_vs_fd.py
which prints "model-vs-fd: <N> examples, <M> steps compared, ..." on success.
"""

from __future__ import annotations

import time
from typing import ClassVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from model.lifecycle import FDModel
from model.machine import FDModelMachine
from model.spec_table import rows
from model.timeline import Timeline
from model.traces import row_id, unreachable_rows
from model.vocabulary import Command, Step
from tests._model_harness import EXPECT_S, RealFD, expectation

EXAMPLES = 150
STEPS = 40
SHRINK_BUDGET_S = 60.0  # see ModelVsFD.failing

BUDGET = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    derandomize=True,  # the same runs every time: CI and a laptop check the same thing
    database=None,
    deadline=None,  # steps wait on threads; a loaded box must not make them "flaky"
    suppress_health_check=[HealthCheck.too_slow],
    # No "explain" phase: the timeline says what happened, and explaining
    # replays every failing run again, each costing its bounded waits.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)


class ModelVsFD(FDModelMachine):
    examples = 0
    steps = 0
    races = 0
    rows_seen: ClassVar[set[str]] = set()  # ids of the table rows the runs went through
    # Shrinking budget. A run that disagrees because a call never returns
    # costs its bounded wait each time Hypothesis replays it, and shrinking
    # replays hundreds of candidates. After SHRINK_BUDGET_S of shrinking, a
    # candidate is run on the real FD only while its commands are a prefix of
    # a run already seen to fail; others run on the model alone, so they pass
    # and shrinking stops improving. The reported run is then the smallest
    # found so far, and it still fails for real when Hypothesis replays it.
    failing: ClassVar[set[tuple[Command, ...]]] = set()
    shrink_deadline: ClassVar[float | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.real = RealFD(self.THREADS)
        self.commands: list[Command] = []
        self.real_run = True  # False once this run went past the budget (see above)
        self.raced = False  # the last race ran on the real FD
        ModelVsFD.examples += 1

    def _real_now(self, *commands: Command) -> bool:
        """Whether to run `commands` on the real FD (see `failing`)."""
        self.commands += commands
        sofar = tuple(self.commands)
        deadline = ModelVsFD.shrink_deadline
        if self.real_run and deadline is not None and time.monotonic() > deadline:
            self.real_run = any(run[: len(sofar)] == sofar for run in ModelVsFD.failing)
        return self.real_run

    def carry_out(self, command: Command, step: Step) -> None:
        if self._real_now(command):
            self.real.send(step.started.id, command)
            self._compare([step])

    def race(self, first: tuple[int, Command], second: tuple[int, Command], hint: bool) -> bool:
        self.raced = self._real_now(first[1], second[1])
        if not self.raced:
            return hint
        ModelVsFD.races += 1
        report = self.real.race(first, second)
        # The borrow took effect first iff its fn was entered.
        return hint if report is None else report.kind == "entered"

    def carry_out_race(self, steps: list[Step]) -> None:
        if self.raced:
            self._compare(steps)

    def _compare(self, steps: list[Step]) -> None:
        for step in steps:
            for event in step.events:
                ModelVsFD.rows_seen.add(row_id(event))
        expect = expectation(steps, self.model.observe(), self.model.running(), self.model.calls)
        problems = self.real.settle(expect)
        ModelVsFD.steps += 1
        if problems:
            self.failed = True
            ModelVsFD.failing.add(tuple(self.commands))
            if ModelVsFD.shrink_deadline is None:
                ModelVsFD.shrink_deadline = time.monotonic() + SHRINK_BUDGET_S
        assert not problems, "\n" + self.timeline.render(tuple(problems))

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.real.shutdown()


def test_model_keeps_its_guarantees() -> None:
    """The model alone, with a larger budget: it must keep specs/rcfd.md."""
    run_state_machine_as_test(
        FDModelMachine,
        settings=settings(BUDGET, max_examples=200, stateful_step_count=40),
    )


# Rows that the random runs reach only rarely, so that a race that went the
# other way (the runs follow whichever of a raced pair took effect first) can
# leave them out: OPEN.FINALIZE came up about once in 150 runs, and one CI run
# on a loaded machine missed it. These fixed runs go through them every time,
# compared with the model like any run.
FIXED_RUNS: tuple[tuple[Command, ...], ...] = tuple(
    (Command(0, "init", "ok"), Command(1, "hold_borrow"), Command(2, "drop", order))
    for order in ("", "holders-first")
)


@settings(max_examples=1, database=None, deadline=None, phases=[Phase.generate])
@given(st.just(None))
def _run_fixed(_: None) -> None:
    for commands in FIXED_RUNS:
        machine = ModelVsFD()
        try:
            for command in commands:
                machine.perform(command)
        finally:
            machine.teardown()


def test_production_fd_agrees_with_the_model() -> None:
    ModelVsFD.examples = ModelVsFD.steps = ModelVsFD.races = 0
    ModelVsFD.rows_seen.clear()
    ModelVsFD.failing.clear()
    ModelVsFD.shrink_deadline = None
    RealFD.expect_s = EXPECT_S
    start = time.monotonic()
    run_state_machine_as_test(ModelVsFD, settings=BUDGET)
    _run_fixed()
    # The budget must keep reaching every row a program can reach: a change
    # to the rules or to Hypothesis that starves a row fails here, not silently.
    reachable = {row.id for row in rows()} - unreachable_rows().keys()
    missed = sorted(reachable - ModelVsFD.rows_seen)
    assert not missed, f"the runs never went through table rows {missed}; raise the budget"
    print(
        f"\nmodel-vs-fd: {ModelVsFD.examples} examples, {ModelVsFD.steps} steps compared "
        f"({ModelVsFD.races} raced borrow/close pairs), "
        f"{len(ModelVsFD.rows_seen)}/{len(rows())} table rows, 3 threads, "
        f"budget max_examples={EXAMPLES} stateful_step_count={STEPS}, "
        f"{time.monotonic() - start:.1f}s"
    )


RACES = 500  # a check-then-act bug shows in ~2% of races (measured): ~99.99% to catch it


def test_borrow_and_close_race_is_one_order_or_the_other() -> None:
    """RACES fresh FDs, each with a borrow and a close started together (the
    race rule above, without Hypothesis, so it can run often): whichever took
    effect first, the model in that order must predict everything seen."""
    for _ in range(RACES):
        race_once()


def race_once() -> None:
    model, real, timeline = FDModel(2), RealFD(2), Timeline()

    def apply(command: Command, call_id: int) -> Step:
        step = model.apply(command, call_id)
        timeline.add(command, step, model.observe())
        return step

    def check(steps: list[Step]) -> None:
        problems = real.settle(expectation(steps, model.observe(), model.running(), model.calls))
        problems += ["(#1 and #2 were started together; the model follows the one seen first)"]
        assert len(problems) == 1, "\n" + timeline.render(tuple(problems))

    try:
        init = Command(0, "init", "ok")
        real.send(0, init)
        check([apply(init, 0)])
        borrow, close = (1, Command(0, "begin_borrow", "do")), (2, Command(1, "close", "none"))
        report = real.race(borrow, close)
        borrow_first = report is not None and report.kind == "entered"
        order = (borrow, close) if borrow_first else (close, borrow)
        check([apply(command, call_id) for call_id, command in order])
        if borrow_first:
            end = Command(0, "end_borrow", "return")
            real.send(3, end)
            check([apply(end, 3)])
    finally:
        real.shutdown()
