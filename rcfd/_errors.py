"""rcfd's exceptions and `wrap_syscall_error`.

Each FD error also derives from the standard-library exception that code
without rcfd would have met in the same situation, so existing handlers keep
working: a raw `os` call on a closed descriptor raises OSError(EBADF), so
ClosedFDError is one; calling a one-shot setup twice is a RuntimeError (as
`Thread.start` twice is). specs/rcfd.md ("Errors") has the Go <-> Python map.
"""

from __future__ import annotations

import errno
import os

from rcfd._lifecycle import Outcome, State


class FDError(Exception):
    """Base of every error an FD raises about its own lifecycle. `call` names
    the call that was refused ("do", "borrow", "close", ...)."""

    call: str


class UninitializedFDError(FDError, OSError):
    """An FD was used before init(). Go: ErrUninitializedFD.

    An OSError(EBADF) because a raw call on an unset descriptor fails that way.
    """

    def __init__(self, call: str) -> None:
        super().__init__(
            errno.EBADF,
            f"rcfd: use of uninitialized file descriptor: {call}() refused in state UNINIT",
        )
        self.call = call

    def for_call(self, call: str) -> UninitializedFDError:
        """The same refusal, named after the public call that made it."""
        return UninitializedFDError(call)


class ClosedFDError(FDError, OSError):
    """An FD was used after close() began. Go: ErrClosedFD.

    An OSError(EBADF), the error a raw `os` call on a closed descriptor raises.
    """

    def __init__(self, call: str, state: State) -> None:
        super().__init__(
            errno.EBADF,
            f"rcfd: use of closed file descriptor: {call}() refused in state {state.name}",
        )
        self.call, self.state = call, state

    def for_call(self, call: str) -> ClosedFDError:
        """The same refusal, named after the public call that made it."""
        return ClosedFDError(call, self.state)


class MultipleInitError(FDError, RuntimeError):
    """init() (or track_lifetime()) on an FD that was already initialized.
    Go: ErrMultipleInit."""

    def __init__(self, call: str, state: State) -> None:
        super().__init__(
            f"rcfd: multiple calls to init: {call}() refused in state {state.name}"
            + (
                "; track_lifetime() must come before init(), or pass registry= to FD()"
                if call == "track_lifetime"
                else ""
            )
        )
        self.call = call


class CloseInsideBorrowError(FDError, RuntimeError):
    """close() or detach() called by a thread that holds a borrow of the same FD.

    Waiting would never end: the close waits for that very borrow. Go's rc
    deadlocks here; rcfd refuses at once and changes nothing.
    """

    def __init__(self, call: str, state: State) -> None:
        super().__init__(
            f"rcfd: {call}() refused in state {state.name}: "
            "the calling thread holds a borrow of this FD and close would wait for it forever"
        )
        self.call = call


class CloseInsideCloseFuncError(FDError, RuntimeError):
    """close() or detach() called from inside the same FD's close_func (for
    example a close_func that closes the object that owns the FD), or from a
    finalizer or signal handler that interrupted this thread inside one of
    the FD's own short locked steps of a close.

    Waiting would never end: the close waits for close_func (or that step) to
    return, which waits for this call. The close in progress goes on and
    finishes; this call changes nothing.
    """

    def __init__(self, call: str, state: State) -> None:
        super().__init__(
            f"rcfd: {call}() refused in state {state.name}: "
            "called from inside this FD's close (its close_func, or a finalizer or "
            "signal handler that interrupted it), which it would wait for forever"
        )
        self.call = call


def refusal(outcome: Outcome, call: str, state: State) -> FDError:
    """The error a refused `call` raises, for step()'s refusal `outcome`."""
    if outcome is Outcome.REFUSE_UNINIT:
        return UninitializedFDError(call)
    if outcome is Outcome.REFUSE_CLOSED:
        return ClosedFDError(call, state)
    if outcome is Outcome.REFUSE_MULTIPLE_INIT:
        return MultipleInitError(call, state)
    if outcome is Outcome.REFUSE_CLOSE_IN_BORROW:
        return CloseInsideBorrowError(call, state)
    return CloseInsideCloseFuncError(call, state)


def borrow_entered_twice() -> RuntimeError:
    """A Borrow entered while it is entered (nested, or shared by threads): it
    records one thread, and a second entry would make the first one's exit
    release the wrong borrow."""
    return RuntimeError(
        "rcfd: this Borrow is already entered; a Borrow is one borrow: call "
        "fd.borrow() for each with-block (and in each thread)"
    )


class SyscallError(OSError):
    """An error from a system call made under a borrow, named after that call.

    Go: os.SyscallError. Keeps the original errno (where there is one) so
    `except FileNotFoundError`-style matching on `.errno` still works; the
    original exception is chained as __cause__.
    """

    syscall: str

    def __init__(self, syscall: str, err: BaseException) -> None:
        code = err.errno if isinstance(err, OSError) else None
        if code is not None:
            super().__init__(code, f"{syscall}: {os.strerror(code)}")
        else:
            super().__init__(f"{syscall}: {err}")
        self.syscall = syscall


def wrap_syscall_error(syscall: str, err: BaseException | None) -> BaseException | None:
    """Name the system call behind `err`, as Go's rc.WrapSyscallError does.

    None stays None; UninitializedFDError and ClosedFDError pass through
    unchanged (they are rcfd's verdict, not the system call's); anything else
    becomes a SyscallError whose __cause__ is `err`.
    """
    if not isinstance(syscall, str):
        raise TypeError(f"wrap_syscall_error: syscall must be a str, not {type(syscall).__name__}")
    if err is None or isinstance(err, (UninitializedFDError, ClosedFDError)):
        return err
    if not isinstance(err, BaseException):
        raise TypeError(
            f"wrap_syscall_error: err must be an exception or None, not {type(err).__name__}"
        )
    wrapped = SyscallError(syscall, err)
    wrapped.__cause__ = err
    return wrapped
