"""Speed and footprint benchmarks: scripts run with `python -m bench.<name>`, not imported by usqa."""
