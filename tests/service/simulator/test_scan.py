from __future__ import annotations

import numpy as np
import pytest

from usqa.service.simulator import SimulatedFrame
from usqa.service.simulator.presets import PRESETS, ProbeGeometry
from usqa.service.simulator.scan import scan_converter


def test_scan_converter_is_built_once_per_probe_and_size() -> None:
    probe = PRESETS["transrectal_prostate"].probe
    assert scan_converter(probe, 96) is scan_converter(probe, 96)
    assert scan_converter(probe, 96) is not scan_converter(probe, 128)


def test_cached_maps_are_read_only() -> None:
    scan = scan_converter(PRESETS["linear_thyroid"].probe, 64)
    with pytest.raises(ValueError):
        scan.fan[0, 0] = True


@pytest.mark.parametrize("preset", list(PRESETS))
def test_outside_the_field_is_black_in_clean_frames(
    preset: str, clean_frames: dict[str, list[SimulatedFrame]]
) -> None:
    fan = scan_converter(PRESETS[preset].probe, 128).fan
    assert 0.3 < fan.mean() < 0.95
    for frame in clean_frames[preset]:
        assert frame.image[~fan].max() == 0
        assert frame.image[fan].mean() > 40


def test_sector_has_its_apex_on_top_and_widens_with_depth() -> None:
    fan = scan_converter(PRESETS["curvilinear_abdomen"].probe, 128).fan
    rows = np.nonzero(fan.any(axis=1))[0]
    widths = fan.sum(axis=1)
    top, middle = rows[0] + 2, (rows[0] + rows[-1]) // 2
    assert widths[top] < widths[middle]
    # The fan is centred: left and right halves mirror each other.
    assert np.array_equal(fan, fan[:, ::-1])


def test_linear_field_is_a_rectangle() -> None:
    fan = scan_converter(PRESETS["linear_thyroid"].probe, 128).fan
    rows, cols = np.nonzero(fan)
    assert fan[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_every_beam_sample_lands_inside_the_field_on_screen() -> None:
    scan = scan_converter(PRESETS["transrectal_prostate"].probe, 128)
    assert scan.in_field(scan.beam_x, scan.beam_y).all()
    cols, rows = scan.to_pixels(scan.beam_x, scan.beam_y)
    assert cols.min() > -1 and rows.min() > -1 and cols.max() < 128 and rows.max() < 128


def test_edge_distance_and_lateral_shift_agree_with_the_field() -> None:
    scan = scan_converter(PRESETS["transrectal_prostate"].probe, 128)
    x, y = 0.0, 3.0
    distance = scan.edge_distance(x, y)
    assert distance > 0
    inside = scan.lateral_shift(x, y, 0.5 * distance)
    assert scan.in_field(np.array(inside[0]), np.array(inside[1]))
    far = scan.lateral_shift(x, y, 10.0)
    assert not scan.in_field(np.array(far[0]), np.array(far[1]))


def test_tiny_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        scan_converter(ProbeGeometry(kind="linear", depth_cm=4, width_cm=4), 8)
