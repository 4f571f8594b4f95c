from __future__ import annotations

import numpy as np
import pytest

from usqa.service.simulator.cine import Episode, render_frame, subject_sweep
from usqa.service.simulator.overlays import RESULTS_BOX_FROM, burn_in_overlays
from usqa.service.simulator.state import FrameState


def _state(preset: str = "linear_thyroid") -> tuple[FrameState, np.ndarray]:
    """A frame state at screen stage, and a copy of its clean image."""
    sweep = subject_sweep(1, preset, 0, 30, 128, 0.0)
    frame = sweep.widest_frame()
    state = sweep.state_at(frame)
    clean = render_frame(sweep, frame).image
    state.image = clean.copy()
    return state, clean


@pytest.mark.parametrize("severity", [0.2, 0.6, 1.0])
def test_overlays_hide_exactly_the_pixels_they_draw(severity: float) -> None:
    state, before = _state()
    visibility = burn_in_overlays(np.random.default_rng(0), state, severity)
    fan = state.scan.fan
    assert state.image is not None
    changed = (state.image != before) & fan
    assert changed.any()
    # Hidden pixels are drawn pixels; a drawn pixel may coincide with the echo's own grey level.
    assert not (changed & (visibility > 0)).any()
    assert (visibility[fan] == 0).sum() >= changed.sum()
    assert set(np.unique(visibility)) <= {0.0, 1.0}


def test_mild_overlays_stay_in_the_margins_and_leave_the_frame_amenable() -> None:
    sweep = subject_sweep(1, "transrectal_prostate", 0, 30, 128, 0.0)
    frame_index = sweep.widest_frame()
    frame = render_frame(
        sweep, frame_index, Episode(frame_index, frame_index + 1, "burned_in_overlay", 0.2, 0)
    )
    assert frame.visibility[frame.mask].min() > 0.5
    assert frame.amenable == 1 and frame.amenable_seg == 1


def test_the_results_box_only_comes_with_severe_overlays() -> None:
    def covered(severity: float) -> int:
        state, before = _state("transrectal_prostate")
        burn_in_overlays(np.random.default_rng(3), state, severity)
        assert state.image is not None
        return int(np.count_nonzero(state.image != before))

    assert covered(RESULTS_BOX_FROM + 0.1) > covered(RESULTS_BOX_FROM - 0.1) + 500
