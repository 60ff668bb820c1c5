"""Interleavings of the production FD's internal steps (Python 3.12+ only).

`harness` runs small programs (scenarios) under interleave-test's controlled
scheduler and checks the guarantees of specs/rcfd.md after every schedule;
`scenarios` lists the programs; `tools/explore.py` is the command-line runner.
"""
