from __future__ import annotations

import numpy as np
import pytest

from usqa.service.simulator.anatomy import MIN_SECTION_SCALE, OrganSection, SubjectProfile, draw_subject
from usqa.service.simulator.presets import PRESET_NAMES, PRESETS
from usqa.service.simulator.scan import ScanConverter, scan_converter


def _subject(preset: str, seed: int) -> tuple[SubjectProfile, ScanConverter]:
    scan = scan_converter(PRESETS[preset].probe, 128)
    return draw_subject("s000", PRESETS[preset], scan, np.random.default_rng(seed)), scan


def _organ() -> OrganSection:
    return OrganSection(
        centre_x=0.5,
        centre_y=3.0,
        semi_major=1.5,
        semi_minor=1.0,
        rotation=0.3,
        harmonic_amplitudes=(0.1, 0.05, 0.02),
        harmonic_phases=(0.4, 1.0, 2.0),
        capsule_cm=0.1,
    )


def test_about_sixty_percent_of_a_sweep_cuts_the_organ() -> None:
    positions = (np.arange(400) + 0.5) / 400
    shares = []
    for seed in range(30):
        subject, _ = _subject(PRESET_NAMES[seed % 3], seed)
        shares.append(np.mean([subject.organ_scale(t) > 0 for t in positions]))
    assert min(shares) > 0.5 and max(shares) < 0.7
    assert abs(np.mean(shares) - 0.6) < 0.03


def test_the_cross_section_grows_then_shrinks_smoothly() -> None:
    subject, _ = _subject("transrectal_prostate", 4)
    scales = np.array([subject.organ_scale(t) for t in np.linspace(0, 1, 200)])
    present = np.nonzero(scales)[0]
    assert np.all(np.diff(present) == 1), "one contiguous run of frames with the organ"
    run = scales[present]
    peak = int(np.argmax(run))
    assert np.all(np.diff(run[: peak + 1]) >= 0) and np.all(np.diff(run[peak:]) <= 0)
    assert run.min() >= MIN_SECTION_SCALE and run.max() > 0.99


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_organ_stays_inside_the_field_throughout_a_clean_sweep(preset: str) -> None:
    for seed in range(8):
        subject, scan = _subject(preset, seed)
        for t in np.linspace(0, 1, 41):
            organ = subject.organ_at(float(t))
            if organ is not None:
                x, y, _, _ = organ.area_points()
                bx, by, _ = organ.boundary_points()
                assert scan.in_field(x, y).all() and scan.in_field(bx, by).all()


def test_the_normalised_radius_is_one_on_the_boundary_and_zero_at_the_centre() -> None:
    organ = _organ()
    x, y, _ = organ.boundary_points()
    assert np.allclose(organ.normalised_radius(x, y), 1.0)
    assert organ.normalised_radius(np.array([0.5]), np.array([3.0]))[0] == pytest.approx(0.0)


def test_sample_weights_are_shares_and_area_points_lie_inside() -> None:
    organ = _organ()
    x, y, weights, rho = organ.area_points()
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    assert (organ.normalised_radius(x, y) < 1).all()
    assert np.allclose(organ.normalised_radius(x, y), rho)
    assert organ.boundary_points()[2].sum() == pytest.approx(1.0)


def test_subjects_come_from_their_own_generator() -> None:
    first, _ = _subject("linear_thyroid", 1)
    again, _ = _subject("linear_thyroid", 1)
    other, _ = _subject("linear_thyroid", 2)
    assert first.organ == again.organ and first.gain_db == again.gain_db
    assert np.array_equal(first.texture, again.texture)
    assert first.organ != other.organ
    # Subjects differ in the tissue itself, not just in the organ's place.
    assert first.background_echogenicity != other.background_echogenicity
    assert first.scatterer_density != other.scatterer_density
