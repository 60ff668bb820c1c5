"""`make bench`: what a borrow costs, how close behaves under load, what an FD weighs.

Every figure is measured in this one process next to its baselines, in
alternating rounds, and reported as the median over the rounds (ratios are
the median of the per-round ratios), so that drift on a shared machine
cancels out of the ratios. Prints one table and writes it, with the raw
numbers, to bench/results.json. Timings are never asserted by the tests.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any, Protocol, TypeVar

import rcfd
from bench import anatomy
from bench.naive import EmptyContext, Floor, NaiveClosedError, NaiveFD
from rcfd import _nogil

RESULTS = Path(__file__).with_name("results.json")


@dataclass
class Row:
    """One line of the table (and of results.json)."""

    figure: str
    rcfd: str
    baselines: str
    ratio: str
    target: str
    met: bool | None  # None: reported, no target


class Borrower(Protocol):
    def do(self, fn: Callable[[int], int], /) -> object: ...


class Closable(Borrower, Protocol):
    def close(self) -> None: ...


B = TypeVar("B", bound=Borrower)


def _fn(rawfd: int) -> int:
    """The trivial fn every borrow calls."""
    return rawfd


def _noop_close(rawfd: int) -> None:
    """A close_func for FDs that share one real descriptor (memory figure)."""


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def _pct(xs: Sequence[float], p: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- 1. uncontended borrow ---------------------------------------------------
# One loop function per candidate, so that each call site stays specialised
# for one type and the loops are otherwise identical.


def _loop_empty(n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        pass
    return perf_counter_ns() - t0


def _loop_bare(fn: Callable[[int], int], rawfd: int, n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        fn(rawfd)
    return perf_counter_ns() - t0


def _loop_floor(floor: Floor, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        floor.do(fn)
    return perf_counter_ns() - t0


def _loop_naive(naive: NaiveFD, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        naive.do(fn)
    return perf_counter_ns() - t0


def _loop_do(fd: rcfd.FD, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        fd.do(fn)
    return perf_counter_ns() - t0


def _loop_part(part: anatomy.Ident, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        part.do(fn)
    return perf_counter_ns() - t0


def _loop_borrow(fd: rcfd.FD, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        with fd.borrow() as rawfd:
            fn(rawfd)
    return perf_counter_ns() - t0


def _loop_empty_with(cm: EmptyContext, fn: Callable[[int], int], n: int) -> int:
    t0 = perf_counter_ns()
    for _ in range(n):
        with cm as rawfd:
            fn(rawfd)
    return perf_counter_ns() - t0


def uncontended(
    rawfd: int, rounds: int = 41, n: int = 2_000, bursts: int = 5
) -> dict[str, list[float]]:
    """ns per call, net of the empty loop, per round, for each candidate.

    A round times each candidate in `bursts` short loops of `n` calls and
    keeps the fastest: a loop that the scheduler interrupted (the machine is
    shared) measures the other process, not the borrow. The table reports
    the median over rounds; the candidates alternate within each round."""
    fd = rcfd.FD(rawfd, _noop_close)
    floor = Floor(rawfd)
    naive = NaiveFD(rawfd, _noop_close)
    empty_cm = EmptyContext(rawfd)
    candidates: dict[str, Callable[[], int]] = {
        "bare": lambda: _loop_bare(_fn, rawfd, n),
        "floor": lambda: _loop_floor(floor, _fn, n),
        "naive": lambda: _loop_naive(naive, _fn, n),
        "do": lambda: _loop_do(fd, _fn, n),
        "borrow": lambda: _loop_borrow(fd, _fn, n),
        "empty_with": lambda: _loop_empty_with(empty_cm, _fn, n),
    }
    if not _nogil.ENABLED:  # the parts are the GIL path's borrow
        for name, cls in anatomy.PARTS.items():
            candidates[f"part: {name}"] = partial(_loop_part, cls(rawfd), _fn, n)
    names = list(candidates)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        order = names[r % len(names) :] + names[: r % len(names)]
        empty = min(_loop_empty(n) for _ in range(bursts))
        times = {name: min(candidates[name]() for _ in range(bursts)) for name in order}
        if r:
            for name in names:
                out[name].append(max(times[name] - empty, 0) / n)
    fd.close()
    naive.close()
    return out


def _paired(a: list[float], b: list[float]) -> float:
    """Median over rounds of a/b, measured in the same round."""
    return _median([x / y for x, y in zip(a, b, strict=True) if y > 0])


# -- 2. contention -----------------------------------------------------------


def _contend(borrower: Borrower, threads: int, seconds: float) -> float:
    """Total borrows per second with `threads` threads borrowing as fast as they can."""
    stop = threading.Event()
    counts = [0] * threads
    ready = threading.Barrier(threads + 1)
    do = borrower.do

    def worker(i: int) -> None:
        ready.wait()
        done = 0
        while not stop.is_set():
            for _ in range(200):
                do(_fn)
            done += 200
        counts[i] = done

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    ready.wait()
    t0 = perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (perf_counter() - t0)


class Bare:
    """fn(rawfd) with no borrow at all: what the GIL alone does to N threads."""

    def __init__(self, rawfd: int) -> None:
        self._rawfd = rawfd

    def do(self, fn: Callable[[int], int], /) -> int:
        return fn(self._rawfd)


def contention(
    rawfd: int, threads: Sequence[int] = (1, 2, 4, 8), repeats: int = 7, seconds: float = 0.2
) -> dict[str, dict[int, list[float]]]:
    """Borrows/s per repeat; every repeat measures all thread counts and
    implementations back to back, so ratios are taken within a repeat."""
    impls: dict[str, Borrower] = {
        "rcfd": rcfd.FD(rawfd, _noop_close),
        "floor": Floor(rawfd),
        "naive": NaiveFD(rawfd, _noop_close),
        "bare": Bare(rawfd),
    }
    out: dict[str, dict[int, list[float]]] = {name: {n: [] for n in threads} for name in impls}
    for _ in range(repeats):
        for n in threads:
            for name, impl in impls.items():
                out[name][n].append(_contend(impl, n, seconds))
    for impl in impls.values():
        close = getattr(impl, "close", None)
        if close is not None:
            close()
    return out


# -- 3. close under load -----------------------------------------------------

HOLD = 0.001  # seconds each borrow holds the descriptor


def _close_trial(make: Callable[[], Closable], borrowers: int = 4) -> tuple[float, list[float]]:
    """(close latency, durations of every borrow) for one FD under load."""
    fd = make()
    durations: list[float] = []
    started = threading.Semaphore(0)

    def hold(rawfd: int) -> int:
        t = perf_counter()
        time.sleep(HOLD)
        durations.append(perf_counter() - t)
        return rawfd

    def worker() -> None:
        started.release()
        try:
            while True:
                fd.do(hold)
        except (rcfd.ClosedFDError, NaiveClosedError):
            pass

    pool = [threading.Thread(target=worker) for _ in range(borrowers)]
    for t in pool:
        t.start()
    for _ in pool:
        started.acquire()
    time.sleep(3 * HOLD + random.uniform(0, HOLD))  # land anywhere inside a borrow
    latency: list[float] = []

    def closer() -> None:
        t = perf_counter()
        fd.close()
        latency.append(perf_counter() - t)

    c = threading.Thread(target=closer)
    c.start()
    c.join()
    for t in pool:
        t.join()
    return latency[0], durations


def close_under_load(trials: int = 60) -> dict[str, dict[str, list[float]]]:
    makers: dict[str, Callable[[], Closable]] = {
        "rcfd": lambda: rcfd.FD(os.eventfd(0)),
        "naive": lambda: NaiveFD(os.eventfd(0)),
    }
    out: dict[str, dict[str, list[float]]] = {
        name: {"latency": [], "borrow": []} for name in makers
    }
    for _ in range(trials):
        for name, make in makers.items():
            latency, durations = _close_trial(make)
            out[name]["latency"].append(latency)
            out[name]["borrow"].extend(durations)
    return out


# -- 4. memory ---------------------------------------------------------------


def _used(fd: B) -> B:
    """The object after one borrow, as every FD in use is: the first borrow
    gives rcfd's holders array its storage (32 bytes), which it keeps."""
    fd.do(_fn)
    return fd


