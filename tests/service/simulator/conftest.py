"""Shared simulated material: rendering is the slow part, so each set is made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from usqa.service.simulator import SimulatedFrame, simulate_cine, write_dataset
from usqa.service.simulator.presets import PRESET_NAMES, PRESETS

# Small but varied: every preset, every degradation kind several times, organ present and absent.
SAMPLE_FRAMES_PER_PRESET = 100
SAMPLE_SEED = 14  # one whose sweeps show every degradation kind


@pytest.fixture(scope="session")
def sample_frames() -> list[SimulatedFrame]:
    """A few hundred frames at default settings: three subjects' sweeps per preset."""
    frames: list[SimulatedFrame] = []
    for preset in PRESET_NAMES:
        for subject in range(3):
            frames.extend(
                simulate_cine(
                    preset,
                    SAMPLE_FRAMES_PER_PRESET // 3,
                    seed=SAMPLE_SEED,
                    subject_index=subject,
                    degraded_fraction=0.5,
                )
            )
    return frames


@pytest.fixture(scope="session")
def clean_frames() -> dict[str, list[SimulatedFrame]]:
    """Undegraded frames per preset (the held-out one too), for the physics and preset statistics."""
    return {
        preset: [
            frame
            for subject in range(2)
            for frame in simulate_cine(preset, 30, seed=5, subject_index=subject, degraded_fraction=0.0)
        ]
        for preset in PRESETS
    }


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data-set folder written once with one worker: 90 frames, 6 subjects, all presets."""
    out = tmp_path_factory.mktemp("simulated") / "data"
    write_dataset(out, frames=90, subjects=6, seed=3, size=64, preset="all", workers=1)
    return out
