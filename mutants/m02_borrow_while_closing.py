"""A borrow may start while the FD is CLOSING: close() never keeps the holders frozen."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="borrow-while-closing",
    title="a borrow may start while CLOSING (close() lets go of the freeze at once)",
    guarantees=(2, 4),
    explanation=(
        "A borrow is refused only because close() froze the holders: a memoryview "
        "export makes the borrow's insert fail. Here the closer makes the export "
        "the tidy way, in a `with memoryview(holders) as view:` block, which "
        "releases it at the end of the block: the state says CLOSING, but the "
        "holders take inserts again. A borrow that starts after close() began uses "
        "a number that is about to be closed, and a steady stream of them would "
        "keep the count above zero; worse, the releases also learn of the close "
        "from the freeze, so none of them runs close_func and close() waits for "
        "ever. Go's rc blocks such borrowers; internal/poll and rcfd refuse them at "
        "once, and rcfd keeps the export for the FD's whole life."
    ),
    edits=(
        # Both freezes: Closing._freeze's, and _begin_alone's inline copy.
        Edit(
            "rcfd/_closing.py",
            "self.freeze.extend(map(memoryview, (fd._holders,)))\n",
            "with memoryview(fd._holders) as view:  # mutant: the export ends with the block\n"
            "    self.freeze.append(view)\n",
        ),
        Edit(
            "rcfd/_closing.py",
            "self.freeze.extend(map(memoryview, (holders,)))\n",
            "with memoryview(holders) as view:  # mutant: the export ends with the block\n"
            "    self.freeze.append(view)\n",
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "borrow"),
            Step("T2", "close"),
            Step("T3", "borrow"),
            Step("T1", "return"),
            Step("T3", "return"),
        )
    ),
)
