"""Benchmarks for the performance targets; see bench/README.md.

Run with `python -m bench [all|assign|assign_many|metrics]`."""
