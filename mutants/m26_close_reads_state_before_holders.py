"""`state` (so every transition) reads _state alone, not the holders first."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="close-reads-state-before-holders",
    title="state reads _state alone: a close in init's window takes the shared UNINIT holders",
    guarantees=(11,),
    explanation=(
        "init() writes OPEN, then publishes the FD's own holders as its last store: "
        "until then the holders are _NO_BORROWS, the one frozen array every UNINIT FD "
        "shares. Reading _state is the obvious way to tell the state, and it was "
        "right while one lock ordered init and close. Now init holds the module's "
        "shared lock and a close the FD's own (made by an earlier, refused close), so "
        "a close can run inside init's window, see OPEN, and count its own borrow "
        "into the holders: the shared _NO_BORROWS. Its permanent freeze refuses, and "
        "BufferError escapes close() instead of UninitializedFDError (without that "
        "freeze the close would count itself into, and freeze, the holders of every "
        "UNINIT FD). rcfd's `state` reads the holders first: until init publishes "
        "them the FD is UNINIT to every transition, whatever _state says."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "return State.UNINIT if self._holders is _NO_BORROWS else self._state",
            "return self._state  # mutant: the state alone, init's window unseen",
        ),
    ),
    scenario=Scenario(
        uninit=True,
        steps=(
            Step("T2", "close"),
            Step("T1", "init", pause="in-init"),
            Step("T2", "close"),
            Step("T1", "resume"),
            Step("T2", "close"),
        ),
    ),
)
