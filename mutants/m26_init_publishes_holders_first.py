"""init() publishes the FD's holders as soon as it has them, before its number."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="init-publishes-holders-first",
    title="init publishes its holders first: a close in init's window closes an unset number",
    guarantees=(1, 11),
    explanation=(
        "Publishing the FD's holders is what opens it: until then they are "
        "_NO_BORROWS, the one frozen array every UNINIT FD shares, so every borrow "
        "and close sees UNINIT. init() makes its holders first and publishes them "
        "last, after the number, close_func and on_closing are stored. Publishing "
        "them as soon as they are made looks harmless (nobody can have borrowed "
        "from an array that did not exist), but it opens the FD before it is "
        "initialized: init holds the module's shared lock, a close holds the FD's "
        "own lock (made by an earlier, refused close), so a close that runs in "
        "init's window sees OPEN and closes number -1 with the default os.close "
        "(EBADF escapes close(), the FD is CLOSED and the number init then stores "
        "is never closed), and a borrow there calls fn(-1). rcfd publishes the "
        "holders as init's last store: its linearization point. (This mutant was "
        "close-reads-state-before-holders, when the state was a field of its own "
        "that init wrote before publishing; the state is now derived from the "
        "holders, so the bug that remains is publishing too early.)"
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "holders = Holders()\n",
            "holders = Holders()\n"
            "self._holders = holders  # mutant: published at once (what is there to wait for?)\n",
            count=2,  # init(), and FD(rawfd)'s own fresh init (harmless there: nobody sees it yet)
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
