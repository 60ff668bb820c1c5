"""The programs behind specs/traces/*.json: one FD, a few logical threads.

Each scenario is a short program of thread/call commands chosen to show one
guarantee of specs/rcfd.md or to reach rows of its transition table; the
model (model.lifecycle) supplies every expected result when model.traces
turns it into a trace. Appending a scenario adds a file; the files are
numbered in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.vocabulary import Command


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    guarantees: tuple[int, ...]
    commands: tuple[Command, ...]
    threads: int = 3


def _c(thread: int, call: str, arg: str = "") -> Command:
    return Command(thread, call, arg)


INIT = _c(0, "init", "ok")
CALLS: tuple[Scenario, ...] = (
    Scenario(
        "basic_lifecycle",
        "init, one borrow, close with no borrow running: close_func runs in close().",
        (1,),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "uninitialized_refusals",
        "Every call but init and track_lifetime is refused before init, changing nothing.",
        (10,),
        (
            _c(0, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(1, "track_lifetime"),
            _c(1, "track_lifetime"),
            INIT,
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "init_and_track_refusals",
        "init twice is MultipleInit; init once close began is ClosedFD; track_lifetime "
        "after init is MultipleInit; in OPEN, CLOSING and CLOSED, changing nothing.",
        (10,),
        (
            INIT,
            _c(1, "init", "ok"),
            _c(1, "track_lifetime"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "init", "ok"),
            _c(2, "track_lifetime"),
            _c(0, "end_borrow", "return"),
            _c(2, "init", "ok"),
            _c(2, "track_lifetime"),
        ),
    ),
    Scenario(
        "refused_after_close",
        "Once CLOSED, borrows, close and detach are refused with ClosedFD; close_func "
        "is not called again.",
        (1, 2, 5),
        (
            INIT,
            _c(0, "close", "none"),
            _c(1, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(1, "close", "none"),
            _c(2, "detach"),
        ),
    ),
    Scenario(
        "close_waits_for_borrows",
        "close() waits for the two running borrows; a borrow tried meanwhile is "
        "refused at once (it cannot starve the close); the last release runs close_func.",
        (1, 2, 4),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "begin_borrow", "borrow"),
            _c(2, "close", "none"),
            _c(0, "begin_borrow", "do"),
            _c(1, "end_borrow", "return"),
            _c(1, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "second_closer_waits",
        "A second close() waits for the first close to finish, then raises ClosedFD; "
        "so does a detach() that comes second.",
        (1, 5),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "close_inside_borrow",
        "close()/detach() by a thread that holds a borrow is refused at once, in OPEN "
        "and in CLOSING, changing nothing.",
        (6, 10),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(1, "close", "none"),
            _c(0, "close", "none"),
            _c(0, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "nested_borrows",
        "Borrows nest on one thread and each counts; the close waits for the outermost.",
        (1, 4),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "begin_borrow", "borrow"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "end_borrow", "return"),
            _c(0, "end_borrow", "raise"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "borrow_released_however_fn_exits",
        "A borrow ends when fn returns, raises, or raises a BaseException; do() "
        "passes fn's result or exception through.",
        (3,),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "raise"),
            _c(1, "begin_borrow", "borrow"),
            _c(1, "end_borrow", "interrupt"),
            _c(2, "begin_borrow", "do"),
            _c(2, "end_borrow", "return"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "end_borrow", "interrupt"),
        ),
    ),
    Scenario(
        "close_func_raises",
        "close_func raises: the FD is still CLOSED, the closer that began the close "
        "gets the error, a waiting closer gets ClosedFD, the registry counts close_failed.",
        (1, 5, 7),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(2, "close", "none"),
            _c(0, "end_borrow", "return"),
            _c(1, "close", "none"),
        ),
    ),
    Scenario(
        "close_timeout_expires",
        "close(timeout) gives up while a borrow runs: TimeoutError, the FD stays "
        "CLOSING, and the last borrow closes it exactly once.",
        (1, 5, 8),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(2, "close", "expires"),
            _c(1, "begin_borrow", "do"),
            _c(2, "close", "none"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "close_timeout_not_needed",
        "close(timeout) with no borrow running closes at once.",
        (4, 8),
        (INIT, _c(1, "close", "expires")),
    ),
    Scenario(
        "timeout_then_close_func_raises",
        "The closer timed out, so when close_func raises nobody receives the error: "
        "it is reported as a RuntimeWarning and counted as close_failed.",
        (7, 8),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "detach_hands_the_number_back",
        "detach() waits for the borrows like close(), then hands the number back "
        "instead of calling close_func; a second detach waits, then gets ClosedFD.",
        (1, 5),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "detach"),
            _c(2, "detach"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "detach_after_close_timed_out",
        "A detach that arrives after a close began (and timed out) only waits: the "
        "close began as a close, so close_func runs and the detach gets ClosedFD.",
        (5, 8),
        (
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "expires"),
            _c(1, "detach"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "finalizer_closes_a_dropped_fd",
        "An OPEN FD that becomes unreachable is closed by its finalizer: close_func "
        "once, a ResourceWarning, counted as finalized (a leak).",
        (9,),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
            _c(0, "drop"),
        ),
    ),
    Scenario(
        "finalizer_ignores_uninit",
        "Dropping an FD that was never initialized does nothing.",
        (9,),
        (_c(0, "track_lifetime"), _c(0, "drop")),
    ),
    Scenario(
        "finalizer_ignores_closed",
        "close() disarms the finalizer: dropping a closed FD does nothing.",
        (9,),
        (_c(0, "track_lifetime"), INIT, _c(0, "close", "none"), _c(0, "drop")),
    ),
    Scenario(
        "invalid_timeout_in_every_state",
        "A negative timeout is an invalid argument, refused before the state is "
        "looked at, in every state, changing nothing.",
        (10,),
        (
            _c(0, "close", "invalid"),
            INIT,
            _c(0, "close", "invalid"),
            _c(0, "begin_borrow", "do"),
            _c(0, "close", "invalid"),
            _c(1, "close", "none"),
            _c(2, "close", "invalid"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "invalid"),
        ),
    ),
)

# The traces issue 15 found missing, and the side doors of issue 12: the
# callbacks that call back into their FD, the finalizer meeting borrows held
# by garbage, an FD made reachable again by its own close_func.
SIDE_DOORS: tuple[Scenario, ...] = (
    Scenario(
        "deadline_strikes_while_close_func_runs",
        "close(timeout) bounds the wait for borrows only: a deadline that strikes "
        "while close_func runs (the count already reached zero) is not a timeout, "
        "for the closer that began the close nor for one that found it begun; "
        "both return when close_func does.",
        (5, 8),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "pauses"),
            _c(1, "close", "expires"),
            _c(2, "close", "expires"),
            _c(0, "begin_borrow", "do"),
            _c(1, "end_callback", "return"),
        ),
    ),
    Scenario(
        "on_closing_raises_while_borrows_run",
        "on_closing runs under the closer's own borrow: from inside it a borrow is "
        "refused (CLOSING) and a close is a close inside a borrow. When it raises, "
        "the closer leaves with that error without waiting; the FD stays CLOSING "
        "and the last borrow runs close_func, which a second closer waits for.",
        (1, 2, 6, 10),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "on_closing_pauses"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(1, "begin_borrow", "borrow"),
            _c(1, "close", "none"),
            _c(1, "detach"),
            _c(1, "dup"),
            _c(1, "init", "ok"),
            _c(1, "end_callback", "raise"),
            _c(2, "close", "none"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "on_closing_raises_with_no_borrow",
        "If on_closing raises and no borrow runs, the closer's own release runs "
        "close_func before the error propagates: the FD is CLOSED when it does.",
        (1, 7),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "on_closing_pauses"),
            _c(1, "close", "none"),
            _c(1, "end_callback", "raise"),
            _c(1, "close", "none"),
        ),
    ),
    Scenario(
        "detach_becomes_a_close",
        "A detach whose on_closing raises becomes a close: nobody takes the number, "
        "so the last borrow closes it with close_func (never orphaned), counted closed.",
        (1, 5),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "on_closing_pauses"),
            _c(0, "begin_borrow", "borrow"),
            _c(1, "detach"),
            _c(1, "end_callback", "raise"),
            _c(0, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "close_func_calls_back_into_its_fd",
        "close_func, run by the last release, calls back into its own FD: close and "
        "detach raise CloseInsideCloseFunc at once (they would wait for themselves), "
        "borrows, dup, init and track_lifetime are refused; nothing changes, and the "
        "close in progress finishes when close_func returns.",
        (1, 2, 5, 6, 10),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "pauses"),
            _c(0, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "end_borrow", "return"),
            _c(0, "close", "none"),
            _c(0, "close", "expires"),
            _c(0, "detach"),
            _c(0, "begin_borrow", "do"),
            _c(0, "begin_borrow", "borrow"),
            _c(0, "hold_borrow"),
            _c(0, "dup"),
            _c(0, "init", "ok"),
            _c(0, "track_lifetime"),
            _c(2, "close", "none"),
            _c(0, "end_callback", "return"),
        ),
    ),
    Scenario(
        "close_func_of_the_closer_closes_again",
        "close_func run by the closer itself (no borrow was running) calls close: "
        "refused at once; close_func then raises, and the closer gets its error.",
        (6, 7),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "pauses"),
            _c(1, "close", "none"),
            _c(1, "close", "none"),
            _c(1, "detach"),
            _c(1, "end_callback", "raise"),
        ),
    ),
    Scenario(
        "close_func_raises_in_the_finalizer",
        "close_func raises while the finalizer runs it: the FD is closed all the "
        "same, the error is a RuntimeWarning (nobody waits), counted finalized.",
        (7, 9),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "begin_borrow", "do"),
            _c(0, "end_borrow", "return"),
            _c(1, "drop"),
        ),
    ),
    Scenario(
        "several_fds_on_one_registry",
        "dup() makes an FD of its own on the same registry (closed at once here): "
        "the registry counts FDs, each initialized and released once; a dup is a "
        "borrow, refused once the close began.",
        (2, 9),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "dup"),
            _c(1, "begin_borrow", "do"),
            _c(1, "dup"),
            _c(2, "close", "none"),
            _c(0, "dup"),
            _c(1, "end_borrow", "return"),
        ),
    ),
    Scenario(
        "borrow_held_by_a_suspended_generator",
        "A generator suspended inside `with fd.borrow()` holds a borrow of the thread "
        "that entered it: that thread's close is a close inside a borrow; another's "
        "waits; closing the generator on any thread releases it and runs close_func.",
        (1, 4, 6),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "hold_borrow"),
            _c(0, "close", "none"),
            _c(1, "close", "none"),
            _c(0, "hold_borrow"),
            _c(2, "release_held"),
        ),
    ),
    Scenario(
        "finalizer_first_with_a_borrow_held_by_garbage",
        "The FD and a generator holding a borrow of it become garbage together, and "
        "the FD's finalizer runs first: it warns and begins the close (no close_func "
        "under the borrow); the generator's finalizer then releases the last borrow, "
        "which runs close_func. Counted finalized.",
        (1, 9),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "hold_borrow"),
            _c(1, "hold_borrow"),
            _c(2, "drop"),
        ),
    ),
    Scenario(
        "generator_first_with_a_borrow_held_by_garbage",
        "The same garbage, finalized the other way round: the generator's release "
        "comes first (OPEN), then the FD's finalizer finds no borrow and closes.",
        (1, 9),
        (
            _c(0, "track_lifetime"),
            INIT,
            _c(0, "hold_borrow"),
            _c(2, "drop", "holders-first"),
        ),
    ),
    Scenario(
        "close_func_makes_the_fd_reachable_again",
        "The finalizer's close_func keeps a reference to its FD and makes it reachable "
        "again: every thread can call it, and the finalizer's close refuses them as "
        "close() would (borrows refused, a close from close_func refused, another "
        "closer waits). close_func raises: a RuntimeWarning. Afterwards the FD is "
        "CLOSED and refuses everything.",
        (1, 2, 5, 6, 9),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "pauses"),
            _c(1, "drop"),
            _c(1, "begin_borrow", "do"),
            _c(1, "close", "none"),
            _c(0, "begin_borrow", "borrow"),
            _c(0, "hold_borrow"),
            _c(2, "close", "none"),
            _c(1, "end_callback", "raise"),
            _c(0, "begin_borrow", "do"),
            _c(0, "close", "none"),
        ),
    ),
    Scenario(
        "finalizer_meets_a_timed_out_close",
        "A close timed out while a generator held a borrow; then the FD and the "
        "generator become garbage. The finalizer finds CLOSING and leaves the close "
        "to the last release, which runs close_func: the program began this close, "
        "so it counts close_failed, and its error, received by nobody, is a "
        "RuntimeWarning.",
        (7, 8, 9),
        (
            _c(0, "track_lifetime"),
            _c(0, "init", "raises"),
            _c(0, "hold_borrow"),
            _c(1, "close", "expires"),
            _c(1, "drop"),
        ),
    ),
)

SCENARIOS: tuple[Scenario, ...] = CALLS + SIDE_DOORS
