"""Probes of the predictor and controller recipe on a development data set (docs/recipe.md)."""