def weakref_bytes(rawfd: int, n: int = 20_000) -> float:
    """tracemalloc bytes per weakref.ref to an open FD (the `__weakref__` slot
    that makes it possible is 8 bytes of every FD, counted in bytes_per_fd)."""
    fds = [_used(rcfd.FD(rawfd, _noop_close)) for _ in range(n)]
    refs: list[weakref.ref[rcfd.FD] | None] = [None] * n
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, fd in enumerate(fds):
        refs[i] = weakref.ref(fd)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for fd in fds:
        fd.close()
    return (after - before) / n


def _two_step(rawfd: int) -> rcfd.FD:
    """FD() then init(), Go's way (`var fd rc.FD; fd.Init(...)`)."""
    fd = rcfd.FD()
    fd.init(rawfd, _noop_close)
    return fd


def bytes_per_fd(make: Callable[[], Closable], n: int = 100_000) -> float:
    """tracemalloc bytes per live object, `n` of them alive at once."""
    keep: list[Closable | None] = [None] * n  # allocated before the baseline
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        keep[i] = make()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for obj in keep:
        if obj is not None:
            obj.close()
    return (after - before) / n


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _churn(make: Callable[[int], Closable], n: int) -> None:
    for _ in range(n):
        fd = make(os.eventfd(0))
        fd.do(_fn)
        fd.close()


