"""A close from inside close_func waits for the close it is part of."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="close-in-close-func-waits",
    title="a close from inside close_func is not refused: it waits for itself",
    guarantees=(6,),
    explanation=(
        "close_func is user code, and user code reaches its own resource: a close "
        "function that flushes through a helper which 'makes sure' the FD is closed, "
        "a registry of objects that closes everything it holds. The step tells such "
        "a call apart only by who asks: the thread that claimed the close, while it "
        "runs close_func (in_close_func). Without that test the inner close finds "
        "the FD CLOSING and joins the close in progress as a second closer: it "
        "waits for CLOSED, that is for the close_func it is called from. Its "
        "timeout does not help (the count is zero, so the deadline waits for "
        "close_func), and the thread hangs for good. rcfd refuses it at once with "
        "CloseInsideCloseFuncError, as it refuses a close inside a borrow."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "in_close_func = (\n"
            "    closing is not None and closing.stage is Stage.RUNNING and closing.claimer == me\n"
            ")\n",
            "in_close_func = False  # mutant: a close is a close, whoever asks\n",
        ),
    ),
    scenario=Scenario(
        close_func="pauses",
        steps=(
            Step("T1", "close"),
            Step("T1", "close", timeout=0.5),  # from inside close_func (paused on T1)
        ),
    ),
)
