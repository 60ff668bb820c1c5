"""Guarantee 9: an FD dropped without close() is closed by its finalizer."""

from __future__ import annotations

import gc
import os
import sys
import warnings

import pytest

import rcfd


def make_unreachable_fd(registry: rcfd.LifetimeRegistry, calls: list[int]) -> int:
    def close_func(rawfd: int) -> None:
        calls.append(rawfd)
        os.close(rawfd)

    fd = rcfd.FD(os.eventfd(0), close_func, registry=registry)
    return fd.do(lambda rawfd: rawfd)  # the FD is unreachable once this returns


def test_finalizer_closes_once_warns_and_records() -> None:
    registry = rcfd.LifetimeRegistry()
    calls: list[int] = []
    with pytest.warns(ResourceWarning, match=r"unclosed <rcfd\.FD OPEN fd=\d+ borrows=0>"):
        raw = make_unreachable_fd(registry, calls)
        gc.collect()
    assert calls == [raw]
    with pytest.raises(OSError):
        os.fstat(raw)  # really closed (nothing else opened in between on this thread)
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed, stats.finalized) == (1, 0, 1)
    assert stats.in_flight_stacks == {}
    report = stats.report()
    assert f"fd {raw} was never closed (the garbage collector closed it)" in report
    assert "make_unreachable_fd" in report


@pytest.mark.parametrize("how", ["close", "detach", "uninit"])
def test_no_finalizer_after_close_or_detach_or_without_init(how: str) -> None:
    calls: list[int] = []
    fd = rcfd.FD()
    if how != "uninit":
        fd.init(os.eventfd(0), calls.append)
        if how == "close":
            fd.close()
        else:
            os.close(fd.detach())
    calls.clear()
    mine = id(fd)  # the finalizer warns with source=the FD
    gc.collect()  # FDs that other tests dropped on purpose warn now, not below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del fd
        gc.collect()
    assert [str(w.message) for w in caught if id(w.source) == mine] == []
    assert calls == []


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_a_failing_finalizer_reports_the_error_and_still_counts(
    error: type[BaseException],
) -> None:
    """close_func's error in a close nobody waits for: an Exception becomes a
    RuntimeWarning (as after a timed-out close), anything else is re-raised,
    which CPython reports as unraisable from a finalizer. Counted finalized."""
    registry = rcfd.LifetimeRegistry()

    def close_func(rawfd: int) -> None:
        os.close(rawfd)
        raise error("close failed in the finalizer")

    seen: list[BaseException | None] = []

    def hook(args: sys.UnraisableHookArgs) -> None:
        seen.append(args.exc_value)

    old_hook = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rcfd.FD(os.eventfd(0), close_func, registry=registry)
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    kinds = [w.category for w in caught]
    if issubclass(error, Exception):
        assert kinds == [ResourceWarning, RuntimeWarning] and not seen
        assert "close failed in the finalizer" in str(caught[1].message)
    else:
        assert kinds == [ResourceWarning]
        assert len(seen) == 1 and "close failed in the finalizer" in str(seen[0])
    assert registry.fd_stats().finalized == 1
