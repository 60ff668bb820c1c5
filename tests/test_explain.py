"""tools/explain.py: how `make explain` prints what broke."""

from __future__ import annotations

from mutants._harness import Replay, Violation
from tools.explain import render


def test_a_violation_that_says_where_it_happened_says_it_once() -> None:
    # The end-of-run checks (model.guarantees.seen_the_run_ends_settled) begin
    # their messages with "at the end:", as the line's own prefix does.
    result = Replay(threads=["T1"], steps=2, timeline="  #0 ...")
    result.violations += [
        Violation(3, "at the end: close_func ran 0x, expected 1 (guarantee 1)"),
        Violation(3, "close(none) never returned"),
        Violation(2, "at #4: a borrow began after the close"),
    ]
    lines = render(result).splitlines()
    assert "BROKEN at the end: close_func ran 0x, expected 1 (guarantee 1)" in lines
    assert "BROKEN at the end: close(none) never returned" in lines
    assert "BROKEN at step 2: at #4: a borrow began after the close" in lines
