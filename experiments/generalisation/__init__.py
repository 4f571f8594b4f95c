"""The generalisation benchmark: `python -m experiments.generalisation` (docs/results.md)."""
