"""The number-reuse hazard, over pipes, eventfds, memfds and sockets.

Thread A uses a descriptor number while thread B closes it and thread C opens
new descriptors, so the kernel hands the same number out again. Inside every
borrow the test checks that the number still names the object it named at
init (kinds.identity). A bare int fails this deterministically (the control);
an rcfd.FD never does, because close() waits for the running borrow.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import rcfd
from tests.reliability import kinds

WAIT = 10.0  # bound on every wait; a test that reaches it has failed, not passed


class Attack:
    """One scripted round: A is inside its use of `n` when B closes and C reopens.

    The order is forced by events, not timing: C reopens only once B's close
    has taken whatever effect it takes without A's cooperation (for a bare int,
    the number is gone; for an FD, the FD is CLOSING and close() waits for A).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.n = kinds.make(kind)
        self.ident = kinds.identity(self.n)
        self.in_use = threading.Event()
        self.reopened = threading.Event()
        self.closed = threading.Event()
        self.seen_inside: tuple[object, ...] | None = None
        self.stolen: list[int] = []

    def fn(self, rawfd: int) -> None:
        assert kinds.identity(rawfd) == self.ident  # valid when the use began
        self.in_use.set()
        assert self.reopened.wait(WAIT)
        self.seen_inside = kinds.identity_or_none(rawfd)  # and after the attack?

    def run(
        self,
        use: Callable[[Callable[[int], None]], None],
        close: Callable[[], None],
        close_took_effect: Callable[[], bool],
    ) -> bool:
        """True if A saw a different object (or none) at its number: the hazard."""
        a = threading.Thread(target=use, args=(self.fn,), daemon=True)
        b = threading.Thread(target=self._close, args=(close,), daemon=True)
        a.start()
        assert self.in_use.wait(WAIT)
        b.start()
        assert kinds.wait_until(close_took_effect, WAIT)
        # Lowest-free-number allocation: if n is free, one of these gets it.
        for _ in range(64):
            new = kinds.make(self.kind)
            self.stolen.append(new)
            if new == self.n:
                break
        self.reopened.set()
        a.join(WAIT)
        b.join(WAIT)
        assert not a.is_alive() and not b.is_alive()
        for fd in self.stolen:
            os.close(fd)
        return self.seen_inside != self.ident

    def _close(self, close: Callable[[], None]) -> None:
        close()
        self.closed.set()


def bare_attack(kind: str) -> bool:
    attack = Attack(kind)
    n = attack.n

    def use(fn: Callable[[int], None]) -> None:
        fn(n)

    def close() -> None:
        os.close(n)

    return attack.run(use, close, attack.closed.is_set)


def rcfd_attack(kind: str) -> tuple[bool, int]:
    """The same attack on an FD; returns (hazard seen, close_func calls)."""
    attack = Attack(kind)
    calls = []

    def close_func(rawfd: int) -> None:
        calls.append(rawfd)
        os.close(rawfd)

    fd = rcfd.FD(attack.n, close_func)
    # close() cannot close the number under A's borrow; it has done what it
    # can once the FD is CLOSING (new borrows refused).
    seen = attack.run(fd.do, fd.close, lambda: fd.state is rcfd.State.CLOSING)
    assert fd.state is rcfd.State.CLOSED and fd.borrow_count == 0
    return seen, len(calls)


RUNS = 25


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_bare_int_sees_reuse_every_time(kind: str) -> None:
    """The control: the attack on a raw number succeeds every time, so the
    FD test below is known to be able to fail."""
    hits = sum(bare_attack(kind) for _ in range(RUNS))
    assert hits == RUNS, f"{kind}: the bare int saw reuse in only {hits}/{RUNS} runs"


@pytest.mark.parametrize("kind", kinds.KINDS)
def test_fd_never_sees_reuse_under_the_scripted_attack(kind: str) -> None:
    for _ in range(RUNS):
        seen, calls = rcfd_attack(kind)
        assert not seen, f"{kind}: a borrow saw its number reused"
        assert calls == 1


# -- the randomized stress: many rounds, 5 threads ---------------------------

ROUNDS = 10_000  # FDs opened, borrowed, closed and their numbers reopened
BORROWERS = 3
PER_ROUND = 2  # borrows per borrower per round: enough to overlap the close, no more


