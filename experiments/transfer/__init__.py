"""The transfer study: `python -m experiments.transfer` (docs/transfer.md)."""
