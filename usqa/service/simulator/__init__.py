"""Ultrasound simulator: B-mode sweeps with degradations and physics-derived amenability labels.

Runtime code (numpy + OpenCV only): the live page plays its built-in cine from `simulate_cine`, and
`usqa simulate` writes data sets with `write_dataset`. docs/simulator.md explains the physics.
"""

from usqa.service.simulator.cine import SimulatedFrame, simulate_cine
from usqa.service.simulator.dataset import SimulationError, SimulationSummary, write_dataset
from usqa.service.simulator.degradations import DEGRADATION_KINDS, NO_DEGRADATION
from usqa.service.simulator.presets import ALL_PRESETS, PRESET_NAMES, PRESETS, Preset, get_preset

__all__ = [
    "ALL_PRESETS",
    "DEGRADATION_KINDS",
    "NO_DEGRADATION",
    "PRESETS",
    "PRESET_NAMES",
    "Preset",
    "SimulatedFrame",
    "SimulationError",
    "SimulationSummary",
    "get_preset",
    "simulate_cine",
    "write_dataset",
]
