"""init() racing other calls: the shared lock and init's linearization point.

An FD has no lock of its own before its first close; init() and
track_lifetime() take the module's shared lock instead, and init publishes
the holders last (specs/cpython.md, "The borrow takes no lock": the lock,
init's linearization point). The interleaving exploration covers the races line by line; these
tests pin the two rules with real threads and one deterministic window.
"""

from __future__ import annotations

import gc
import os
import warnings

import pytest

import rcfd
from rcfd import _fd
from tests.support import WAIT, CountingClose, PausingRegistry, in_thread, stays_blocked


def test_of_two_racing_inits_one_wins_and_the_other_changes_nothing() -> None:
    registry = PausingRegistry()
    fd = rcfd.FD(registry=registry)
    first, second = os.eventfd(0), os.eventfd(0)
    closer = CountingClose()
    t1, winner = in_thread(lambda: fd.init(first, closer))
    assert registry.paused.wait(WAIT), "the first init never reached its record"
    t2, loser = in_thread(lambda: fd.init(second, closer))
    # The second init waits for the shared lock. Without it, it would pass
    # its state check (still UNINIT) and open the FD on its own number too.
    assert stays_blocked(loser)
    registry.resume.set()
    for thread, outcome in ((t1, winner), (t2, loser)):
        assert outcome.done.wait(WAIT)
        thread.join(WAIT)
    assert winner.error is None
    assert isinstance(loser.error, rcfd.MultipleInitError), loser.error
    assert fd.do(lambda rawfd: rawfd) == first
    assert registry.fd_stats().initialized == 1
    fd.close()
    assert closer.calls == [first]  # and closed it
    os.close(second)  # the loser's number is still the caller's


def test_a_close_during_an_init_waits_for_it_or_sees_uninit() -> None:
    registry = PausingRegistry()
    fd = rcfd.FD(registry=registry)
    raw = os.eventfd(0)
    closer = CountingClose()
    t1, init = in_thread(lambda: fd.init(raw, closer))
    assert registry.paused.wait(WAIT)
    # The FD has no lock of its own yet: the close makes one, under the
    # shared lock that the init holds, so it waits for the init to finish.
    t2, close = in_thread(fd.close)
    assert stays_blocked(close)
    registry.resume.set()
    for thread, outcome in ((t1, init), (t2, close)):
        assert outcome.done.wait(WAIT)
        thread.join(WAIT)
    assert init.error is None and close.error is None
    assert fd.state is rcfd.State.CLOSED and closer.calls == [raw]


def test_in_inits_window_every_transition_sees_uninit_and_changes_nothing() -> None:
    # init() writes the number and the callbacks, then publishes the holders:
    # its last store. A close that holds the FD's own lock can run in between.
    # Reproduced here by writing what init has written at that instant.
    fd = rcfd.FD()
    with pytest.raises(rcfd.UninitializedFDError):
        fd.close()  # gives the FD its own lock, as an earlier close would
    raw = os.eventfd(0)
    fd._rawfd = raw
    assert fd.state is rcfd.State.UNINIT
    with pytest.raises(rcfd.UninitializedFDError, match="refused in state UNINIT"):
        fd.close()
    with pytest.raises(rcfd.UninitializedFDError):
        fd.detach()
    with pytest.raises(rcfd.UninitializedFDError):
        fd.do(lambda rawfd: rawfd)
    assert fd._holders is _fd._NO_BORROWS and fd._closer is None
    assert fd.borrow_count == 0
    # The rest of init would follow; the finalizer never sees this window (the
    # init holds the FD), so leave the FD as init found it.
    fd._rawfd = -1
    os.close(raw)


class InterruptedRecord(rcfd.LifetimeRegistry):
    """A registry whose init record is followed by KeyboardInterrupt, as when
    SIGINT's handler runs as the record returns (Signals rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupt = True

    def _record_init(self, key: int, rawfd: int) -> None:
        super()._record_init(key, rawfd)
        if self.interrupt:
            raise KeyboardInterrupt


def test_an_init_interrupted_as_its_record_returns_is_not_counted() -> None:
    registry = InterruptedRecord()
    fd = rcfd.FD(registry=registry)
    raw = os.eventfd(0)
    with pytest.raises(KeyboardInterrupt):
        fd.init(raw)
    assert fd.state is rcfd.State.UNINIT
    stats = registry.fd_stats()
    assert stats.initialized == 0 and not stats.in_flight_stacks  # no false leak
    registry.interrupt = False
    fd.init(raw)  # the caller still owns the number and may init again
    fd.close()
    assert registry.fd_stats().report() == ""


def test_the_finalizer_of_an_fd_in_inits_window_closes_nothing() -> None:
    # A fork child can inherit an FD whose init (in a thread the child does not
    # have) had written OPEN but not published the holders: it is UNINIT.
    closed: list[int] = []  # records only: the number stays the test's
    gc.collect()  # earlier tests' garbage FDs warn now, not in the block below
    raw = os.eventfd(0)
    fd = rcfd.FD()
    fd._rawfd, fd._close_func = raw, closed.append  # the holders: not yet
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        del fd
        gc.collect()
    os.close(raw)
    assert closed == []
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]
