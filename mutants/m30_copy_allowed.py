"""copy.copy(fd) works: two FD objects share one number and one holders array."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="copy-allowed",
    title="an FD can be copied (no __reduce_ex__): two owners of one number",
    guarantees=(1, 10),
    explanation=(
        "An FD has __slots__, so it looks like a value: copy.copy and deepcopy and "
        "pickle all work on it unless it says otherwise. A shallow copy shares the "
        "holders array: close the copy and the original reports OPEN but refuses "
        "every borrow, or the other way round; a deep copy or an unpickled one is a "
        "second owner of the same number, whose close_func runs a second time, on a "
        "number the kernel may have given to another open() by then. Sockets and "
        "file objects refuse to be copied or pickled; so does rcfd (dup() makes an "
        "independent FD on a duplicate number)."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            "def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:\n"
            "    raise TypeError(\n",
            "def _no_reduce_ex(self, protocol: object) -> tuple[object, ...]:  # mutant\n"
            "    raise TypeError(\n",
        ),
    ),
    scenario=Scenario(steps=(Step("T1", "copy"), Step("T1", "close"))),
)
