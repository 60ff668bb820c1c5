"""make bench's tables, on made-up rows: no timing is run or asserted here."""

from __future__ import annotations

from bench.run import Row, format_table, side_by_side


def test_a_figure_only_the_gil_path_has_shows_a_dash_for_the_other_path() -> None:
    # do()'s parts (bench/anatomy.py) are measured on the GIL path only.
    gil = [
        Row("1. fd.do(fn), ns/call", "150", "floor 70", "do/floor 2.14x", "<= 1.3x", False),
        Row("1. do()'s parts (bench/anatomy.py), ns/call", "150", "-", "no ident 1.45x", "-", None),
        Row("5. create+init+close, ns/FD", "2508", "naive 2612", "0.96x", "<= 1.0x", True),
    ]
    nogil = [gil[0], Row("5. create+init+close, ns/FD", "2600", "naive 2612", "1.00x", "", True)]
    lines = side_by_side(gil, nogil).splitlines()
    assert len(lines) == 2 + len(gil)
    assert lines[3].startswith("| 1. do()'s parts") and lines[3].rstrip(" |").endswith("-")
    assert "2600 (1.00x)" in lines[4]
    assert "| NO " in format_table(gil) and "| yes " in format_table(gil)
