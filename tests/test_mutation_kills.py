"""The catalog's scenarios (mutants/) replayed against the real rcfd: no guarantee breaks.

Each scenario is the shortest sequence of steps that shows one catalog bug
(`make explain MUTANT=<name>`); replayed here against the unmutated FD, with
real threads and bounded waits, it must break nothing. Against its mutant it
breaks the guarantee the mutant's entry names, which is how `make mutants`
kills the bugs that no other check reaches (a preemption right after a
locked section, a close inside a borrow, a refused call that leaks a count).
"""

from __future__ import annotations

import errno

import pytest

import rcfd
from mutants import CATALOG
from mutants._harness import replay
from mutants._mutant import Mutant


@pytest.mark.parametrize("mutant", CATALOG, ids=[m.name for m in CATALOG])
def test_scenario_breaks_nothing_on_the_real_fd(mutant: Mutant) -> None:
    result = replay(mutant.scenario)
    assert not result.violations, "\n".join(str(v) for v in result.violations)


# -- survivors of the automatic mutation run (make mutmut), killed here ------
#
# Messages are part of the contract (specs/rcfd.md, Errors: "Messages name the
# call, the state that refused it, and why"); mutmut rewrites them freely, and
# a test that only looks for a substring lets "XX...XX" through. So: equality.


def test_error_messages_name_the_call_the_state_and_why() -> None:
    from rcfd._lifecycle import Event, State

    cases: list[tuple[BaseException, str]] = [
        (
            rcfd.UninitializedFDError(Event.BORROW),
            "[Errno 9] rcfd: use of uninitialized file descriptor: "
            "borrow() refused in state UNINIT",
        ),
        (
            rcfd.ClosedFDError(Event.BORROW, State.CLOSING),
            "[Errno 9] rcfd: use of closed file descriptor: borrow() refused in state CLOSING",
        ),
        (
            rcfd.MultipleInitError(Event.TRACK, State.OPEN),
            "rcfd: multiple calls to init: track() refused in state OPEN; "
            "track_lifetime() must come before init(), or pass registry= to FD()",
        ),
        (
            rcfd.MultipleInitError(Event.INIT, State.OPEN),
            "rcfd: multiple calls to init: init() refused in state OPEN",
        ),
        (
            rcfd.CloseInsideBorrowError(Event.CLOSE, State.OPEN),
            "rcfd: close() refused in state OPEN: the calling thread holds a borrow "
            "of this FD and close would wait for it forever",
        ),
    ]
    for error, message in cases:
        assert str(error) == message
    for error in (
        rcfd.UninitializedFDError(Event.BORROW),
        rcfd.ClosedFDError(Event.DETACH, State.CLOSED),
    ):
        assert isinstance(error, OSError) and error.errno == errno.EBADF


def test_wrap_syscall_error_keeps_errno_and_names_the_call() -> None:
    wrapped = rcfd.wrap_syscall_error("read", OSError(errno.EIO, "x"))
    assert isinstance(wrapped, rcfd.SyscallError)
    assert (str(wrapped), wrapped.errno, wrapped.syscall) == (
        "[Errno 5] read: Input/output error",
        errno.EIO,
        "read",
    )
    cause = ValueError("bad")
    wrapped = rcfd.wrap_syscall_error("read", cause)
    assert isinstance(wrapped, rcfd.SyscallError)
    assert (str(wrapped), wrapped.errno, wrapped.__cause__) == ("read: bad", None, cause)
