"""Guarantee 10: a call rejected for a bad argument says what was wrong and
changes nothing, in every state (arguments are checked before the state)."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import rcfd
from rcfd._registry import FDStats
from tests.support import HeldBorrow

Snapshot = tuple[rcfd.State, int, FDStats]


@contextmanager
def fd_in(state: rcfd.State) -> Iterator[tuple[rcfd.FD, rcfd.LifetimeRegistry]]:
    registry = rcfd.LifetimeRegistry()
    fd = rcfd.FD(registry=registry)
    if state is rcfd.State.UNINIT:
        yield fd, registry
        return
    fd.init(os.eventfd(0), os.close)
    if state is rcfd.State.OPEN:
        yield fd, registry
        fd.close()
    elif state is rcfd.State.CLOSING:
        with HeldBorrow(fd):
            with pytest.raises(TimeoutError):
                fd.close(timeout=0)
            yield fd, registry
    else:
        fd.close()
        yield fd, registry


# The number the bad calls pass where an int is right: no descriptor has it, so
# an FD that wrongly accepted one (a mutant) closes nothing of this process.
NOT_OPEN = 2**30


def untyped(fd: rcfd.FD) -> Any:
    """The FD without its types, so a test can pass what the annotations forbid."""
    return fd


BAD_CALLS: list[tuple[str, Callable[[Any], object], type[Exception], str]] = [
    ("init(str)", lambda fd: fd.init("3", os.close), TypeError, "rawfd must be an int, not str"),
    ("init(bool)", lambda fd: fd.init(True, os.close), TypeError, "rawfd must be an int, not bool"),
    ("init(float)", lambda fd: fd.init(3.0, os.close), TypeError, "must be an int, not float"),
    ("init(-1)", lambda fd: fd.init(-1, os.close), ValueError, "rawfd must be >= 0, got -1"),
    (
        "init(close_func=5)",
        lambda fd: fd.init(NOT_OPEN, 5),
        TypeError,
        "close_func must be callable",
    ),
    (
        "init(on_closing=5)",
        lambda fd: fd.init(NOT_OPEN, os.close, on_closing=5),
        TypeError,
        "on_closing must be callable, not int",
    ),
    ("do(5)", lambda fd: fd.do(5), TypeError, "do: fn must be callable, not int"),
    ("close(-1)", lambda fd: fd.close(timeout=-1), ValueError, "timeout must be >= 0, got -1"),
    ("close(nan)", lambda fd: fd.close(timeout=math.nan), ValueError, "got nan"),
    ("close('1')", lambda fd: fd.close(timeout="1"), TypeError, "timeout must be a number"),
    ("close(True)", lambda fd: fd.close(timeout=True), TypeError, "not bool"),
    (
        "aclose(-1)",
        lambda fd: asyncio.run(fd.aclose(timeout=-1)),
        ValueError,
        "aclose: timeout must be >= 0",
    ),
    (
        "track_lifetime(str)",
        lambda fd: fd.track_lifetime("registry"),
        TypeError,
        "registry must be a LifetimeRegistry, not str",
    ),
]


@pytest.mark.parametrize("state", list(rcfd.State))
@pytest.mark.parametrize(
    ("name", "call", "error", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_argument_is_refused_and_changes_nothing(
    state: rcfd.State,
    name: str,
    call: Callable[[Any], object],
    error: type[Exception],
    message: str,
) -> None:
    with fd_in(state) as (fd, registry):
        before = fd.state, fd.borrow_count, registry.fd_stats(), repr(fd)
        with pytest.raises(error, match=message.replace("(", r"\(")):
            call(untyped(fd))
        assert (fd.state, fd.borrow_count, registry.fd_stats(), repr(fd)) == before


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("3",), {}, TypeError, "rawfd must be an int"),
        ((True,), {}, TypeError, "rawfd must be an int, not bool"),
        ((-5,), {}, ValueError, "rawfd must be >= 0, got -5"),
        ((NOT_OPEN, "close"), {}, TypeError, "close_func must be callable, not str"),
        ((NOT_OPEN,), {"on_closing": 5}, TypeError, "on_closing must be callable, not int"),
    ],
)
def test_constructor_refuses_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    constructor: Any = rcfd.FD
    with pytest.raises(error, match=f"^FD: {message}"):  # names the call (check_init's `call`)
        constructor(*args, **kwargs)


def test_constructor_refuses_on_closing_without_rawfd() -> None:
    with pytest.raises(TypeError, match="on_closing needs a rawfd"):
        rcfd.FD(on_closing=print)


def test_wrap_syscall_error_refuses_bad_arguments() -> None:
    wrap: Any = rcfd.wrap_syscall_error
    with pytest.raises(TypeError, match="syscall must be a str, not int"):
        wrap(5, None)
    with pytest.raises(TypeError, match="err must be an exception or None, not str"):
        wrap("read", "EBADF")


S = rcfd.State
REFUSED = [
    ("init", S.OPEN, rcfd.MultipleInitError),
    ("init", S.CLOSING, rcfd.ClosedFDError),
    ("init", S.CLOSED, rcfd.ClosedFDError),
    ("do", S.UNINIT, rcfd.UninitializedFDError),
    ("do", S.CLOSING, rcfd.ClosedFDError),
    ("do", S.CLOSED, rcfd.ClosedFDError),
    ("close", S.UNINIT, rcfd.UninitializedFDError),
    ("close", S.CLOSED, rcfd.ClosedFDError),
    ("detach", S.UNINIT, rcfd.UninitializedFDError),
    ("detach", S.CLOSED, rcfd.ClosedFDError),
    ("track_lifetime", S.OPEN, rcfd.MultipleInitError),
    ("track_lifetime", S.CLOSING, rcfd.MultipleInitError),
    ("track_lifetime", S.CLOSED, rcfd.MultipleInitError),
]


@pytest.mark.parametrize(("call", "state", "error"), REFUSED)
def test_wrong_state_is_refused_says_so_and_changes_nothing(
    call: str, state: rcfd.State, error: type[rcfd.FDError]
) -> None:
    with fd_in(state) as (fd, registry):
        before = fd.state, fd.borrow_count, registry.fd_stats()
        spare = os.eventfd(0)
        try:
            # The message names the call the user made, and the state.
            with pytest.raises(error, match=rf"{call}\(\) refused in state {state.name}"):
                if call == "init":
                    fd.init(spare, os.close)
                elif call == "do":
                    fd.do(lambda rawfd: rawfd)
                elif call == "close":
                    fd.close()
                elif call == "detach":
                    fd.detach()
                else:
                    fd.track_lifetime(rcfd.LifetimeRegistry())
        finally:
            os.close(spare)
        assert (fd.state, fd.borrow_count, registry.fd_stats()) == before
