"""Survivors of the mutmut run over rcfd/'s modules other than the FD and its
close (rcfd/_errors.py, _checks.py, _lifecycle.py, _registry.py, _tracking.py,
_fork.py, pytest_plugin.py), killed here.

Each test names the mutants it kills (mutmut's names; `mutmut show NAME` in
mutants/.work/mutmut/ prints the diff) and was seen failing on each of them,
applied by hand to a scratch copy of the tree, and passing on the real code.
The survivors no test can kill are in mutants/EQUIVALENT.md, with the reason.

Two kinds of code run where mutmut does not look: once per process (the
Thread.start hook, the fork hook's registration), and in a forked child (the
fork hook itself). The tests below run that code again in the test process on
objects of their own, so that mutmut selects them, and keep the process's
real hooks as they were; tests/reliability/test_fork.py checks the same
repairs in real children.

Every wait is bounded (WAIT); no test sleeps to hope for an ordering.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable

import pytest

import rcfd
from rcfd import _fork, _tracking
from rcfd._lifecycle import Event, Outcome, State, Transition, step
from tests.support import WAIT, in_thread

pytest_plugins = ["pytester"]


# -- _errors: each refusal names the call the user made ------------------------


def _refusal(call: Callable[[], object]) -> rcfd.FDError:
    with pytest.raises(rcfd.FDError) as caught:
        call()
    return caught.value


def test_every_refusal_names_the_call_that_made_it() -> None:
    # Kills _errors.xǁUninitializedFDErrorǁ__init____mutmut_5,
    # xǁMultipleInitErrorǁ__init____mutmut_12, xǁCloseInsideBorrowErrorǁ__init____mutmut_5,
    # xǁCloseInsideCloseFuncErrorǁ__init____mutmut_7 (`self.call = None`) and
    # xǁUninitializedFDErrorǁfor_call__mutmut_1 (dup's refusal named None): an
    # FDError's `call` is the public call that was refused (FDError's docstring).
    uninit = rcfd.FD()
    cases: list[tuple[Callable[[], object], type[rcfd.FDError], str]] = [
        (lambda: uninit.do(lambda rawfd: rawfd), rcfd.UninitializedFDError, "do"),
        (lambda: uninit.borrow().__enter__(), rcfd.UninitializedFDError, "borrow"),
        (uninit.close, rcfd.UninitializedFDError, "close"),
        (uninit.detach, rcfd.UninitializedFDError, "detach"),
        (uninit.dup, rcfd.UninitializedFDError, "dup"),
    ]
    fd = rcfd.FD(os.eventfd(0))
    spare = os.eventfd(0)  # refused by init, so still ours to close
    cases += [
        (lambda: fd.init(spare), rcfd.MultipleInitError, "init"),
        (
            lambda: fd.track_lifetime(rcfd.LifetimeRegistry()),
            rcfd.MultipleInitError,
            "track_lifetime",
        ),
        (lambda: fd.do(lambda _: fd.close()), rcfd.CloseInsideBorrowError, "close"),
        (lambda: fd.do(lambda _: fd.detach()), rcfd.CloseInsideBorrowError, "detach"),
    ]
    for call, kind, name in cases:
        error = _refusal(call)
        assert type(error) is kind and error.call == name, (error, name)
        assert f"{name}() refused in state" in str(error)
    os.close(spare)
    fd.close()
    closed: list[tuple[Callable[[], object], type[rcfd.FDError], str]] = [
        (lambda: fd.do(lambda rawfd: rawfd), rcfd.ClosedFDError, "do"),
        (fd.dup, rcfd.ClosedFDError, "dup"),
        (fd.close, rcfd.ClosedFDError, "close"),
    ]
    for call, kind, name in closed:
        error = _refusal(call)
        assert type(error) is kind and error.call == name, (error, name)

    inner: list[BaseException] = []

    def close_func(rawfd: int) -> None:
        os.close(rawfd)
        for again in (owner.close, owner.detach):
            try:
                again()
            except rcfd.CloseInsideCloseFuncError as exc:
                inner.append(exc)

    owner = rcfd.FD(os.eventfd(0), close_func)
    owner.close()
    assert [(type(e), getattr(e, "call", None)) for e in inner] == [
        (rcfd.CloseInsideCloseFuncError, "close"),
        (rcfd.CloseInsideCloseFuncError, "detach"),
    ]


# -- _checks: a negative timeout's message -------------------------------------


@pytest.mark.parametrize(
    ("timeout", "shown"),
    [
        (-1000, "-1000"),
        (-(10**20) + 1, "-99999999999999999999"),
        (-(10**20), "-10**20 or less"),
        (-(10**5000), "-10**20 or less"),  # str() of it would raise: too many digits
        (-0.5, "-0.5"),
        (-1e300, "-1e+300"),
        (float("nan"), "nan"),
    ],
    ids=["-1000", "-10**20+1", "-10**20", "-10**5000", "-0.5", "-1e300", "nan"],
)
def test_a_bad_timeout_is_shown_in_the_message_unless_too_long_to_print(
    timeout: float, shown: str
) -> None:
    # Kills _checks.x_check_timeout__mutmut_13 (every int shown: a 5000-digit
    # one fails its own message with "Exceeds the limit"), _15 (>=), _17
    # (-(10 * 20): -1000 called "-10**20 or less", which it is not), _18 and
    # _19 (-(11**20), -(10**21)), _20 and _21 (the words changed). A timeout
    # is shown as given while it has at most 20 digits; from -10**20 down the
    # message says so instead of printing it.
    fd = rcfd.FD(os.eventfd(0))
    for call in ("close", "aclose"):
        with pytest.raises(ValueError) as caught:
            if call == "close":
                fd.close(timeout)
            else:
                fd.aclose(timeout).send(None)  # the check comes before the first await
        assert str(caught.value) == f"{call}: timeout must be >= 0, got {shown}"
    assert (fd.state, fd.borrow_count) == (rcfd.State.OPEN, 0)
    fd.close()


# -- _lifecycle: step() as the README writes it --------------------------------


def test_step_takes_four_arguments_as_the_readme_writes_it() -> None:
    # Kills _lifecycle.x_step__mutmut_1 (in_close_func defaults to True): the
    # README's `step(state, borrows, caller, event)` is a call from outside
    # close_func; only CLOSE and DETACH read in_close_func.
    for event in (Event.CLOSE, Event.DETACH):
        assert step(State.OPEN, 0, 0, event) == Transition(State.CLOSING, 1, Outcome.BEGIN_CLOSE)
        assert step(State.OPEN, 2, 0, event) == Transition(State.CLOSING, 3, Outcome.BEGIN_CLOSE)
        assert step(State.CLOSING, 0, 0, event) == Transition(State.CLOSING, 0, Outcome.WAIT)
        assert step(State.CLOSED, 0, 0, event) == Transition(State.CLOSED, 0, Outcome.REFUSE_CLOSED)


# -- pytest_plugin: the ini option is a bool when read ---------------------------


def test_the_ini_option_reads_as_a_bool_set_or_not(pytester: pytest.Pytester) -> None:
    # Kills pytest_plugin.x_pytest_addoption__mutmut_4 (default=None): a
    # conftest or another plugin reading `config.getini("rcfd_fd_leaks")`
    # gets a bool, False when the option is not set, as for any bool option.
    for ini, expected in (("", "False"), ("rcfd_fd_leaks = true\n", "True")):
        pytester.makeini("[pytest]\n" + ini)
        pytester.makepyfile(
            "def test_reads(request):\n"
            "    value = request.config.getini('rcfd_fd_leaks')\n"
            f"    assert value is {expected}, value\n"
        )
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)


# -- _tracking: the Thread.start hook, installed again here ----------------------


@pytest.fixture
def fresh_thread_hook(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Thread.start as it was before rcfd wrapped it, and rcfd's hook not yet
    installed, for this test only (monkeypatch puts both back). Returns the
    unwrapped start."""
    unwrapped = inspect.unwrap(threading.Thread.start)
    monkeypatch.setattr(threading.Thread, "start", unwrapped)
    monkeypatch.setattr(_tracking, "_hook_installed", False)
    start: Callable[..., None] = unwrapped
    return start


