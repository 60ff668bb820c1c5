"""init() and track_lifetime() take no lock: two racing inits both succeed."""

from mutants._harness import Scenario, Step
from mutants._mutant import Edit, Mutant

MUTANT = Mutant(
    name="init-without-shared-lock",
    title="init() takes no lock: two racing inits both succeed, a borrow's count is lost",
    guarantees=(1, 11, 0),
    explanation=(
        "An FD has no lock of its own until its first close, so init() looks like it "
        "needs none: FD() is usually made and initialized by one thread before anyone "
        "else sees it, and the constructor's own init takes no lock either. Yet FD() "
        "exists so that init can come later, when the FD may already be shared. "
        "Without the module's shared lock, two inits both pass their state check "
        "(still UNINIT) and both return: the FD ends with the second writer's number, "
        "the first caller's number is orphaned (nobody closes it), and the registry "
        "counts two inits. Worse, each init publishes an array of holders of its own: "
        "a borrow that counted itself in the first is gone from the count once the "
        "second replaces it, so a close sees no borrow and runs close_func while that "
        "borrow still uses the number. It takes a preemption inside init, after its "
        "check and before its last store (pause='in-init'); track_lifetime() without "
        "the lock races init the same way (a registry attached after init read it)."
    ),
    edits=(
        Edit(
            "rcfd/_fd.py",
            'check_init("init", rawfd, close_func, on_closing)\n'
            "with _SHARED_LOCK:\n"
            "    self._init(rawfd, close_func, on_closing)\n",
            'check_init("init", rawfd, close_func, on_closing)\n'
            "self._init(rawfd, close_func, on_closing)  # mutant: UNINIT, so no lock\n",
        ),
        Edit(
            "rcfd/_fd.py",
            'check_registry("track_lifetime", registry)\nwith _SHARED_LOCK:\n'
            "    self._track(registry)\n",
            'check_registry("track_lifetime", registry)\n'
            "self._track(registry)  # mutant: UNINIT, so no lock\n",
        ),
    ),
    scenario=Scenario(
        uninit=True,
        steps=(
            Step("T1", "init", pause="in-init"),
            Step("T2", "init"),
            Step("T3", "borrow"),
            Step("T1", "resume"),
            Step("T2", "close"),
            Step("T3", "return"),
        ),
    ),
)
