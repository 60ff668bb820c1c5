"""The registry records an empty stack at init."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="registry-forgets-init-stack",
    title="the registry forgets the init stack",
    guarantees=(0,),
    explanation=(
        "The registry records an empty stack instead of the caller's (say, to save "
        "time at init). Counts still add up, but a leak report can no longer say "
        "where the leaked descriptor was opened, which is the whole point of it: "
        "'1 file descriptor leaked' with no location is a hunt, not a report."
    ),
    edits=(
        Edit(
            "rcfd/_registry.py",
            "self._report(partial(self._count_init, key, rawfd, _init_stack()))",
            "self._report(partial(self._count_init, key, rawfd, traceback.StackSummary()))"
            "  # mutant: no stack",
        ),
    ),
    scenario=Scenario(steps=(Step("T1", "close"),)),
)