def _open_in_a_thread(made: list[rcfd.FD]) -> threading.Thread:
    thread = threading.Thread(target=lambda: made.append(rcfd.FD(os.eventfd(0))), daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    return thread


def test_the_first_track_lifetimes_hooks_thread_start_once(
    fresh_thread_hook: Callable[..., None],
) -> None:
    # Kills _tracking.x__install_thread_hook__mutmut_1 to _10 (the hook lost,
    # set under another name, or broken) and _11, _12 (installed again at every
    # track_lifetimes(): Thread.start wrapped once more each time). The hook
    # is what makes a thread started in the block report to its registry; it
    # is installed once, at the first track_lifetimes() (rcfd/_tracking.py).
    made: list[rcfd.FD] = []
    with rcfd.track_lifetimes() as registry:
        hooked = threading.Thread.start
        assert hooked is not fresh_thread_hook
        _open_in_a_thread(made)
    with rcfd.track_lifetimes() as second:
        assert threading.Thread.start is hooked, "Thread.start was wrapped again"
        _open_in_a_thread(made)
    _open_in_a_thread(made)  # outside any block: not tracked
    assert (registry.fd_stats().initialized, second.fd_stats().initialized) == (1, 1)
    for fd in made:
        fd.close()
    assert registry.fd_stats().report() == second.fd_stats().report() == ""


def test_an_interrupt_as_a_tracked_thread_starts_is_raised_as_itself(
    fresh_thread_hook: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kills _tracking.x__inherit__mutmut_10 (the undo's pop loses its default).
    # A KeyboardInterrupt can land in Thread.start after the new thread began
    # (while start() waits for it to signal that it started): the thread has
    # already taken the tracking `run` off itself, so the undo finds nothing
    # to remove. The caller must see its KeyboardInterrupt, not a KeyError,
    # and the thread object be left as it was. The interrupt is raised here by
    # the Thread.start that rcfd wraps, as a signal handler would raise it.
    began = threading.Event()

    def interrupted_start(self: threading.Thread) -> None:
        fresh_thread_hook(self)
        assert began.wait(WAIT), "the thread never ran"
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    made: list[rcfd.FD] = []

    def run() -> None:
        made.append(rcfd.FD(os.eventfd(0)))
        began.set()

    thread = threading.Thread(target=run, daemon=True)
    with rcfd.track_lifetimes() as registry, pytest.raises(KeyboardInterrupt):
        thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert "run" not in vars(thread)
    assert registry.fd_stats().initialized == 1  # it ran tracked all the same
    made[0].close()


# -- _fork: registration, and the hook on objects of the test's own kinds -------


class _Repaired:
    """An object of a kind the fork hook repairs; logs what the hook does to it."""

    def __init__(self, log: list[tuple[str, int, int]], unfinished: bool) -> None:
        self.log = log
        self.unfinished = unfinished

    def _after_fork(self, me: int) -> bool:
        self.log.append(("repair", id(self), me))
        return self.unfinished

    def _finish_after_fork(self, me: int) -> None:
        self.log.append(("finish", id(self), me))


class _OtherKind(_Repaired):
    pass


class _Registry(rcfd.LifetimeRegistry):
    """A LifetimeRegistry of the test's own, so that only it is repaired."""


def test_the_fork_hook_resets_then_repairs_every_object_then_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _fork.x__after_fork_in_child__mutmut_1 to _4, _6 to _9 and _11 to
    # _14, and _registry.xǁLifetimeRegistryǁ_after_fork__mutmut_1 and _2, none
    # of which mutmut can reach in a forked child. The hook (specs/rcfd.md,
    # "Fork") first calls each `before`, then repairs every object of the
    # registered kinds for the forking thread, and only once all are repaired
    # finishes those that asked for it (close_func may use other FDs, whose
    # locks must be fresh first). A registry whose lock a vanished thread held
    # gets a fresh one. Run here on the test's own kinds only.
    log: list[tuple[str, int, int]] = []
    resets: list[int] = []
    monkeypatch.setattr(_fork, "_kinds", (_Repaired, _Registry))
    monkeypatch.setattr(_fork, "_before", [lambda: resets.append(len(log))])
    objects = [_Repaired(log, False), _OtherKind(log, True), _Repaired(log, True)]
    registry = _Registry()
    holder = threading.Thread(target=registry._lock.acquire, daemon=True)  # then it is gone
    holder.start()
    holder.join(WAIT)
    assert not registry._lock.acquire(blocking=False)  # held (by a thread that is gone)

    _fork._after_fork_in_child()

    me = threading.get_ident()
    assert resets == [0], "before() runs once, first"
    repairs = [entry for entry in log if entry[0] == "repair"]
    assert sorted(repairs) == sorted(("repair", id(o), me) for o in objects)
    assert log[len(repairs) :] and all(entry[0] == "finish" for entry in log[len(repairs) :])
    assert sorted(log[len(repairs) :]) == sorted(
        ("finish", id(o), me) for o in objects if o.unfinished
    )
    t, stats = in_thread(registry.fd_stats)
    assert stats.done.wait(WAIT), "the registry kept the lock its vanished holder took"
    t.join(WAIT)
    assert stats.error is None, stats.error
    fd = rcfd.FD(os.eventfd(0), registry=registry)
    fd.close()
    assert registry.fd_stats().closed == 1


def test_install_registers_the_fork_hook_once_and_each_kind_and_reset_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Kills _fork.x_install__mutmut_1 to _15, which mutmut cannot reach at
    # import (install runs once, when rcfd._fd is imported, before a mutant is
    # active). install() registers the hook with os.register_at_fork at the
    # first call only (a second registration would repair every object twice
    # per fork), adds each kind once and each `before` once, keeping the ones
    # installed before. Run here with a recording register_at_fork and fresh
    # module state; the hook it registered is then run on the test's objects.
    registered: list[dict[str, object]] = []

    def register_at_fork(**hooks: object) -> None:
        registered.append(hooks)

    monkeypatch.setattr(os, "register_at_fork", register_at_fork)
    monkeypatch.setattr(_fork, "_kinds", ())
    monkeypatch.setattr(_fork, "_before", [])
    resets: list[str] = []

    def first() -> None:
        resets.append("first")

    def second() -> None:
        resets.append("second")

    _fork.install(_Repaired, before=first)
    assert len(registered) == 1, "the first install registers the hook"
    _fork.install(_Repaired, _Registry, before=first)
    _fork.install(_Registry, before=second)
    assert registered == [{"after_in_child": _fork._after_fork_in_child}]

    log: list[tuple[str, int, int]] = []
    objects = [_Repaired(log, False), _OtherKind(log, True)]
    registry = _Registry()
    hook = registered[0]["after_in_child"]
    assert callable(hook)
    hook()
    assert resets == ["first", "second"]
    me = threading.get_ident()
    assert sorted(log) == sorted(
        [("repair", id(o), me) for o in objects] + [("finish", id(objects[1]), me)]
    )
    assert registry.fd_stats().initialized == 0  # repaired, and usable
