"""track_lifetime() stores the registry before it checks the state."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="refused-track-swaps-registry",
    title="a rejected track_lifetime() changes the FD's registry on its way out",
    guarantees=(10,),
    explanation=(
        "track_lifetime() assigns the registry and then asks the state machine, "
        "which refuses (the FD is already initialized) and raises. The caller sees "
        "MultipleInitError and thinks nothing happened, but the FD now reports its "
        "release to a registry that never saw its init: one registry reports a leak "
        "that did not happen, the other counts a release of nothing."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            'self._step(Event.TRACK, "track_lifetime")\n'
            "self._extras = _Extras(registry, None)\n",
            "self._extras = _Extras(registry, None)  # mutant: assigned before the check\n"
            'self._step(Event.TRACK, "track_lifetime")\n',
        ),
    ),
    scenario=Scenario(
        steps=(
            Step("T1", "track"),
            Step("T1", "close"),
        )
    ),
)
