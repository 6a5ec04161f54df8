"""Benchmarks, run by hand: `python -m bench.<name>`. Never part of the test suite."""
