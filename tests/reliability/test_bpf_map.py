"""An eBPF array map (bpf(2) via tests/bpf.py) used by threads while one closes it.

The seed's original use: every lookup and update is a borrow, and each checks
that its number still names the map created at init (its kernel map_id).
After the close, new maps are created at once to take the freed number;
no borrow may ever reach one of them.
"""

from __future__ import annotations

import errno
import os
import struct
import threading

import pytest

import rcfd
from tests import bpf

WAIT = 10.0
ENTRIES = 16
THREADS = 4
ROUNDS = 200  # maps created, hammered and closed


def _map_or_skip() -> int:
    if not bpf.supported_machine():
        pytest.skip("tests/bpf.py knows the bpf(2) syscall number only for x86_64")
    try:
        return bpf.create_array_map(ENTRIES)
    except OSError as err:
        if err.errno in (errno.EPERM, errno.ENOSYS):
            pytest.skip(f"the kernel refuses bpf(BPF_MAP_CREATE): {err}")
        raise


def test_bpf_map_lookups_and_updates_race_a_close() -> None:
    first = _map_or_skip()
    os.close(first)
    mismatches: list[str] = []
    errors: list[BaseException] = []
    ops = [0] * THREADS
    closes: list[int] = []

    def close_map(n: int) -> None:
        closes.append(n)
        os.close(n)

    for round_ in range(ROUNDS):
        map_fd = bpf.create_array_map(ENTRIES)
        want = bpf.map_id(map_fd)
        fd = rcfd.FD(map_fd, close_map)
        started = threading.Barrier(THREADS + 1)
        used = threading.Semaphore(0)  # released once by each worker after its first op

        def worker(
            i: int,
            fd: rcfd.FD = fd,
            want: int = want,
            round_: int = round_,
            started: threading.Barrier = started,
            used: threading.Semaphore = used,
        ) -> None:
            def use(n: int) -> None:
                if bpf.map_id(n) != want:
                    mismatches.append(f"round {round_}: fd {n} is map {bpf.map_id(n)}")
                key = (i + ops[i]) % ENTRIES
                bpf.update(n, key, struct.pack("=Q", ops[i]))
                (value,) = struct.unpack("=Q", bpf.lookup(n, key))
                assert value < 2**32

            try:
                started.wait(WAIT)
                fd.do(use)
                ops[i] += 1
                used.release()
                while True:
                    fd.do(use)
                    ops[i] += 1
            except rcfd.ClosedFDError:
                pass  # the close began: the only way out
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
        for t in threads:
            t.start()
        started.wait(WAIT)
        for _ in range(THREADS):  # every worker is in its loop: close races them all
            assert used.acquire(timeout=WAIT)
        fd.close()
        # Take the freed number (and more) with new maps while workers may still try.
        squatters = [bpf.create_array_map(ENTRIES) for _ in range(4)]
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads)
        for s in squatters:
            os.close(s)
        assert fd.state is rcfd.State.CLOSED and fd.borrow_count == 0

    assert errors == [] and mismatches == []
    assert len(closes) == ROUNDS  # close_func exactly once per map
    assert sum(ops) > ROUNDS  # the maps were really used
    print(f"\nbpf: {ROUNDS} maps, {sum(ops)} lookup+update borrows, 0 mismatches")
