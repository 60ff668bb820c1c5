"""The guarantees of specs/rcfd.md, stated over the model's state and history.

Each check returns the violations it finds (empty when the guarantee holds);
model.machine asserts them after every step, so a model that drifts from the
spec fails on its own before it is used to judge rcfd or to write traces.
"""

from __future__ import annotations

from collections.abc import Callable

from model.lifecycle import ERR_CLOSE_FUNC, FDModel, Phase


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


def failed_close_is_still_closed(m: FDModel) -> list[str]:  # guarantee 7
    results = [call.result for call in m.calls]
    if ERR_CLOSE_FUNC in results and m.phase is not Phase.CLOSED:
        return [f"close_func raised but the FD is {m.phase.value}"]
    return []


def counts_match_the_state(m: FDModel) -> list[str]:  # guarantee 8 and the state table
    found = []
    n = m.borrows()
    if m.phase in (Phase.UNINIT, Phase.CLOSED) and n:
        found.append(f"{n} borrow(s) in {m.phase.value}")
    # Between steps CLOSING lasts only while borrows run: the last one to
    # return closes the FD, also after its closer timed out.
    if m.phase is Phase.CLOSING and not n:
        found.append("CLOSING with no borrow left to finish the close")
    waiting = [c for c in m.running() if c.command.call in ("close", "detach")]
    if waiting and m.phase is not Phase.CLOSING:
        found.append(f"{waiting[0]} waits in {m.phase.value}")
    return found


def registry_adds_up(m: FDModel) -> list[str]:  # guarantee 9 and the registry section
    r = m.registry
    found = []
    released = r.closed + r.close_failed + r.detached + r.finalized
    if m.tracked and r.in_flight != r.initialized - released:
        found.append(f"registry in_flight={r.in_flight} but {r.initialized} init, {released} out")
    if m.tracked and r.finalized != m.resource_warnings:
        found.append(f"{r.finalized} finalized but {m.resource_warnings} ResourceWarning(s)")
    if r.initialized > 1 or released > 1:
        found.append(f"one FD, yet the registry counts {r}")
    return found


CHECKS: tuple[Callable[[FDModel], list[str]], ...] = (
    close_func_once_and_never_under_a_borrow,
    no_borrow_after_close_began,
    borrows_released_however_fn_exits,
    closers_return_only_after_close_func,
    refusals_change_nothing,
    failed_close_is_still_closed,
    counts_match_the_state,
    registry_adds_up,
)


def violations(m: FDModel) -> list[str]:
    """Every guarantee the model breaks right now; [] when it keeps them all."""
    return [v for check in CHECKS for v in check(m)]
