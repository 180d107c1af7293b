"""Renders BENCHMARKS.md; see bench/report.py."""
