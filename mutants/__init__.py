"""The catalog of concurrency mutants: realistic bugs that the checks must catch.

Each module mNN_*.py is one bug: a few exact-snippet edits of rcfd/, a
paragraph on why the bug is realistic and which guarantee of specs/rcfd.md
it breaks, and the shortest scenario that shows it (`make explain
MUTANT=<name>`). `make mutants` (tools/mutation.py) applies each to a copy of
the package and requires the checks to fail. Read them in order to learn the
invariants: every one is a way a reference-counted descriptor goes wrong.
"""

from __future__ import annotations

from mutants import (
    m01_close_does_not_wait,
    m02_borrow_while_closing,
    m03_check_then_act,
    m04_no_release_on_exception,
    m05_no_release_on_exception_in_with,
    m06_no_release_on_interrupt,
    m07_no_release_on_interrupt_in_with,
    m08_lost_wakeup,
    m09_wake_on_every_release,
    m10_second_close_closes_again,
    m11_second_close_returns_early,
    m12_failed_close_leaves_open,
    m13_deferred_close_lost,
    m14_close_inside_borrow_deadlocks,
    m15_finalizer_never_runs,
    m16_finalizer_closes_closed_fd,
    m17_refused_borrow_leaks_count,
    m18_refused_track_swaps_registry,
    m19_registry_failed_close_counts_closed,
    m20_registry_forgets_init_stack,
    m21_two_releases_both_close,
    m22_on_closing_after_release,
    m23_timeout_during_close_func,
    m24_nan_timeout_checked_late,
    m25_init_without_shared_lock,
    m26_init_publishes_holders_first,
    m27_close_in_close_func_waits,
    m28_finalizer_does_not_refuse_borrows,
    m29_warning_before_the_close,
    m30_copy_allowed,
    m31_double_release_after_fork,
    m32_release_does_not_defer,
    m33_nogil_insert_outside_the_lock,
    m34_nogil_unrecorded_borrow_given_back,
    m35_nogil_recorded_release_taken_again,
    m36_nogil_recovery_skips_the_decision,
)
from mutants._mutant import Mutant

CATALOG: tuple[Mutant, ...] = (
    m01_close_does_not_wait.MUTANT,
    m02_borrow_while_closing.MUTANT,
    m03_check_then_act.MUTANT,
    m04_no_release_on_exception.MUTANT,
    m05_no_release_on_exception_in_with.MUTANT,
    m06_no_release_on_interrupt.MUTANT,
    m07_no_release_on_interrupt_in_with.MUTANT,
    m08_lost_wakeup.MUTANT,
    m09_wake_on_every_release.MUTANT,
    m10_second_close_closes_again.MUTANT,
    m11_second_close_returns_early.MUTANT,
    m12_failed_close_leaves_open.MUTANT,
    m13_deferred_close_lost.MUTANT,
    m14_close_inside_borrow_deadlocks.MUTANT,
    m15_finalizer_never_runs.MUTANT,
    m16_finalizer_closes_closed_fd.MUTANT,
    m17_refused_borrow_leaks_count.MUTANT,
    m18_refused_track_swaps_registry.MUTANT,
    m19_registry_failed_close_counts_closed.MUTANT,
    m20_registry_forgets_init_stack.MUTANT,
    m21_two_releases_both_close.MUTANT,
    m22_on_closing_after_release.MUTANT,
    m23_timeout_during_close_func.MUTANT,
    m24_nan_timeout_checked_late.MUTANT,
    m25_init_without_shared_lock.MUTANT,
    m26_init_publishes_holders_first.MUTANT,
    m27_close_in_close_func_waits.MUTANT,
    m28_finalizer_does_not_refuse_borrows.MUTANT,
    m29_warning_before_the_close.MUTANT,
    m30_copy_allowed.MUTANT,
    m31_double_release_after_fork.MUTANT,
    m32_release_does_not_defer.MUTANT,
    m33_nogil_insert_outside_the_lock.MUTANT,
    m34_nogil_unrecorded_borrow_given_back.MUTANT,
    m35_nogil_recorded_release_taken_again.MUTANT,
    m36_nogil_recovery_skips_the_decision.MUTANT,
)


def find(name: str) -> Mutant:
    """The mutant called `name`; KeyError listing the names otherwise."""
    for mutant in CATALOG:
        if mutant.name == name:
            return mutant
    raise KeyError(f"no mutant {name!r}; the catalog has: {', '.join(m.name for m in CATALOG)}")
