"""The public surface: constructor forms, state, repr, the with-statement, exports."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

import rcfd
from tests.support import HeldBorrow, in_thread, open_fd, state_of, wait_until


def test_two_step_and_one_step_construction() -> None:
    registry = rcfd.LifetimeRegistry()
    two_step = rcfd.FD()
    assert two_step.state is rcfd.State.UNINIT
    two_step.track_lifetime(registry)
    two_step.init(os.eventfd(0), os.close)
    one_step = rcfd.FD(os.eventfd(0), registry=registry)  # close_func defaults to os.close
    assert two_step.state is one_step.state is rcfd.State.OPEN
    assert registry.fd_stats().initialized == 2
    two_step.close()
    one_step.close()
    assert registry.fd_stats().report() == ""


def test_do_is_generic_in_what_fn_returns() -> None:
    fd, _ = open_fd()
    size: int = fd.do(lambda rawfd: os.write(rawfd, (1).to_bytes(8, "little")))
    text: str = fd.do(lambda rawfd: f"fd {rawfd}")
    assert size == 8 and text.startswith("fd ")
    fd.close()


def test_repr_shows_state_number_and_borrows() -> None:
    fd = rcfd.FD()
    assert repr(fd) == "<rcfd.FD UNINIT>"
    raw = os.eventfd(0)
    fd.init(raw, os.close)
    assert repr(fd) == f"<rcfd.FD OPEN fd={raw} borrows=0>"
    with fd.borrow(), fd.borrow():
        assert repr(fd) == f"<rcfd.FD OPEN fd={raw} borrows=2>"
    with HeldBorrow(fd):
        with pytest.raises(TimeoutError):
            fd.close(timeout=0)
        assert repr(fd) == f"<rcfd.FD CLOSING fd={raw} borrows=1>"
    assert repr(fd) == f"<rcfd.FD CLOSED fd={raw} borrows=0>"


def test_with_statement_closes_on_exit_even_on_error() -> None:
    with rcfd.FD(os.eventfd(0)) as fd:
        assert fd.state is rcfd.State.OPEN
    assert state_of(fd) is rcfd.State.CLOSED
    with pytest.raises(ZeroDivisionError), rcfd.FD(os.eventfd(0)) as other:
        other.do(lambda rawfd: 1 / 0)
    assert other.state is rcfd.State.CLOSED


def test_with_statement_tolerates_a_close_already_done() -> None:
    with rcfd.FD(os.eventfd(0)) as fd:
        fd.close()
    assert fd.state is rcfd.State.CLOSED


def test_with_statement_exit_waits_for_another_threads_close() -> None:
    fd, closer = open_fd()
    with fd, HeldBorrow(fd):
        in_thread(fd.close)
        wait_until(lambda: fd.state is rcfd.State.CLOSING, "the other close began")
    assert fd.state is rcfd.State.CLOSED and len(closer.calls) == 1


def test_errors_have_standard_library_bases() -> None:
    assert issubclass(rcfd.ClosedFDError, OSError)
    assert issubclass(rcfd.UninitializedFDError, OSError)
    assert issubclass(rcfd.MultipleInitError, RuntimeError)
    assert issubclass(rcfd.CloseInsideBorrowError, RuntimeError)
    for error in (
        rcfd.ClosedFDError,
        rcfd.UninitializedFDError,
        rcfd.MultipleInitError,
        rcfd.CloseInsideBorrowError,
    ):
        assert issubclass(error, rcfd.FDError)
    assert issubclass(rcfd.SyscallError, OSError)
    fd = rcfd.FD()
    with pytest.raises(OSError) as info:  # an existing `except OSError` still catches it
        fd.do(lambda rawfd: rawfd)
    assert info.value.errno == errno.EBADF


def test_detach_hands_back_the_number_and_counts_it_released() -> None:
    registry = rcfd.LifetimeRegistry()
    calls: list[int] = []
    fd = rcfd.FD(os.eventfd(0), calls.append, registry=registry)
    raw = fd.detach()
    assert fd.state is rcfd.State.CLOSED and calls == []
    os.fstat(raw)  # still open: ours now
    os.close(raw)
    stats = registry.fd_stats()
    assert (stats.detached, stats.report()) == (1, "")


def test_dup_is_an_independent_open_fd() -> None:
    fd, _ = open_fd()
    copy = fd.dup()
    fd.close()
    assert copy.state is rcfd.State.OPEN
    copy.do(lambda rawfd: os.eventfd_write(rawfd, 1))
    copy.close()


@pytest.mark.parametrize(
    "gil, switch, locked",
    [(True, "", False), (False, "", True), (True, "1", True), (False, "0", True)],
)
def test_the_import_picks_the_locked_borrow_without_the_gil(
    gil: bool, switch: str, locked: bool
) -> None:
    """A free-threaded build running without the GIL gets the borrow that takes
    the FD's lock (rcfd/_nogil.py), and so does RCFD_NOGIL=1 on any build; only
    a GIL build without the switch gets the lock-free one. No free-threaded
    interpreter is installed here, so sys._is_gil_enabled is simulated."""
    code = (
        f"import sys; sys._is_gil_enabled = lambda: {gil}; import os, rcfd, rcfd._nogil as n; "
        "fd = rcfd.FD(os.eventfd(0)); fd.do(lambda r: r); "
        "print(n.ENABLED, rcfd.FD.do is n.do, rcfd.Borrow.__enter__ is n.borrow_enter, "
        "fd._lock is not None); fd.close()"
    )
    env = {**os.environ, "RCFD_NOGIL": switch}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    # The path, the methods bound, and an open FD's lock (made at init only
    # on the locked path) all agree.
    assert result.stdout.split() == [str(locked)] * 4
