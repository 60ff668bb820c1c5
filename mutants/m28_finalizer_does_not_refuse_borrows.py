"""The finalizer marks the FD CLOSING without freezing its holders."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="finalizer-does-not-refuse-borrows",
    title="the finalizer's close does not refuse borrows (no freeze)",
    guarantees=(1, 2),
    explanation=(
        "The finalizer runs when the FD is unreachable, so nobody can borrow it: "
        "why freeze the holders? It marks the close and runs it. But close_func is "
        "user code, and it may make the FD reachable again (it keeps a reference, "
        "or logs the object somewhere): a borrow taken from there, or from whoever "
        "finds the FD next, runs while close_func closes the number, and afterwards "
        "on a closed one. That was issue 12's second bug. rcfd's finalizer begins "
        "the close exactly as close() does: it freezes the holders, so every borrow "
        "is refused from then on."
    ),
    edits=(
        Edit(
            "rcfd/_closing.py",
            "new._freeze(fd)\nclaimed = new._zero(fd, me)\n",
            "fd._closer = new  # mutant: the FD is unreachable, nobody can borrow it:\n"
            'new.freeze.append(memoryview(b"CLOSING"))  # CLOSING, without a freeze\n'
            "claimed = new._zero(fd, me)\n",
        ),
    ),
    scenario=Scenario(
        close_func="pauses",  # and keeps its FD: run by the finalizer, it reaches it again
        steps=(
            Step("-", "drop"),  # on T0: the finalizer runs close_func there, which pauses
            Step("T0", "borrow"),  # from inside close_func
            Step("T0", "return"),
            Step("-", "finish"),
        ),
    ),
)
