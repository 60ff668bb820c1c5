"""The guarantees of specs/rcfd.md, stated over the model's state and history.

Each check returns the violations it finds (empty when the guarantee holds);
model.machine asserts them after every step, so a model that drifts from the
spec fails on its own before it is used to judge rcfd or to write traces.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from model.lifecycle import FDModel, Phase
from model.vocabulary import ERR_CLOSE_FUNC, Callback


def close_func_once_and_never_under_a_borrow(m: FDModel) -> list[str]:  # guarantee 1
    found = []
    if m.close_func_calls > 1:
        found.append(f"close_func ran {m.close_func_calls} times")
    found += [f"close_func ran under {n} borrow(s)" for n in m.borrows_at_close_func if n]
    return found


def no_borrow_after_close_began(m: FDModel) -> list[str]:  # guarantee 2
    n = m.borrows_begun_after_close
    return [f"{n} borrow(s) began after the close began"] if n else []


def borrows_released_however_fn_exits(m: FDModel) -> list[str]:  # guarantee 3
    # A borrow that returned (by value, exception or interrupt) is off every
    # stack, so it no longer counts.
    return [f"{call} returned but still counts" for call in m.running() if call.result is not None]


def closers_return_only_after_close_func(m: FDModel) -> list[str]:  # guarantees 4 and 5
    return [f"returned before CLOSED: {what}" for what in m.closers_returned_before_closed]


def refusals_change_nothing(m: FDModel) -> list[str]:  # guarantees 6 and 10
    return [f"a refusal changed the FD: {what}" for what in m.refusals_that_changed]


def calls_from_callbacks_return_at_once(m: FDModel) -> list[str]:  # guarantee 6
    # A callback's calls (a close from close_func, a borrow from on_closing)
    # return in the step that makes them: one that waited would wait for the
    # callback, that is for itself. So a paused callback is always on top.
    found = []
    for stack in m.stacks:
        for below, above in itertools.pairwise(stack):
            if isinstance(below, Callback):
                found.append(f"{above} waits inside {below}: it would wait for itself")
    return found


def on_closing_once_under_the_closers_borrow(m: FDModel) -> list[str]:  # ecosystem.md
    found = [f"on_closing ran {m.on_closing_calls} times"] if m.on_closing_calls > 1 else []
    found += [f"on_closing ran with {n} borrows" for n in m.borrows_at_on_closing if n < 1]
    return found


def failed_close_is_still_closed(m: FDModel) -> list[str]:  # guarantee 7
    results = [call.result for call in m.calls]
    if ERR_CLOSE_FUNC in results and m.phase is not Phase.CLOSED:
        return [f"close_func raised but the FD is {m.phase.value}"]
    # Its error reaches the closer that began the close, or, when nobody
    # waits (a timed-out closer, the finalizer), a RuntimeWarning; never both.
    received = results.count(ERR_CLOSE_FUNC) + m.runtime_warnings
    if received != m.close_func_raised:
        return [f"close_func raised {m.close_func_raised}x; {received} closer(s)/warning(s) saw it"]
    return []


def counts_match_the_state(m: FDModel) -> list[str]:  # guarantee 8 and the state table
    found = []
    n = m.borrows()
    # Every borrow that began and has not ended counts, wherever it is held
    # (a fn, a generator, the closer while on_closing runs), and only those.
    if n != m.table_count:
        found.append(f"{n} borrow(s) held, but the table's steps counted {m.table_count}")
    if m.phase in (Phase.UNINIT, Phase.CLOSED) and n:
        found.append(f"{n} borrow(s) in {m.phase.value}")
    # Between steps CLOSING lasts only while borrows run or close_func runs:
    # the last borrow to return closes the FD, also after its closer timed out.
    close_func_runs = any(c.kind == "close_func" for c in m.callbacks())
    if m.phase is Phase.CLOSING and not n and not close_func_runs:
        found.append("CLOSING with no borrow left to finish the close")
    waiting = [c for c in m.running() if c.command.call in ("close", "detach")]
    if waiting and m.phase is not Phase.CLOSING:
        found.append(f"{waiting[0]} waits in {m.phase.value}")
    # The timeout bounds the wait for borrows, never the wait for close_func.
    found += [f"{what} timed out with no borrow running" for what in m.timeouts_without_borrows]
    return found


def registry_adds_up(m: FDModel) -> list[str]:  # guarantee 9 and the registry section
    r = m.registry
    found = []
    released = r.closed + r.close_failed + r.detached + r.finalized
    if m.tracked and r.in_flight != r.initialized - released:
        found.append(f"registry in_flight={r.in_flight} but {r.initialized} init, {released} out")
    # The finalizer warns as it begins its close, and counts it as it ends.
    finalizing = m.finalizer_close and m.phase is Phase.CLOSING
    if m.tracked and r.finalized + finalizing != m.resource_warnings:
        found.append(f"{r.finalized} finalized but {m.resource_warnings} ResourceWarning(s)")
    copies = m.copies if m.tracked else 0  # dup's copies, each initialized and closed
    if r.initialized - copies > 1 or released - copies > 1:
        found.append(f"one FD and {copies} copies, yet the registry counts {r}")
    return found


def finalizer_closes_a_dropped_fd(m: FDModel) -> list[str]:  # guarantee 9
    # Once the collector is done (the drop returned), an FD it found OPEN is
    # closed, once, with one ResourceWarning, whatever held borrows of it;
    # any other FD got no warning.
    closed_once = m.phase is Phase.CLOSED and m.close_func_calls == 1
    if m.dropped_open and not m.dropping and not closed_once:
        return [f"dropped OPEN, but {m.phase.value} with close_func run {m.close_func_calls}x"]
    if m.resource_warnings != (1 if m.dropped_open else 0):
        return [f"{m.resource_warnings} ResourceWarning(s); dropped OPEN: {m.dropped_open}"]
    return []


CHECKS: tuple[Callable[[FDModel], list[str]], ...] = (
    close_func_once_and_never_under_a_borrow,
    no_borrow_after_close_began,
    borrows_released_however_fn_exits,
    closers_return_only_after_close_func,
    refusals_change_nothing,
    calls_from_callbacks_return_at_once,
    on_closing_once_under_the_closers_borrow,
    failed_close_is_still_closed,
    counts_match_the_state,
    registry_adds_up,
    finalizer_closes_a_dropped_fd,
)


def violations(m: FDModel) -> list[str]:
    """Every guarantee the model breaks right now; [] when it keeps them all."""
    return [v for check in CHECKS for v in check(m)]
