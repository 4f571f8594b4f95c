from __future__ import annotations

import cv2
import numpy as np
import pytest

from usqa.service.simulator import SimulatedFrame
from usqa.service.simulator.acoustics import (
    acquire,
    build_echogenicity,
    channel_visibility,
    complex_gaussian,
    organ_contrast_map,
    organ_screen_mask,
)
from usqa.service.simulator.cine import subject_sweep
from usqa.service.simulator.ground_truth import VISIBLE
from usqa.service.simulator.presets import PRESET_NAMES


def test_complex_gaussian_gives_rayleigh_speckle() -> None:
    real, imag = complex_gaussian(np.random.default_rng(0), (200, 200), np.float32(0.5))
    power = real**2 + imag**2
    assert power.mean() == pytest.approx(2 * 0.5**2, rel=0.03)
    envelope = np.sqrt(power)
    # Rayleigh: mean / standard deviation = sqrt(pi / (4 - pi)).
    assert envelope.mean() / envelope.std() == pytest.approx(np.sqrt(np.pi / (4 - np.pi)), rel=0.03)
    assert abs(np.corrcoef(real.ravel(), imag.ravel())[0, 1]) < 0.02


def test_the_organ_is_hypoechoic_with_a_brighter_capsule_in_the_echogenicity() -> None:
    sweep = subject_sweep(2, "transrectal_prostate", 0, 20, 128, 0.0)
    state = sweep.state_at(sweep.widest_frame())
    echo = build_echogenicity(state)
    assert state.organ is not None
    rho = state.organ.normalised_radius(state.scan.beam_x, state.scan.beam_y)
    inside, rim = rho < 0.7, (rho > 1 - state.organ.capsule_share) & (rho < 1)
    around = (rho > 1.1) & (rho < 1.5)
    assert echo[inside].mean() < 0.5 * echo[around].mean() < echo[rim].mean()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_organ_looks_darker_than_its_surroundings_in_clean_frames(
    preset: str, clean_frames: dict[str, list[SimulatedFrame]]
) -> None:
    differences = []
    for frame in clean_frames[preset]:
        if not frame.label:
            continue
        kernel = np.ones((7, 7), np.uint8)
        inner = cv2.erode(frame.mask.astype(np.uint8), kernel) > 0
        ring = (cv2.dilate(frame.mask.astype(np.uint8), kernel, iterations=2) > 0) & ~frame.mask
        ring &= frame.image > 0
        if inner.sum() > 20:
            differences.append(frame.image[ring].mean() - frame.image[inner].mean())
    assert len(differences) >= 10
    assert np.mean(differences) > 15
    assert np.mean(np.array(differences) > 0) > 0.9


def test_attenuation_darkens_the_deep_field_where_tgc_only_partly_compensates(
    clean_frames: dict[str, list[SimulatedFrame]],
) -> None:
    frames = [f for f in clean_frames["curvilinear_abdomen"] if not f.label]
    image = np.mean([f.image.astype(np.float32) for f in frames], axis=0)
    rows = np.nonzero((image > 0).any(axis=1))[0]
    depth = rows[-1] - rows[0]
    middle = image[rows[0] + depth // 3 : rows[0] + depth // 2]
    deep = image[rows[-1] - depth // 6 : rows[-1]]
    assert deep[deep > 0].mean() < middle[middle > 0].mean() - 10


def test_the_mask_is_the_rendered_organ_inside_the_field() -> None:
    sweep = subject_sweep(2, "linear_thyroid", 0, 20, 128, 0.0)
    state = sweep.state_at(sweep.widest_frame())
    mask = organ_screen_mask(state.scan, state.organ)
    assert mask.any() and not (mask & ~state.scan.fan).any()
    assert state.organ is not None
    inside = state.organ.normalised_radius(state.scan.pixel_x, state.scan.pixel_y) < 1
    assert np.array_equal(mask, inside & state.scan.fan)


def test_a_clean_channel_shows_most_of_the_field_and_noise_hides_it() -> None:
    sweep = subject_sweep(2, "transrectal_prostate", 0, 20, 128, 0.0)
    state = sweep.state_at(3)
    fan = state.scan.fan
    clean = channel_visibility(state)
    assert clean.shape == fan.shape and clean.min() >= 0 and clean.max() <= 1
    assert (clean[fan] >= VISIBLE).mean() > 0.95
    assert clean[~fan].max() == 0
    state.extra_noise_db = 50.0
    assert (channel_visibility(state)[fan] >= VISIBLE).mean() < 0.3


def test_organ_contrast_on_screen_shrinks_under_low_gain() -> None:
    sweep = subject_sweep(2, "transrectal_prostate", 0, 20, 128, 0.0)
    state = sweep.state_at(sweep.widest_frame())
    mask = organ_screen_mask(state.scan, state.organ)
    before = organ_contrast_map(state)[mask].mean()
    state.gain_db -= 35
    assert organ_contrast_map(state)[mask].mean() < before - 3


def test_acquisition_is_exact_for_a_generator_seed() -> None:
    sweep = subject_sweep(2, "curvilinear_abdomen", 0, 20, 64, 0.0)
    first = acquire(sweep.state_at(5), np.random.default_rng(9))
    again = acquire(sweep.state_at(5), np.random.default_rng(9))
    other = acquire(sweep.state_at(5), np.random.default_rng(10))
    assert first.dtype == np.uint8 and first.shape == (sweep.scan.n_depth, sweep.scan.n_lines)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
