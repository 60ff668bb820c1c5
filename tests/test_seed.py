"""The Go package's own tests (../shared/seed/README.md), in Python form."""

from __future__ import annotations

import errno
import os

import pytest

import rcfd
from tests.support import CountingClose, open_fd


def test_init_then_do_sees_the_raw_fd() -> None:
    raw = os.eventfd(0)
    fd = rcfd.FD()
    fd.init(raw, os.close)
    assert fd.do(lambda seen: seen) == raw
    fd.close()


def test_second_init_fails_with_multiple_init() -> None:
    fd, _ = open_fd()
    other = os.eventfd(0)
    with pytest.raises(rcfd.MultipleInitError, match="refused in state OPEN"):
        fd.init(other, os.close)
    os.close(other)
    fd.close()


def test_init_after_close_fails_with_closed() -> None:
    fd, _ = open_fd()
    fd.close()
    other = os.eventfd(0)
    with pytest.raises(rcfd.ClosedFDError, match="init\\(\\) refused in state CLOSED"):
        fd.init(other, os.close)
    os.close(other)


@pytest.mark.parametrize("call", ["do", "close"])
def test_do_and_close_on_uninitialized_fail(call: str) -> None:
    fd = rcfd.FD()
    with pytest.raises(rcfd.UninitializedFDError, match="state UNINIT") as info:
        if call == "do":
            fd.do(lambda rawfd: rawfd)
        else:
            fd.close()
    assert info.value.errno == errno.EBADF
    assert fd.state is rcfd.State.UNINIT


def test_do_after_close_fails_with_closed() -> None:
    fd, _ = open_fd()
    fd.close()
    called: list[int] = []
    with pytest.raises(rcfd.ClosedFDError) as info:
        fd.do(called.append)
    assert called == []
    assert info.value.errno == errno.EBADF
    assert isinstance(info.value, OSError)


def test_do_returns_fns_own_error() -> None:
    fd, _ = open_fd()

    class Boom(Exception):
        pass

    boom = Boom("mine")

    def fn(rawfd: int) -> None:
        raise boom

    with pytest.raises(Boom) as info:
        fd.do(fn)
    assert info.value is boom
    assert fd.borrow_count == 0
    fd.close()


def test_second_close_fails_and_does_not_call_close_func_again() -> None:
    fd, closer = open_fd()
    fd.close()
    with pytest.raises(rcfd.ClosedFDError, match="close\\(\\) refused in state CLOSED"):
        fd.close()
    assert len(closer.calls) == 1


def test_wrap_syscall_error() -> None:
    assert rcfd.wrap_syscall_error("read", None) is None
    uninit = rcfd.UninitializedFDError("do")
    closed = rcfd.ClosedFDError("do", rcfd.State.CLOSED)
    assert rcfd.wrap_syscall_error("read", uninit) is uninit
    assert rcfd.wrap_syscall_error("read", closed) is closed

    original = OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    wrapped = rcfd.wrap_syscall_error("bpf", original)
    assert isinstance(wrapped, rcfd.SyscallError)
    assert isinstance(wrapped, OSError)
    assert wrapped.syscall == "bpf"
    assert wrapped.errno == errno.EAGAIN
    assert wrapped.__cause__ is original
    assert str(wrapped).startswith("[Errno 11] bpf:")

    plain = ValueError("no errno here")
    wrapped_plain = rcfd.wrap_syscall_error("ioctl", plain)
    assert isinstance(wrapped_plain, rcfd.SyscallError)
    assert wrapped_plain.errno is None
    assert wrapped_plain.__cause__ is plain
    assert "ioctl: no errno here" in str(wrapped_plain)


def test_registry_counts_inits_closes_and_failed_closes() -> None:
    registry = rcfd.LifetimeRegistry()
    ok, _ = open_fd(registry=registry)
    ok.close()
    failing = rcfd.FD(registry=registry)
    failing.init(os.eventfd(0), CountingClose(error=OSError(errno.EIO, "disk on fire")))
    with pytest.raises(OSError, match="disk on fire"):
        failing.close()
    assert failing.state is rcfd.State.CLOSED
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed, stats.close_failed) == (2, 1, 1)
    assert stats.in_flight_stacks == {}
    assert stats.report() == ""


def leaky_opener(registry: rcfd.LifetimeRegistry) -> rcfd.FD:
    return rcfd.FD(os.eventfd(0), registry=registry)


def test_leak_report_names_fd_numbers_and_opening_functions() -> None:
    registry = rcfd.LifetimeRegistry()
    leaked = leaky_opener(registry)
    closed, _ = open_fd(registry=registry)
    closed.close()
    raw = leaked.do(lambda rawfd: rawfd)
    stats = registry.fd_stats()
    assert (stats.initialized, stats.closed) == (2, 1)
    assert list(stats.in_flight_stacks) == [raw]
    report = stats.report()
    assert f"fd {raw} is still open" in report
    assert "leaky_opener" in report
    assert "test_leak_report_names_fd_numbers_and_opening_functions" in report
    assert "rcfd/_fd.py" not in report  # the stack starts at the caller
    leaked.close()
    assert registry.fd_stats().report() == ""


@pytest.mark.parametrize(
    "err",
    [
        rcfd.MultipleInitError("init", rcfd.State.OPEN),
        rcfd.CloseInsideBorrowError("close", rcfd.State.OPEN),
        rcfd.CloseInsideCloseFuncError("close", rcfd.State.CLOSING),
        KeyboardInterrupt(),
        ValueError("not a syscall's"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_wrap_syscall_error_wraps_everything_but_the_two_verdicts(err: BaseException) -> None:
    """Only UninitializedFDError and ClosedFDError pass through (rcfd's verdict
    on the number); every other error, rcfd's own included, is named after the
    system call and chained (the rule's "everything else" side)."""
    wrapped = rcfd.wrap_syscall_error("ioctl", err)
    assert isinstance(wrapped, rcfd.SyscallError) and wrapped is not err
    assert wrapped.syscall == "ioctl" and wrapped.__cause__ is err
    assert str(wrapped).startswith("ioctl: ")
