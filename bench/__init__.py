"""Benchmarks run by hand (``python -m bench.NAME``); figures go to docs/PERFORMANCE.md."""
