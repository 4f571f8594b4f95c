from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from usqa.service.simulator import SimulatedFrame
from usqa.service.simulator.presets import (
    ALL_PRESETS,
    PRESET_NAMES,
    PRESETS,
    get_preset,
    preset_for_subject,
)
from usqa.service.simulator.scan import scan_converter


def test_presets_cover_the_three_clinical_settings() -> None:
    assert set(PRESET_NAMES) == {"transrectal_prostate", "linear_thyroid", "curvilinear_abdomen"}
    assert PRESETS["linear_thyroid"].probe.kind == "linear"
    assert PRESETS["transrectal_prostate"].probe.kind == PRESETS["curvilinear_abdomen"].probe.kind == "sector"


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["linear_thyroid"].dynamic_range_db = 1.0  # type: ignore[misc]


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of transrectal_prostate"):
        get_preset("cardiac")


def test_all_gives_each_preset_an_even_share_of_subjects() -> None:
    names = [preset_for_subject(ALL_PRESETS, i).name for i in range(9)]
    assert all(names.count(name) == 3 for name in PRESET_NAMES)
    assert preset_for_subject("linear_thyroid", 4).name == "linear_thyroid"


def _field_statistics(frames: list[SimulatedFrame], preset: str) -> tuple[float, float, float]:
    """Mean grey level, mean spread and lateral speckle correlation (lag 2) inside the field."""
    inner = cv2.erode(scan_converter(PRESETS[preset].probe, 128).fan.astype(np.uint8), np.ones((9, 9))) > 0
    pair = inner[:, :-2] & inner[:, 2:]
    means, spreads, grains = [], [], []
    for frame in frames:
        image = frame.image.astype(np.float32)
        means.append(image[inner].mean())
        spreads.append(image[inner].std())
        # Speckle grain: how alike pixels two columns apart are, once the large-scale texture is removed.
        speckle = image - cv2.GaussianBlur(image, (0, 0), 4)
        grains.append(np.corrcoef(speckle[:, :-2][pair], speckle[:, 2:][pair])[0, 1])
    return float(np.mean(means)), float(np.mean(spreads)), float(np.mean(grains))


def test_presets_have_visibly_different_intensity_statistics(
    clean_frames: dict[str, list[SimulatedFrame]],
) -> None:
    stats = {preset: _field_statistics(frames, preset) for preset, frames in clean_frames.items()}
    prostate, thyroid, abdomen = (stats[p] for p in PRESET_NAMES)
    # Brightness: the thyroid's background is brightest, the attenuating abdomen darkest.
    assert thyroid[0] > prostate[0] + 15 > abdomen[0] + 30
    # Every preset is speckled (a flat shape would have a small spread).
    assert min(s[1] for s in stats.values()) > 15
    # Grain: the high-frequency linear array is finest, the low-frequency convex array coarsest.
    assert thyroid[2] + 0.05 < prostate[2] < abdomen[2] - 0.03
