"""track_lifetimes(): every FD initialized in the block, on this thread and
on the threads started from it, reports to one registry."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest

import rcfd
from tests.fdhelp import WAIT
from tests.support import in_thread as run_in_thread


def new_fd() -> rcfd.FD:
    return rcfd.FD(os.eventfd(0))


def in_thread(fn: threading.Thread) -> None:
    fn.start()
    fn.join(WAIT)
    assert not fn.is_alive()


def test_fds_initialized_in_the_block_are_tracked_and_others_are_not() -> None:
    before = new_fd()
    with rcfd.track_lifetimes() as registry:
        inside = new_fd()
        uninit = rcfd.FD()  # made in the block, initialized after it
        own = rcfd.LifetimeRegistry()
        explicit = rcfd.FD(os.eventfd(0), registry=own)  # keeps its own registry
    after = new_fd()
    uninit.init(os.eventfd(0))
    stats = registry.fd_stats()
    assert stats.initialized == 1
    assert "inside = new_fd()" in stats.report()  # the leak names its init line
    inside.close()
    assert registry.fd_stats().report() == ""
    assert own.fd_stats().initialized == 1
    for fd in (before, uninit, explicit, after):
        fd.close()
    assert registry.fd_stats().initialized == 1


def test_scopes_nest_and_restore_even_on_error() -> None:
    with rcfd.track_lifetimes() as outer:
        with pytest.raises(ZeroDivisionError), rcfd.track_lifetimes() as inner:
            a = new_fd()
            1 / 0  # noqa: B018 (the block leaves by an exception)
        b = new_fd()
    c = new_fd()
    assert inner.fd_stats().initialized == 1
    assert outer.fd_stats().initialized == 1
    for fd in (a, b, c):
        fd.close()
    assert (inner.fd_stats().report(), outer.fd_stats().report()) == ("", "")


def test_a_given_registry_is_used() -> None:
    registry = rcfd.LifetimeRegistry()
    with rcfd.track_lifetimes(registry) as got:
        new_fd().close()
    assert got is registry
    assert registry.fd_stats().closed == 1
    with pytest.raises(TypeError, match="must be a LifetimeRegistry"), rcfd.track_lifetimes(
        cast(rcfd.LifetimeRegistry, object())  # checked at run time
    ):
        pass


def test_threads_started_in_the_block_are_tracked() -> None:
    made: list[rcfd.FD] = []

    class Worker(threading.Thread):
        def run(self) -> None:  # a subclass overriding run()
            made.append(new_fd())

    with rcfd.track_lifetimes() as registry:
        in_thread(threading.Thread(target=lambda: made.append(new_fd())))
        in_thread(Worker())
        in_thread(threading.Timer(0, lambda: made.append(new_fd())))
        # ...and their children: the registry is current in the thread.
        in_thread(threading.Thread(target=lambda: in_thread(Worker())))
        with ThreadPoolExecutor(2) as pool:  # workers start at submit, in the block
            made.append(pool.submit(new_fd).result(WAIT))
    assert registry.fd_stats().initialized == len(made) == 5
    for fd in made:
        fd.close()
    assert registry.fd_stats().report() == ""


def test_a_thread_started_outside_the_block_is_not_tracked() -> None:
    go = threading.Event()
    made: list[rcfd.FD] = []

    def worker() -> None:
        assert go.wait(WAIT)
        made.append(new_fd())

    t = threading.Thread(target=worker)
    t.start()  # before the block
    with rcfd.track_lifetimes() as registry:
        go.set()
        t.join(WAIT)
    assert len(made) == 1
    assert registry.fd_stats().initialized == 0
    made[0].close()


def test_a_thread_keeps_the_registry_current_when_it_started() -> None:
    # As an asyncio task keeps the context it was created in: the value is
    # captured at start(), and the thread keeps it after the block ends.
    go = threading.Event()
    made: list[rcfd.FD] = []

    def worker() -> None:
        assert go.wait(WAIT)
        made.append(new_fd())

    with rcfd.track_lifetimes() as registry:
        t = threading.Thread(target=worker)
        t.start()
    go.set()
    t.join(WAIT)
    assert registry.fd_stats().initialized == 1
    made[0].close()


def test_only_rcfd_state_crosses_into_the_thread() -> None:
    other: contextvars.ContextVar[str] = contextvars.ContextVar("other", default="unset")
    seen: list[str] = []
    other.set("parent")
    with rcfd.track_lifetimes():
        in_thread(threading.Thread(target=lambda: seen.append(other.get())))
    assert seen == ["unset"]  # the thread's context is otherwise Python's default


def test_the_thread_object_is_left_as_it_was() -> None:
    with rcfd.track_lifetimes():
        t = threading.Thread(target=lambda: None)
        in_thread(t)
        assert "run" not in vars(t)  # the shadowing run() is gone once it ran
        assert inspect.unwrap(threading.Thread.start) is not threading.Thread.start
        with pytest.raises(RuntimeError, match="once"):
            t.start()  # started twice: refused as without rcfd...
        assert "run" not in vars(t)  # ...and the hook undid itself

        calls: list[str] = []
        u = threading.Thread()
        own = vars(u)["run"] = lambda: calls.append("instance run")
        in_thread(u)
        assert calls == ["instance run"]
        assert vars(u)["run"] is own


def test_asyncio_tasks_and_to_thread_inherit_the_scope() -> None:
    async def main() -> list[rcfd.FD]:
        async def make() -> rcfd.FD:
            return new_fd()

        return [await asyncio.create_task(make()), await asyncio.to_thread(new_fd)]

    with rcfd.track_lifetimes() as registry:
        made = asyncio.run(main())
    assert registry.fd_stats().initialized == 2
    for fd in made:
        fd.close()


# -- several FDs on one registry, two of them on one number (issue 15) ----------


def _noop(rawfd: int) -> None:
    """A close_func that leaves the number open (the test closes it)."""


def open_twice(registry: rcfd.LifetimeRegistry, rawfd: int) -> tuple[rcfd.FD, rcfd.FD]:
    first = rcfd.FD(rawfd, _noop, registry=registry)  # opened by open_twice, first
    second = rcfd.FD(rawfd, _noop, registry=registry)  # opened by open_twice, second
    return first, second


def test_two_fds_in_flight_on_one_number_are_both_counted_and_reported() -> None:
    """The registry counts FDs, not numbers: two FDs wrapping one number (or a
    number the kernel reused while an FD that did not close it is in flight)
    are two leaks, each reported with its own init stack."""
    registry = rcfd.LifetimeRegistry()
    rawfd = os.eventfd(0)
    other = rcfd.FD(os.eventfd(0), registry=registry)
    try:
        first, second = open_twice(registry, rawfd)
        stats = registry.fd_stats()
        assert (stats.initialized, stats.in_flight) == (3, 3)
        assert sorted(stats.in_flight_stacks) == sorted([rawfd, other.do(lambda n: n)])
        report = stats.report()
        assert report.count(f"fd {rawfd} is still open; initialized at:") == 2, report
        assert "opened by open_twice, first" in report
        assert "opened by open_twice, second" in report
        assert "in_flight=3" in report.splitlines()[0]
        first.close()
        stats = registry.fd_stats()
        assert (stats.in_flight, stats.closed) == (2, 1)
        assert "opened by open_twice, second" in stats.in_flight_stacks[rawfd]
        assert "opened by open_twice, first" not in stats.in_flight_stacks[rawfd]
        second.close()
        other.close()
        stats = registry.fd_stats()
        assert (stats.in_flight, stats.in_flight_stacks, stats.report()) == (0, {}, "")
    finally:
        os.close(rawfd)


def test_in_flight_is_a_field_of_fdstats() -> None:
    import dataclasses

    stats = rcfd.FDStats(initialized=1, in_flight_stacks={3: "  open_it()\n"})
    assert dataclasses.asdict(stats)["in_flight"] == 1
    assert dataclasses.replace(stats, in_flight_stacks={}).in_flight == 0


def test_a_collection_inside_the_registrys_locked_section_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The collector runs at any allocation (3.11) or check point (3.12+), so it
    # can finalize a garbage FD tracked by a registry inside one of that
    # registry's own locked sections, here fd_stats()'s. The FD's release then
    # reports: with a plain lock it waited for good for the lock its own
    # thread held. It is logged instead, and counted by that section.
    registry = rcfd.LifetimeRegistry()
    real = rcfd.LifetimeRegistry._count_log

    def collecting(self: rcfd.LifetimeRegistry) -> None:
        gc.collect()  # where CPython may run it: inside the locked section
        real(self)

    class Holder:
        def __init__(self, fd: rcfd.FD) -> None:
            self.fd = fd
            self.cycle = self  # only the collector frees it

    Holder(rcfd.FD(os.eventfd(0), registry=registry))  # garbage at once
    monkeypatch.setattr(rcfd.LifetimeRegistry, "_count_log", collecting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _, outcome = run_in_thread(registry.fd_stats)
        assert outcome.done.wait(WAIT), "fd_stats() waited for good for its own lock"
    assert outcome.error is None, outcome.error
    stats = outcome.value
    assert isinstance(stats, rcfd.FDStats)
    assert (stats.initialized, stats.finalized, stats.in_flight) == (1, 1, 0)


def test_an_fd_reports_to_its_registry_without_waiting_for_the_registrys_lock() -> None:
    # An FD reports its init under the shared lock init takes, and its release
    # under its own lock; a reader of the registry (fd_stats) may hold the
    # registry's lock while the collector runs, in its section, a finalizer
    # that closes that same FD from another thread's point of view: a
    # reporter that waited for the registry's lock could wait for good (a
    # lock-order inversion). So a report never waits: with the lock held by
    # another thread, init and close return, and the next reader counts them.
    registry = rcfd.LifetimeRegistry()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with registry._lock:
            held.set()
            assert release.wait(WAIT)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(WAIT)
    try:
        _, outcome = run_in_thread(lambda: rcfd.FD(os.eventfd(0), registry=registry).close())
        assert outcome.done.wait(WAIT), "init or close waited for the registry's lock"
        assert outcome.error is None, outcome.error
    finally:
        release.set()
        holder.join(WAIT)
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed, stats.in_flight) == (1, 1, 0)
