"""Benchmarks and documentation figures: scripts run with `python -m bench.<name>`, not imported by usqa."""
