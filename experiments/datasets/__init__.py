"""Data-set checks: the cheap amenability ceiling (`python -m experiments.datasets.ceiling`, docs/data.md)."""
