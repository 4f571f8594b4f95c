"""Degradations: what goes wrong in a scan, each with a severity in [0, 1] and a visibility map.

Every degradation is a function `(rng, state, severity) -> visibility` that changes the frame state at
its stage (anatomy before the echo is simulated, beam space before acquisition, screen after scan
conversion) and returns a screen map in [0, 1] of how much tissue information survives per pixel. The
generator is the degradation's own, so its placement is exact for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from usqa.service.simulator.acoustics import channel_visibility
from usqa.service.simulator.overlays import burn_in_overlays
from usqa.service.simulator.state import FrameState

NO_DEGRADATION = "none"
# Severities drawn for degraded frames: from barely visible to as bad as it gets.
SEVERITY_RANGE = (0.15, 1.0)

# Acoustic shadow: echo lost below the reflector at severity 0 and 1 (dB), the reflector's brightness, and
# how often the first shadow is cast over the organ (a calcification or gas in front of it).
SHADOW_LOSS_DB = (12.0, 50.0)
SHADOW_REFLECTOR_BRIGHTNESS = (6.0, 14.0)
SHADOW_OVER_ORGAN_PROBABILITY = 0.7
# Lost contact: share of the scan lines lost (at severity 0 and 1) and the echo lost on them (dB).
CONTACT_LOST_LINES = (0.12, 0.62)
CONTACT_LOSS_DB = (20.0, 45.0)
# Gain turned down by up to this much (dB) at full severity.
LOW_GAIN_MAX_DB = 30.0
# Electronic noise raised by up to this much above the preset's floor (dB).
NOISE_MAX_DB = 55.0
# Motion blur length at full severity, as a share of the frame size; and the length (share of size) at
# which half of the local detail is gone.
MOTION_BLUR_MAX_SHARE = 0.14
MOTION_BLUR_HALF_DETAIL_SHARE = 0.25
# Reverberation band brightness relative to average tissue (dB) at severity 0 and 1.
REVERBERATION_DB = (0.0, 15.0)
# Partial view: share of the organ's area pushed out of the field at severity 0 and 1.
PARTIAL_VIEW_CUT = (0.08, 0.6)


class Stage(StrEnum):
    """When a degradation acts on the frame."""

    ANATOMY = "anatomy"
    BEAM = "beam"
    SCREEN = "screen"


DegradationFn = Callable[[np.random.Generator, FrameState, float], np.ndarray]


@dataclass(frozen=True)
class Degradation:
    kind: str
    stage: Stage
    apply: DegradationFn
    # Only meaningful when the organ is in the frame (a partial view of nothing is no view at all).
    needs_organ: bool = False


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    """0 at x <= 0, 1 at x >= 1, smooth in between: soft edges for shadows and lost lines."""
    return (0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0, 1))).astype(np.float32)


def _organ_lines(state: FrameState) -> tuple[float, float, float]:
    """Centre line, half width (lines) and top row of the organ in beam space."""
    assert state.organ is not None
    x, y, _ = state.organ.boundary_points(64)
    lines = state.scan.line_position(x, y)
    rows = state.scan.depth_position(x, y)
    centre = float(state.scan.line_position(np.array(state.organ.centre_x), np.array(state.organ.centre_y)))
    return centre, float(lines.max() - lines.min()) / 2, float(rows.min())


def cast_shadow(
    state: FrameState,
    centre_line: float,
    width_lines: float,
    reflector_row: float,
    loss_db: float,
    reflector_brightness: float = 10.0,
) -> None:
    """A bright convex reflector at `reflector_row` and the shadow it casts along its scan lines."""
    n_depth, n_lines = state.beam_shape
    lines = np.arange(n_lines, dtype=np.float32)
    half = max(width_lines / 2, 0.5)
    edge = 1.5
    lateral = _raised_cosine((half + edge - np.abs(lines - centre_line)) / edge)
    # The reflector bulges towards the probe in the middle, like a calcification or a gas bubble.
    surface = reflector_row + 0.25 * half * ((lines - centre_line) / half) ** 2
    rows = np.arange(n_depth, dtype=np.float32)[:, None]
    thickness = max(1.5, 0.02 * n_depth)
    on_reflector = (rows >= surface) & (rows < surface + thickness)
    below = _raised_cosine((rows - surface - thickness) / 2)
    transmission = state.transmission_or_ones()
    transmission *= np.power(np.float32(10), -loss_db * below * lateral / 20)
    if state.echogenicity is not None:
        state.echogenicity *= np.where(on_reflector, 1 + (reflector_brightness - 1) * lateral, 1).astype(
            np.float32
        )


def acoustic_shadow(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Dark band(s) along the scan lines below a strong reflector."""
    n_depth, n_lines = state.beam_shape
    count = 2 if severity > 0.6 and rng.random() < 0.5 else 1
    for k in range(count):
        width = (0.08 + 0.3 * severity) * n_lines * rng.uniform(0.8, 1.2) / (k + 1)
        if k == 0 and state.organ is not None and rng.random() < SHADOW_OVER_ORGAN_PROBABILITY:
            centre, half_width, top_row = _organ_lines(state)
            centre += rng.normal(0, 0.6) * half_width
            row = rng.uniform(0.35, 0.85) * max(top_row, 2.0)
        else:
            centre = rng.uniform(0.1, 0.9) * n_lines
            row = rng.uniform(0.15, 0.6) * n_depth
        brightness = rng.uniform(*SHADOW_REFLECTOR_BRIGHTNESS)
        loss_db = SHADOW_LOSS_DB[0] + (SHADOW_LOSS_DB[1] - SHADOW_LOSS_DB[0]) * severity
        cast_shadow(state, centre, width, row, loss_db, brightness)
    return channel_visibility(state)


