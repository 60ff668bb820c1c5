"""The small programs whose interleavings are explored, each for 2 and 3 threads.

Every actor makes one rcfd call (a nested borrower makes two) on one shared
FD; model.guarantees.history_violations checks the guarantees of
specs/rcfd.md on every schedule, so a scenario states only who calls what.
Most start from an OPEN FD (FD(rawfd, ...)); the `uninit` ones from FD(),
which their actors init while others borrow, close or track it. The side
doors (issue 12): a finalizer called by hand while the release of a borrow
held by a generator races it, and callbacks calling back into their own FD.
"""

from __future__ import annotations

from tests.interleavings.harness import OTHER_RAWFD, RAWFD, Actor, Body, Scenario, World


def do_borrower(w: World) -> None:
    w.call("begin_borrow(do)", lambda: w.the_fd().do(w.borrow_body))


def cm_borrower(w: World) -> None:
    def borrow() -> str:
        with w.the_fd().borrow() as rawfd:
            return w.borrow_body(rawfd)

    w.call("begin_borrow(borrow)", borrow)


def gated_borrower(w: World) -> None:
    w.call("begin_borrow(do)", lambda: w.the_fd().do(w.gated_body))


def nested_borrower(w: World) -> None:
    """do(fn) whose fn takes a second borrow of the same FD on the same thread."""

    def inner() -> str:
        with w.the_fd().borrow() as rawfd:
            return w.borrow_body(rawfd)

    def outer(rawfd: int) -> str:
        result = w.borrow_body(rawfd)
        w.call("begin_borrow(borrow)", inner)  # refused once close began, even under a borrow
        return result

    w.call("begin_borrow(do)", lambda: w.the_fd().do(outer))


def closer(timeout: float | None = None) -> Body:
    kind = f"close({'none' if timeout is None else timeout})"

    def body(w: World) -> None:
        w.call(kind, lambda: w.the_fd().close(timeout))

    return body


def detacher(w: World) -> None:
    w.call("detach()", lambda: w.the_fd().detach())


def initer(rawfd: int = RAWFD) -> Body:
    """init(rawfd, close_func) with a close_func of its own (the log names whose runs)."""

    def body(w: World) -> None:
        close_func = w.close_func_for(w.who())
        w.call(f"init(rawfd={rawfd})", lambda: w.the_fd().init(rawfd, close_func))

    return body


def tracker(w: World) -> None:
    w.call("track_lifetime()", lambda: w.the_fd().track_lifetime(w.registry))


def finalizer(w: World) -> None:
    """fd.__del__() called by hand, as the collector would once the FD is garbage."""
    w.call("finalizer()", w.the_fd().__del__)


