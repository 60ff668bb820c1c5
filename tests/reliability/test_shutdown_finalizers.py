"""FDs left open when the interpreter exits: pipes, eventfds, memfds, sockets.

A child interpreter (run with -X dev and -W default::ResourceWarning) opens
FDs and exits without closing them: held by module globals, by a reference
cycle only the final collection frees, by a registry-tracked list in another
module, and by modules torn down after rcfd's own (os, builtins). Every
descriptor must be closed by its finalizer (close_func proves it: it closes,
then checks the number is gone), each with a ResourceWarning, and the
interpreter must exit 0 without hanging or printing "Exception ignored".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, os, sys, types
    sys.path.insert(0, {root!r})
    import rcfd
    from tests.reliability import kinds

    # close_func lives in its own namespace, not __main__'s: the FDs held by os
    # and builtins (below) keep it alive to the very end, and a function keeps
    # its globals dict alive, and CPython never finalizes what a dict alive at
    # exit still holds (its documented limit for __del__). Bound as defaults:
    # it runs while the interpreter is being torn down.
    ns = {{"os": os}}
    exec(
        "def close_func(n, _close=os.close, _fstat=os.fstat, _write=os.write):\\n"
        "    _close(n)\\n"
        "    try:\\n"
        "        _fstat(n)\\n"
        "        _write(2, b'STILL OPEN %d\\\\n' % n)\\n"
        "    except OSError:\\n"
        "        _write(2, b'CLOSED %d\\\\n' % n)\\n",
        ns,
    )
    close_func = ns["close_func"]

    def fd(kind):
        return rcfd.FD(kinds.make(kind), close_func)

    # 1. module globals
    GLOBALS = [fd(k) for k in kinds.KINDS for _ in range(4)]
    single = fd("eventfd")

    # 2. a reference cycle: freed only by the collector
    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other, a.fd, b.fd = b, a, fd("pipe"), fd("socket")
    del a, b
    gc.disable()  # leave the cycle to the interpreter's final collection

    # 3. tracked by a registry, in another module's namespace
    reg = rcfd.LifetimeRegistry()
    mod = types.ModuleType("holder")
    mod.fds = [rcfd.FD(kinds.make("memfd"), close_func, registry=reg) for _ in range(3)]
    sys.modules["holder"] = mod

    # 4. held by modules torn down after rcfd's own: os (imported before rcfd) and builtins
    os.rcfd_late = fd("eventfd")
    import builtins
    builtins.rcfd_later = fd("memfd")

    # 5. an FD whose close() timed out under a borrow that later returned: closed normally
    import threading
    release = threading.Event()
    busy = fd("pipe")
    inside = threading.Event()
    t = threading.Thread(target=busy.do, args=(lambda n: (inside.set(), release.wait(5)),))
    t.start(); inside.wait(5)
    try:
        busy.close(timeout=0)
    except TimeoutError:
        pass
    release.set(); t.join(5)

    print("EXPECTED", 4 * len(kinds.KINDS) + 1 + 2 + 3 + 2, flush=True)
    """
)


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_child(script: str, *options: str) -> subprocess.CompletedProcess[str]:
    """`script` (formatted with the repository's root) in a child interpreter
    run with `options`; a hang at its shutdown fails here, not the suite."""
    return subprocess.run(
        [sys.executable, *options, "-c", script.format(root=ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unclosed_fds_are_closed_with_a_warning_at_interpreter_exit() -> None:
    proc = run_child(CHILD, "-X", "dev", "-W", "default::ResourceWarning")
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    match = re.search(r"EXPECTED (\d+)", out)
    assert match is not None, (out, err)
    expected = int(match.group(1))
    closed = re.findall(r"^CLOSED (\d+)$", err, re.M)
    warned = re.findall(r"ResourceWarning: unclosed <rcfd\.FD OPEN fd=(\d+) borrows=0>", err)
    assert "STILL OPEN" not in err
    # The busy FD was closed by its borrow, not the finalizer: one more CLOSED, no warning.
    assert len(closed) == expected + 1, err
    assert len(warned) == expected, err
    assert set(warned) <= set(closed), err
    assert "Exception ignored" not in err and "Traceback" not in err, err


LATE = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {root!r})
    import rcfd, rcfd._fd as F, rcfd._lifecycle as L

    # The script's globals and close_func keep rcfd's module dicts alive, so
    # CPython clears them (every name None) before it finalizes the FD held
    # by builtins: the finalizer must need none of those names.
    g, lg = F.__dict__, L.__dict__
    def close_func(n, _g=g, _lg=lg, _close=os.close, _write=os.write):
        _close(n)
        _write(2, b"CLOSED %d\\n" % n)

    import builtins
    builtins.rcfd_last = rcfd.FD(os.eventfd(0), close_func)
    os.rcfd_late = rcfd.FD(os.eventfd(0), close_func)
    """
)


def test_an_fd_finalized_after_rcfds_modules_were_cleared_still_closes() -> None:
    proc = run_child(LATE, "-W", "default::ResourceWarning")
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^CLOSED \d+$", proc.stderr, re.M)) == 2, proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr


HELD = textwrap.dedent(
    """
    import gc, os, sys
    sys.path.insert(0, {root!r})
    import rcfd

    def close_func(n, _close=os.close, _write=os.write):
        _close(n)
        _write(2, b"CLOSED %d\\n" % n)

    class Conn:
        # An FD and a generator suspended inside `with fd.borrow()`, in one
        # cycle: at exit teardown may finalize the FD before the generator.
        def __init__(self):
            self.fd = rcfd.FD(os.eventfd(0), close_func)
            self.reader = self.read()
            next(self.reader)
            self.me = self

        def read(self, _fstat=os.fstat, _write=os.write):
            with self.fd.borrow() as n:
                try:
                    yield n
                finally:
                    try:
                        _fstat(n)
                    except OSError:
                        _write(2, b"CLOSED UNDER THE BORROW %d\\n" % n)

    held = [Conn() for _ in range(3)]

    def failing_close(n, _close=os.close):
        _close(n)
        raise OSError(5, "EIO from close_func")

    FAILING = rcfd.FD(os.eventfd(0), failing_close)
    """
)


def test_at_exit_a_borrowed_fd_is_not_closed_under_its_borrow_and_errors_are_warned() -> None:
    """Module teardown finalizes plainly (no lock, no waiter): an FD whose
    borrow a garbage generator still holds is left open for that borrow (and
    to the kernel), not closed under it; close_func's exception is a
    RuntimeWarning, as before exit, not "Exception ignored"."""
    proc = run_child(HELD, "-W", "default")
    err = proc.stderr
    assert proc.returncode == 0, err
    assert "CLOSED UNDER THE BORROW" not in err, err
    assert re.search(r"RuntimeWarning: rcfd: close_func raised OSError\(5, 'EIO from close_func'\) "
                     r"in the finalizer at exit; fd \d+ is closed", err), err  # fmt: skip
    assert "Exception ignored" not in err and "Traceback" not in err, err
