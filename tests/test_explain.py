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


def test_violations_are_listed_in_the_order_they_happened() -> None:
    result = Replay(threads=["T1"], steps=5)
    result.violations += [
        Violation(5, "at #17: second"),
        Violation(6, "at the end: last"),
        Violation(2, "at #6: first"),
        Violation(5, "at #20: third"),
        Violation(5, "no event named: fourth"),
    ]
    broken = [line for line in render(result).splitlines() if line.startswith("BROKEN")]
    assert [line.rpartition(" ")[2] for line in broken] == [
        "first", "second", "third", "fourth", "last",
    ]  # fmt: skip
