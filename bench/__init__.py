"""Benchmarks for rcfd: `make bench` (see bench/run.py). Not part of the tests."""
