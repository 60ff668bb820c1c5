"""Soak: 1,000,000 borrows and 100,000 init/close cycles across 8 threads, on
eventfds, pipes, memfds and sockets.

Afterwards the process has exactly the descriptors it started with
(/proc/self/fd), tracemalloc shows no growth attributable to rcfd, and the
registry that tracked every cycle reports no leak. SOAK=long runs ten times
as much (outside CI).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc

import rcfd
from tests.reliability import kinds

SCALE = 10 if os.environ.get("SOAK") == "long" else 1
THREADS = 8
BORROWS = 1_000_000 * SCALE  # on one shared FD, in total
CYCLES = 100_000 * SCALE  # FDs opened, borrowed once, closed, in total
WAIT = 600.0 * SCALE


def _noop(rawfd: int) -> int:
    return rawfd


def _workload(
    shared: rcfd.FD, registry: rcfd.LifetimeRegistry, borrows: int, cycles: int
) -> tuple[int, int]:
    """Runs `borrows` borrows of `shared` interleaved with `cycles` own FDs per
    thread; returns the counts done."""
    done_borrows = done_cycles = 0
    per_cycle = borrows // cycles
    do = shared.do
    for i in range(cycles):
        kind = kinds.KINDS[i % len(kinds.KINDS)]
        if i % 2:
            own = rcfd.FD(kinds.make(kind), registry=registry)
        else:  # the two-step life: UNINIT, tracked, then init
            own = rcfd.FD()
            own.track_lifetime(registry)
            own.init(kinds.make(kind))
        own.do(_noop)
        for _ in range(per_cycle // 2):
            do(_noop)
        for _ in range(per_cycle - per_cycle // 2):
            with shared.borrow():
                pass
        own.close()
        done_borrows += per_cycle
        done_cycles += 1
    return done_borrows, done_cycles


def _run(shared: rcfd.FD, registry: rcfd.LifetimeRegistry, borrows: int, cycles: int) -> int:
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            r = _workload(shared, registry, borrows // THREADS, cycles // THREADS)
            with lock:
                results.append(r)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert shared.borrow_count == 0
    return sum(b for b, _ in results) + sum(c for _, c in results)


def _rcfd_bytes(snapshot: tracemalloc.Snapshot) -> int:
    filtered = snapshot.filter_traces([tracemalloc.Filter(True, "*/rcfd/*")])
    return sum(stat.size for stat in filtered.statistics("filename"))


def test_soak_borrows_and_cycles_leave_nothing_behind() -> None:
    registry = rcfd.LifetimeRegistry()
    shared = rcfd.FD(kinds.make("eventfd"), registry=registry)
    # Warm up: interpreter caches, specializations and list capacities settle.
    _run(shared, registry, 8_000, 800)
    gc.collect()
    fds_before = kinds.count_open_fds()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        start = time.perf_counter()
        done = _run(shared, registry, BORROWS, CYCLES)
        elapsed = time.perf_counter() - start
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    shared.close()

    assert done == BORROWS + CYCLES
    assert kinds.count_open_fds() == fds_before - 1  # only the shared FD is gone
    growth = _rcfd_bytes(after) - _rcfd_bytes(before)
    total_growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # rcfd keeps nothing per finished borrow or closed FD: a few bytes of
    # noise, not 100,000 entries (which would be megabytes).
    assert growth <= 4096, after.compare_to(before, "lineno")[:10]
    assert total_growth <= 256 * 1024, after.compare_to(before, "lineno")[:10]
    stats = registry.fd_stats()
    assert stats.report() == ""
    assert stats.in_flight_stacks == {} and stats.finalized == 0
    assert stats.initialized == stats.closed == CYCLES + 800 + 1
    print(
        f"\nsoak: {BORROWS} borrows + {CYCLES} init/close cycles on {THREADS} threads "
        f"in {elapsed:.1f}s under tracemalloc; rcfd growth {growth} B, total {total_growth} B"
    )
