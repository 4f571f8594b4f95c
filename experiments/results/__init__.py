"""The Table-1 analogue (`python -m experiments.results`) and the preset timings (`python -m experiments.results.timing`)."""
