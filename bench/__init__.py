"""Benchmarks: each runs as ``python -m bench.NAME`` (see the Makefile's bench-* targets)."""
