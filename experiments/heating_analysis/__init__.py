"""The heated-backbone analysis: `python -m experiments.heating_analysis` (docs/heating.md)."""