def releaser(w: World) -> None:
    """Closes the generator that holds main's borrow (Scenario.held): its release."""
    w.call("release_held()", w.held[0].close)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "borrowers_closer/2",
        (Actor("borrower", do_borrower), Actor("closer", closer())),
        about="a borrow and a close race",
    ),
    Scenario(
        "borrowers_closer/3",
        (Actor("b1", do_borrower), Actor("b2", cm_borrower), Actor("closer", closer())),
        about="two borrowers (do and borrow()) and a closer",
    ),
    Scenario(
        "closer_timeout/2",
        (Actor("blocked", gated_borrower, gated=True), Actor("closer", closer(5.0))),
        about="close(timeout=5) while a borrow blocks: TimeoutError, the borrow closes later",
    ),
    Scenario(
        "closer_timeout/3",
        (Actor("b1", do_borrower), Actor("b2", cm_borrower), Actor("closer", closer(0.0))),
        about="close(timeout=0): a poll; waits anyway if close_func already runs",
    ),
    Scenario(
        "nested_closer/2",
        (Actor("nested", nested_borrower), Actor("closer", closer())),
        about="a borrow nested in a borrow on one thread, and a closer",
    ),
    Scenario(
        "nested_closer/3",
        (Actor("nested", nested_borrower), Actor("b2", do_borrower), Actor("closer", closer())),
        about="a nested borrow, a plain borrow and a closer",
    ),
    Scenario(
        "two_closers/2",
        (Actor("c1", closer()), Actor("c2", closer())),
        about="two closes: one closes, the other waits for it then raises ClosedFDError",
    ),
    Scenario(
        "two_closers/3",
        (Actor("borrower", do_borrower), Actor("c1", closer()), Actor("c2", closer())),
        close_func_raises=True,
        about="a borrower and two closers; close_func raises (to the owner only)",
    ),
    Scenario(
        "detach_borrower/2",
        (Actor("detacher", detacher), Actor("borrower", do_borrower)),
        about="detach vs a borrower: the number is handed back, never closed",
    ),
    Scenario(
        "detach_borrower/3",
        (Actor("detacher", detacher), Actor("borrower", do_borrower), Actor("closer", closer())),
        about="detach, a borrower and a close: one of detach/close owns the end",
    ),
    Scenario(
        "on_closing/2",
        (Actor("closer", closer()), Actor("borrower", do_borrower)),
        on_closing=True,
        about="close with on_closing, which runs under the closer's own borrow",
    ),
    Scenario(
        "on_closing/3",
        (Actor("closer", closer()), Actor("b1", do_borrower), Actor("b2", cm_borrower)),
        on_closing=True,
        about="close with on_closing and two borrowers",
    ),
    # From FD(): init is the last step of opening (it publishes the holders),
    # and until then every borrow and close is refused with UninitializedFDError.
    Scenario(
        "init_close/2",
        (Actor("initer", initer()), Actor("closer", closer())),
        uninit=True,
        about="init vs close: the close is refused (UNINIT, nothing changed) or closes once",
    ),
    Scenario(
        "init_close/3",
        (Actor("initer", initer()), Actor("c1", closer()), Actor("c2", closer())),
        uninit=True,
        about="init vs two closes: one refused before init leaves the FD its own lock, "
        "with which the other may close during init's window (it must see UNINIT)",
    ),
    Scenario(
        "init_borrow_close/3",
        (Actor("initer", initer()), Actor("borrower", do_borrower), Actor("closer", closer())),
        uninit=True,
        about="init, a borrow and a close: a borrow's fn runs only after init published",
    ),
    Scenario(
        "two_inits/2",
        (Actor("i1", initer(RAWFD)), Actor("i2", initer(OTHER_RAWFD))),
        uninit=True,
        about="two inits: one wins, the other raises MultipleInitError and changes nothing",
    ),
    Scenario(
        "track_init/2",
        (Actor("tracker", tracker), Actor("initer", initer())),
        uninit=True,
        about="track_lifetime vs init: before init it is counted, after it refused, unchanged",
    ),
    # The side doors (issue 12).
    Scenario(
        "finalizer_release/2",
        (Actor("releaser", releaser), Actor("finalizer", finalizer)),
        held=True,
        about="a finalizer run by hand while the release of a borrow a generator holds "
        "races it: the FD is closed once, never under that borrow, with one warning",
    ),
    Scenario(
        "finalizer_release/3",
        (Actor("releaser", releaser), Actor("finalizer", finalizer), Actor("closer", closer())),
        held=True,
        about="the same with a close racing both: whoever begins the close owns it",
    ),
    Scenario(
        "close_func_reenters/2",
        (Actor("closer", closer()), Actor("borrower", do_borrower)),
        reenter=("close_func", ("close", "detach", "do")),
        about="close_func calls close, detach and do on its own FD: each refused at once "
        "(CloseInsideCloseFuncError, ClosedFDError), the outer close finishes",
    ),
    Scenario(
        "on_closing_reenters/2",
        (Actor("closer", closer()), Actor("borrower", do_borrower)),
        on_closing=True,
        reenter=("on_closing", ("close", "detach", "do")),
        about="on_closing calls close, detach and do on its own FD: refused at once "
        "(CloseInsideBorrowError under the closer's borrow, ClosedFDError)",
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