def contact_loss(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """One side of the array loses skin contact: its scan lines carry almost no echo, only air ringing."""
    n_depth, n_lines = state.beam_shape
    share = CONTACT_LOST_LINES[0] + (CONTACT_LOST_LINES[1] - CONTACT_LOST_LINES[0]) * severity
    lines = np.arange(n_lines, dtype=np.float32)
    if rng.random() < 0.5:
        lines = lines[::-1].copy()
    lost = _raised_cosine((share * n_lines - lines) / 4 + 0.5)
    loss_db = CONTACT_LOSS_DB[0] + (CONTACT_LOSS_DB[1] - CONTACT_LOSS_DB[0]) * severity
    transmission = state.transmission_or_ones()
    transmission *= np.power(np.float32(10), -loss_db * lost / 20)[None, :]
    # Air between the array and the skin rings: bright lines close to the face on the lost lines.
    rows = np.arange(n_depth, dtype=np.float32)[:, None]
    spacing = rng.uniform(0.03, 0.05) * n_depth
    ringing = sum(0.8 * 0.6**k * np.exp(-0.5 * ((rows - k * spacing) / 0.8) ** 2) for k in range(1, 5))
    clutter = state.clutter_or_zeros()
    clutter += (ringing * lost[None, :]).astype(np.float32)
    return channel_visibility(state)


def low_gain(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Overall gain set too low: the deep field and the dark organ sink below the display's black."""
    state.gain_db -= LOW_GAIN_MAX_DB * severity * float(rng.uniform(0.9, 1.0))
    return channel_visibility(state)


def electronic_noise(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Strong receiver noise (interference, a failing cable): low SNR, worst deep where TGC amplifies it."""
    state.extra_noise_db += NOISE_MAX_DB * severity * float(rng.uniform(0.9, 1.0))
    return channel_visibility(state)


def reverberation(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Repeated bright bands near the face: echoes bouncing between the array and a strong interface."""
    n_depth, n_lines = state.beam_shape
    spacing = rng.uniform(0.07, 0.11) * n_depth
    count = 2 + round(5 * severity)
    low, high = REVERBERATION_DB
    amplitude = 10 ** ((low + (high - low) * severity) / 20)
    rows = np.arange(n_depth, dtype=np.float32)[:, None]
    width = max(0.7, 0.01 * n_depth)
    bands = sum(0.85**k * np.exp(-0.5 * ((rows - k * spacing) / width) ** 2) for k in range(1, count + 1))
    haze = 0.2 * np.exp(-rows / (count * spacing))
    lines = np.arange(n_lines, dtype=np.float32)[None, :]
    centre = rng.uniform(0.3, 0.7) * n_lines
    lateral = 1 - 0.5 * ((lines - centre) / n_lines) ** 2
    clutter = state.clutter_or_zeros()
    clutter += (amplitude * (bands + haze) * lateral).astype(np.float32)
    return channel_visibility(state)


def motion_kernel(length_px: float, angle: float) -> np.ndarray:
    """A normalised line kernel of `length_px` pixels at `angle` (radians)."""
    # Pixel centres from one end to the other: a length of L pixels covers L pixels along the line.
    reach = max(0.0, (length_px - 1) / 2)
    half = int(np.ceil(reach))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    steps = np.linspace(-reach, reach, max(2, int(4 * length_px)))
    cols = np.rint(half + steps * np.cos(angle)).astype(int)
    rows = np.rint(half + steps * np.sin(angle)).astype(int)
    np.add.at(kernel, (rows, cols), 1.0)
    return kernel / kernel.sum()


def motion_blur(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """Tissue or probe moved during the frame: the picture inside the field smears along one direction."""
    assert state.image is not None
    scan = state.scan
    length = 1 + severity * MOTION_BLUR_MAX_SHARE * scan.size
    kernel = motion_kernel(length, float(rng.uniform(0, np.pi)))
    fan = scan.fan.astype(np.float32)
    # Normalised convolution: the field's black surround must not bleed into its edges.
    weight = cv2.filter2D(fan, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    smeared = cv2.filter2D(state.image.astype(np.float32) * fan, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    smeared = smeared / np.maximum(weight, np.float32(1e-3))
    state.image = np.where(scan.fan, np.clip(smeared + 0.5, 0, 255), state.image).astype(np.uint8)
    state.blur_length_px = float(length)
    detail = 1 / (1 + (length / (MOTION_BLUR_HALF_DETAIL_SHARE * scan.size)) ** 2)
    return fan * np.float32(detail)


def partial_view(rng: np.random.Generator, state: FrameState, severity: float) -> np.ndarray:
    """The organ sits at the edge of the field, which cuts part of it off."""
    scan, organ = state.scan, state.organ
    if organ is None:
        return scan.fan.astype(np.float32)
    low, high = PARTIAL_VIEW_CUT
    target = low + (high - low) * severity
    side = 1.0 if rng.random() < 0.5 else -1.0
    x, y, weights, _ = organ.area_points(8, 48)
    reach = 2 * (scan.edge_distance(organ.centre_x, organ.centre_y) + organ.extent_cm)
    moved = organ
    for shift in np.linspace(0, reach, 64):
        cx, cy = scan.lateral_shift(organ.centre_x, organ.centre_y, side * float(shift))
        inside = scan.in_field(x + (cx - organ.centre_x), y + (cy - organ.centre_y))
        outside = float(weights[~inside].sum())
        moved = organ.moved_to(cx, cy)
        if outside >= target:
            break
    state.organ = moved
    return scan.fan.astype(np.float32)


DEGRADATIONS: dict[str, Degradation] = {
    d.kind: d
    for d in (
        Degradation("acoustic_shadow", Stage.BEAM, acoustic_shadow),
        Degradation("contact_loss", Stage.BEAM, contact_loss),
        Degradation("low_gain", Stage.BEAM, low_gain),
        Degradation("electronic_noise", Stage.BEAM, electronic_noise),
        Degradation("motion_blur", Stage.SCREEN, motion_blur),
        Degradation("reverberation", Stage.BEAM, reverberation),
        Degradation("burned_in_overlay", Stage.SCREEN, burn_in_overlays),
        Degradation("partial_view", Stage.ANATOMY, partial_view, needs_organ=True),
    )
}
DEGRADATION_KINDS: tuple[str, ...] = tuple(DEGRADATIONS)
