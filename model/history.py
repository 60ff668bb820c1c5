"""What a real FD did, as the harnesses saw it: the record model.guarantees
checks for every harness (the interleavings, the catalog's replays, model vs
production and the trace replays).

A History is one list of events in the order they happened, appended by
whoever saw each: a harness's logical threads (calls and results in
model.vocabulary's words, a borrow's fn, close_func, on_closing) and, when
installed, rcfd's test seam (conformance.drivers.rcfd_seam). An event carries
the FD's state and borrow count right after it when the harness can read them
with it (`observe`, under `lock`, which the seam holds around each of rcfd's
steps it logs); otherwise they are unknown.

Event words (`what`, then what `detail` says):
  call, return      a call began (`close(0.5)`, `init(rawfd=7)`), and the
                    innermost open call of that thread ended (a result word);
  fn, fn_end        a borrow's fn began (`rawfd=7`) and ended ("", `raised X`);
  close_func, close_func_end, on_closing, on_closing_end   the same for them;
  hold, unhold      one borrow counted (insert, append, owner) or given back
                    (remove, tombstone); `who` is the borrowing thread;
  holders           an init made its holders (it got past its check);
  freeze, finish    a close froze the holders (OPEN -> CLOSING; "not frozen"
                    if the holders still take inserts), and finished (CLOSED);
  warning           a warning rcfd raised (`ResourceWarning: ...`);
  drop              the harness dropped the FD (`OPEN`: its state before);
  interrupt         a harness raised an interrupt in rcfd, at that point
                    (`before-insert`): the thread's innermost call must end with it;
  registry          a registry's counts at the end (`main: initialized=1 ...`);
  anomaly           what a driver's own callback saw wrong.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    who: str  # the logical thread ("T1", "closer", "main"); "gc" for any other
    what: str
    detail: str = ""
    state: str = ""  # FD.state's name right after; "" unknown, "GONE" once dropped
    borrows: int = -1  # FD.borrow_count right after; -1 unknown
    at: float = 0.0  # time.monotonic() (a run's virtual clock under interleave-test)

    def line(self, index: int) -> str:
        where = f"  [{self.state}, borrows={self.borrows}]" if self.state else ""
        return f"  #{index:<3} {self.who:<9} {self.what} {self.detail}{where}"


class History:
    """The events of one run. `names` maps thread idents to logical names;
    `seam` says that rcfd's own steps are logged (so counts are exact);
    `on_closing` that the FD was given one."""

    def __init__(self, *, seam: bool = False, on_closing: bool = False) -> None:
        self.events: list[Event] = []
        self.names: dict[int, str] = {}
        self.seam = seam
        self.on_closing = on_closing
        self.lock: contextlib.AbstractContextManager[object] = threading.RLock()
        self.observe: Callable[[], tuple[str, int]] | None = None

    def who(self, tid: int | None = None) -> str:
        return self.names.get(threading.get_ident() if tid is None else tid, "gc")

    def log(self, what: str, detail: str = "", who: str | None = None) -> None:
        with self.lock:
            state, borrows = self.observe() if self.observe is not None else ("", -1)
            name = self.who() if who is None else who
            self.events.append(Event(name, what, detail, state, borrows, time.monotonic()))

    def timeline(self) -> str:
        return "\n".join(ev.line(i) for i, ev in enumerate(self.events))


@contextlib.contextmanager
def warnings_logged(history: History) -> Iterator[None]:
    """Every warning of the block, whichever thread warns, is an event of `history`."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, *_: history.log(
            "warning", f"{category.__name__}: {message}"
        )
        yield


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No cyclic garbage collection in the block (then as before)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