class Stress:
    """The closer publishes one FD per round and closes it while BORROWERS threads
    borrow whatever FD is current and a reopener thread keeps opening and closing
    descriptors of every kind to grab each freed number at once."""

    def __init__(self) -> None:
        self.current: tuple[int, rcfd.FD, tuple[object, ...]] | None = None
        self.borrowed = threading.Event()  # some borrow of the current FD ran
        self.published = threading.Condition()  # notified when `current` changes
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.closes: collections.Counter[int] = collections.Counter()
        self.mismatches: list[str] = []
        self.borrows = 0
        self.refused = 0
        self.overlapped = 0  # rounds whose close() began while a borrow ran
        self.errors: list[BaseException] = []

    def close_func(self, round_: int) -> Callable[[int], None]:
        def close(rawfd: int) -> None:
            with self.lock:
                self.closes[round_] += 1
            os.close(rawfd)

        return close

    def borrower(self) -> None:
        borrows = refused = 0
        yield_gil = threading.Event().wait  # wait(0): let the closer and reopener run
        try:
            while not self.stop.is_set():
                cur = self.current
                if cur is None:
                    continue
                round_, fd, ident = cur

                def check(rawfd: int, round_: int = round_, ident: object = ident) -> None:
                    for _ in range(2):  # before and after letting the attackers run
                        now = kinds.identity_or_none(rawfd)
                        if now != ident:
                            self.mismatches.append(f"round {round_}: {ident} became {now}")
                        self.borrowed.set()
                        yield_gil(0)

                try:
                    for _ in range(PER_ROUND):
                        fd.do(check)
                        borrows += 1
                except rcfd.ClosedFDError:
                    refused += 1
                # Enough of this FD (or it is closed): sleep until the next one.
                with self.published:
                    self.published.wait_for(self._moved_on(round_), WAIT)
        except BaseException as exc:
            self.errors.append(exc)
        with self.lock:
            self.borrows += borrows
            self.refused += refused

    def _moved_on(self, round_: int) -> Callable[[], bool]:
        def moved_on() -> bool:
            cur = self.current
            return self.stop.is_set() or (cur is not None and cur[0] != round_)

        return moved_on

    def reopener(self) -> None:
        try:
            for kind in self._kinds():
                if self.stop.is_set():
                    return
                os.close(kinds.make(kind))
        except BaseException as exc:
            self.errors.append(exc)

    def _kinds(self) -> Iterator[str]:
        while True:
            yield from kinds.KINDS

    def closer(self, rounds: int) -> None:
        try:
            for round_ in range(rounds):
                kind = kinds.KINDS[round_ % len(kinds.KINDS)]
                rawfd = kinds.make(kind)
                fd = rcfd.FD(rawfd, self.close_func(round_))
                self.borrowed.clear()
                with self.published:
                    self.current = (round_, fd, kinds.identity(rawfd))
                    self.published.notify_all()
                # Close while a borrow runs (or has just run) in most rounds.
                self.borrowed.wait(0.01)
                self.overlapped += fd.borrow_count > 0  # close() will have to wait
                fd.close()
                assert fd.state is rcfd.State.CLOSED
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.stop.set()
            with self.published:
                self.published.notify_all()


def test_fd_stress_no_borrow_sees_a_reused_number() -> None:
    start_fds = kinds.count_open_fds()
    stress = Stress()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(2e-4)  # switch threads often: more interleavings per round
    try:
        threads = [threading.Thread(target=stress.borrower, daemon=True) for _ in range(BORROWERS)]
        threads.append(threading.Thread(target=stress.reopener, daemon=True))
        threads.append(threading.Thread(target=stress.closer, args=(ROUNDS,), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "stress did not finish in 120 s"
    finally:
        sys.setswitchinterval(old_interval)
    assert not stress.errors, stress.errors
    assert stress.mismatches == []
    assert len(stress.closes) == ROUNDS and set(stress.closes.values()) == {1}
    # The attack was real: borrows ran, and some were refused by a close.
    assert stress.borrows >= ROUNDS // 2, stress.borrows
    assert stress.refused > 0
    assert stress.overlapped >= ROUNDS // 50, stress.overlapped  # ~10% measured
    assert kinds.count_open_fds() == start_fds
    print(
        f"\nreuse stress: {ROUNDS} rounds, {stress.borrows} borrows, "
        f"{stress.refused} refused, {stress.overlapped} closes began under a borrow, 0 mismatches"
    )