def churn_growth(make: Callable[[int], Closable], n: int = 100_000) -> int:
    """RSS growth in bytes over `n` open/borrow/close cycles, after a warm-up."""
    _churn(make, n // 5)
    gc.collect()
    before = _rss()
    _churn(make, n)
    gc.collect()
    return _rss() - before


# -- 5. close-to-close -------------------------------------------------------


def close_to_close(rounds: int = 21, batch: int = 200) -> dict[str, list[float]]:
    """ns per descriptor: os.close alone; FD(r).close(); NaiveFD(r).close()."""
    out: dict[str, list[float]] = {"os.close": [], "rcfd": [], "naive": []}
    names = list(out)
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            pipes = [os.pipe() for _ in range(batch)]
            reads = [p[0] for p in pipes]
            t0 = perf_counter_ns()
            if name == "os.close":
                for fd in reads:
                    os.close(fd)
            elif name == "rcfd":
                for fd in reads:
                    rcfd.FD(fd).close()
            else:
                for fd in reads:
                    NaiveFD(fd).close()
            elapsed = perf_counter_ns() - t0
            for p in pipes:
                os.close(p[1])
            if r:
                out[name].append(elapsed / batch)
    return out


# -- the table ---------------------------------------------------------------


def _ok(value: float, limit: float, below: bool = True) -> bool:
    return value <= limit if below else value >= limit


def build_rows(raw: dict[str, object]) -> list[Row]:
    u = raw["uncontended"]
    c = raw["contention"]
    cl = raw["close_under_load"]
    mem = raw["memory"]
    cc = raw["close_to_close"]
    assert isinstance(u, dict) and isinstance(c, dict) and isinstance(cl, dict)
    assert isinstance(mem, dict) and isinstance(cc, dict)
    rows: list[Row] = []
    do_ns, borrow_ns = _median(u["do"]), _median(u["borrow"])
    floor_ns, naive_ns, bare_ns = _median(u["floor"]), _median(u["naive"]), _median(u["bare"])
    do_floor = _paired(u["do"], u["floor"])
    naive_do = _paired(u["naive"], u["do"])
    borrow_do = _paired(u["borrow"], u["do"])
    with_ns = _median(u["empty_with"])
    with_do = _paired(u["empty_with"], u["do"])
    # What any `with` whose __enter__/__exit__ are Python methods costs at
    # least, if they do do()'s work: the empty with, plus do() less its fn.
    bound = [w + d - b for w, d, b in zip(u["empty_with"], u["do"], u["bare"], strict=True)]
    borrow_bound = _paired(u["borrow"], bound)
    rows.append(
        Row(
            "1. fd.do(fn), ns/call",
            f"{do_ns:.0f}",
            f"bare {bare_ns:.0f} · floor {floor_ns:.0f} · naive {naive_ns:.0f}",
            f"do/floor {do_floor:.2f}x",
            "<= 1.3x",
            _ok(do_floor, 1.3),
        )
    )
    parts = [name for name in u if name.startswith("part: ")]
    if parts:  # (the GIL path only)
        rows.append(
            Row(
                "1. do()'s parts (bench/anatomy.py), ns/call",
                f"{do_ns:.0f}",
                " · ".join(f"{p[6:]} {_median(u[p]):.0f}" for p in parts),
                " · ".join(f"{p[6:]} {_paired(u[p], u['floor']):.2f}x floor" for p in parts),
                "-",
                None,
            )
        )
    rows.append(
        Row(
            "1. naive peer vs do()",
            f"{do_ns:.0f}",
            f"naive {naive_ns:.0f}",
            f"naive/do {naive_do:.2f}x",
            ">= 2.5x",
            _ok(naive_do, 2.5, below=False),
        )
    )
    rows.append(
        Row(
            "1. with fd.borrow(), ns/borrow",
            f"{borrow_ns:.0f}",
            f"do {do_ns:.0f} · empty with {with_ns:.0f} ({with_do:.2f}x do)"
            f" · empty with + do - bare {_median(bound):.0f} ({_paired(bound, u['do']):.2f}x do)",
            f"borrow/do {borrow_do:.2f}x · borrow/(with + do - bare) {borrow_bound:.2f}x",
            "<= 1.5x",
            _ok(borrow_do, 1.5),
        )
    )
    for n in sorted(c["rcfd"]):
        ratio = _paired(c["rcfd"][n], c["rcfd"][1])
        base = " · ".join(
            f"{name} {_median(c[name][n]) / 1e6:.2f}M ({_paired(c[name][n], c[name][1]):.2f}x)"
            for name in c
            if name != "rcfd"
        )
        rows.append(
            Row(
                f"2. {n} thread(s), borrows/s",
                f"{_median(c['rcfd'][n]) / 1e6:.2f}M",
                base,
                f"vs 1 thread {ratio:.2f}x",
                ">= 0.8x" if n == 4 else "-",
                _ok(ratio, 0.8, below=False) if n == 4 else None,
            )
        )
    lat = [x * 1e3 for x in cl["rcfd"]["latency"]]
    nlat = [x * 1e3 for x in cl["naive"]["latency"]]
    longest = max(cl["rcfd"]["borrow"]) * 1e3
    p99 = _pct(lat, 99)
    rows.append(
        Row(
            f"3. close under load ({len(lat)} trials), p50 / p99 ms",
            f"{_pct(lat, 50):.2f} / {p99:.2f}",
            f"naive {_pct(nlat, 50):.2f} / {_pct(nlat, 99):.2f}; longest borrow {longest:.2f}",
            f"p99 - longest borrow {p99 - longest:+.2f} ms",
            "p99 <= longest borrow + 5 ms",
            _ok(p99, longest + 5),
        )
    )
    rows.append(
        Row(
            "4. tracemalloc bytes per open FD, borrowed once (100k)",
            f"{mem['rcfd_bytes']:.0f}",
            f"naive {mem['naive_bytes']:.0f} · rcfd FD()+init() {mem['two_step_bytes']:.0f}"
            f" · rcfd never borrowed {mem['unused_bytes']:.0f}"
            f" · a weakref.ref to it {mem['weakref_bytes']:.0f}"
            " (the __weakref__ slot that allows it, 8, is in every rcfd figure)",
            f"naive/rcfd {mem['naive_bytes'] / mem['rcfd_bytes']:.2f}x",
            "<= 208",
            # Whole bytes: what is left over (a few hundred bytes over the
            # 100k FDs, the same without rcfd's code changing) is the window's
            # own allocations, not the FDs'.
            _ok(round(max(mem["rcfd_bytes"], mem["two_step_bytes"])), 208),
        )
    )
    rows.append(
        Row(
            "4. RSS growth over 100k open/close, KiB",
            f"{mem['rcfd_churn'] / 1024:+.0f}",
            f"naive {mem['naive_churn'] / 1024:+.0f}",
            f"{mem['rcfd_churn'] / 100_000:+.2f} B/cycle",
            "<= 1024 KiB (a leaked FD per cycle: ~24 MB)",
            _ok(mem["rcfd_churn"], 1024 * 1024),
        )
    )
    os_ns, rc_ns, nv_ns = _median(cc["os.close"]), _median(cc["rcfd"]), _median(cc["naive"])
    rows.append(
        Row(
            "5. create+init+close, ns/FD",
            f"{rc_ns:.0f}",
            f"os.close {os_ns:.0f} · naive {nv_ns:.0f}",
            f"rcfd/naive {_paired(cc['rcfd'], cc['naive']):.2f}x"
            f" · rcfd/os.close {_paired(cc['rcfd'], cc['os.close']):.2f}x",
            "<= 1.0x naive",
            _ok(_paired(cc["rcfd"], cc["naive"]), 1.0),
        )
    )
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("figure", "rcfd", "baselines", "ratio", "target", "met?")
    cells = [
        (
            r.figure,
            r.rcfd,
            r.baselines,
            r.ratio,
            r.target,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    for c in cells:
        lines.append("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
    }


def run_path() -> tuple[list[Row], dict[str, object], float]:
    """Every figure, on the borrow path this process imported."""
    start = perf_counter()
    raw: dict[str, object] = {}
    rawfd = os.eventfd(0)
    try:
        print("1/5 uncontended borrow ...", flush=True)
        raw["uncontended"] = uncontended(rawfd)
        print("2/5 contention ...", flush=True)
        raw["contention"] = contention(rawfd)
        print("3/5 close under load ...", flush=True)
        raw["close_under_load"] = close_under_load()
        print("4/5 memory ...", flush=True)
        raw["memory"] = {
            "rcfd_bytes": bytes_per_fd(lambda: _used(rcfd.FD(rawfd, _noop_close))),
            "two_step_bytes": bytes_per_fd(lambda: _used(_two_step(rawfd))),
            "unused_bytes": bytes_per_fd(lambda: rcfd.FD(rawfd, _noop_close)),
            "naive_bytes": bytes_per_fd(lambda: _used(NaiveFD(rawfd, _noop_close))),
            "weakref_bytes": weakref_bytes(rawfd),
            "rcfd_churn": churn_growth(rcfd.FD),
            "naive_churn": churn_growth(NaiveFD),
        }
        print("5/5 close-to-close ...", flush=True)
        raw["close_to_close"] = close_to_close()
    finally:
        os.close(rawfd)
    return build_rows(raw), raw, perf_counter() - start


def side_by_side(gil: list[Row], nogil: list[Row]) -> str:
    """The figures of both borrow paths, one row each (rcfd column and ratio)."""
    header = ("figure", "GIL path", "no-GIL path (RCFD_NOGIL=1)")
    other = {b.figure: b for b in nogil}  # (do()'s parts are the GIL path's only)
    cells = [
        (a.figure, f"{a.rcfd} ({a.ratio})", f"{b.rcfd} ({b.ratio})" if b else "-")
        for a, b in ((a, other.get(a.figure)) for a in gil)
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += ["| " + " | ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)) + " |"
              for c in cells]
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> int:
    """`python -m bench`: this path's table, then the other path's in a child
    process with RCFD_NOGIL=1, side by side. `--one-path FILE`: this path
    only, its rows written to FILE (how the child is run)."""
    info = machine()
    path = "no-GIL" if _nogil.ENABLED else "GIL"
    print(
        f"rcfd bench ({path} path): Python {info['python']} on {info['cpu']} "
        f"({info['cores']} cores)",
        flush=True,
    )
    rows, raw, elapsed = run_path()
    if argv[:1] == ["--one-path"]:
        Path(argv[1]).write_text(json.dumps({"rows": [asdict(r) for r in rows], "raw": raw}))
        return 0
    print()
    print(format_table(rows))
    print(
        f"\n{sum(r.met is True for r in rows)} of {sum(r.met is not None for r in rows)} "
        f"targets met on the {path} path; {elapsed:.0f} s",
        flush=True,
    )
    other: dict[str, Any] = {}
    if not _nogil.ENABLED:
        print("\nthe no-GIL path, in a child process (RCFD_NOGIL=1) ...", flush=True)
        out = RESULTS.with_name("results-nogil.tmp.json")
        env = {**os.environ, "RCFD_NOGIL": "1"}
        subprocess.run(
            [sys.executable, "-m", "bench", "--one-path", str(out)], check=True, env=env
        )
        other = json.loads(out.read_text())
        out.unlink()
        child_rows: list[dict[str, Any]] = other["rows"]
        nogil_rows = [Row(**r) for r in child_rows]
        print()
        print(side_by_side(rows, nogil_rows))
    RESULTS.write_text(
        json.dumps(
            {
                "machine": info,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(elapsed, 1),
                "path": path,
                "rows": [asdict(r) for r in rows],
                "raw": raw,
                "nogil": other,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
