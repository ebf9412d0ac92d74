"""Benchmarks for the performance targets of DESIGN.md; see bench/README.md.

Run with `python -m bench [all|assign|assign_many|metrics]`."""
