"""B-mode physics in beam space: echogenicity -> speckle -> PSF -> attenuation, noise, TGC -> log compression.

The same channel model (attenuation, transmission, gain, noise, clutter) also gives, without any random
numbers, the expected echo and noise levels per sample; ground truth reads visibility and the organ's
contrast from those levels, so labels follow the physics rather than a severity threshold.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from usqa.service.simulator.anatomy import OrganSection
from usqa.service.simulator.ground_truth import CONTRAST_SAMPLE_RADIUS, FULL_VISIBILITY_DB
from usqa.service.simulator.scan import ScanConverter
from usqa.service.simulator.state import FrameState

# Echogenicity factors of a vessel's blood (nearly anechoic) and of its wall.
VESSEL_LUMEN = 0.0005
VESSEL_WALL = 2.5
VESSEL_WALL_CM = 0.05
# Depth shift (beam rows) of the reverberation replica relative to the echo it copies.
CLUTTER_SHIFT_ROWS = 3
# Kernel half-width in sigmas: enough of the Gaussian tail that the speckle grain is not boxy.
PSF_HALF_WIDTH_SIGMAS = 3.0
# Post-detection smoothing of the envelope, as a share of the PSF's sigmas (the scanner's video filter
# follows its resolution).
POST_DETECTION_SHARE = 0.5
# Strong point reflectors (fibres, microcalcifications): share of scatterers and amplitude factor.
BRIGHT_SCATTERER_SHARE = 0.004
BRIGHT_SCATTERER_GAIN = 4.0


def beam_box(scan: ScanConverter, x: float, y: float, radius: float) -> tuple[slice, slice] | None:
    """Beam rows and lines that a disc (physical centre and radius, cm) can touch; None if it misses."""
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    xs = np.concatenate([[x], x + radius * np.cos(angle)])
    ys = np.concatenate([[y], y + radius * np.sin(angle)])
    rows = scan.depth_position(xs, ys)
    lines = scan.line_position(xs, ys)
    r0, r1 = max(0, int(np.floor(rows.min())) - 1), min(scan.n_depth, int(np.ceil(rows.max())) + 2)
    l0, l1 = max(0, int(np.floor(lines.min())) - 1), min(scan.n_lines, int(np.ceil(lines.max())) + 2)
    if r0 >= r1 or l0 >= l1:
        return None
    return slice(r0, r1), slice(l0, l1)


def screen_box(scan: ScanConverter, x: float, y: float, radius: float) -> tuple[slice, slice] | None:
    """Screen rows and columns that a disc (physical) can touch; None if it is off the screen."""
    col, row = scan.to_pixels(np.array([x]), np.array([y]))
    reach = radius * scan.px_per_cm + 2
    c0, c1 = max(0, int(col[0] - reach)), min(scan.size, int(np.ceil(col[0] + reach)) + 1)
    r0, r1 = max(0, int(row[0] - reach)), min(scan.size, int(np.ceil(row[0] + reach)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def organ_screen_mask(scan: ScanConverter, organ: OrganSection | None) -> np.ndarray:
    """The organ's pixels on screen (inside the field of view): the segmentation mask."""
    mask = np.zeros((scan.size, scan.size), bool)
    if organ is None:
        return mask
    box = screen_box(scan, organ.centre_x, organ.centre_y, organ.extent_cm)
    if box is not None:
        inside = organ.normalised_radius(scan.pixel_x[box], scan.pixel_y[box]) < 1
        mask[box] = inside & scan.fan[box]
    return mask


def _layer_profile(state: FrameState) -> np.ndarray:
    depth = state.scan.depth_cm
    profile = np.ones_like(depth)
    for layer in state.subject.preset.layers:
        profile[(depth >= layer.start_cm) & (depth < layer.stop_cm)] *= layer.factor
    return profile


def build_echogenicity(state: FrameState) -> np.ndarray:
    """Tissue echogenicity over the beam grid: background, layers, vessels and the organ with its capsule."""
    scan, subject = state.scan, state.subject
    echo = subject.texture_at(state.sweep_position, state.beam_shape)
    echo *= subject.background_echogenicity * _layer_profile(state)
    for vessel in state.vessels:
        box = beam_box(scan, vessel.centre_x, vessel.centre_y, vessel.radius + VESSEL_WALL_CM)
        if box is None:
            continue
        distance = np.hypot(scan.beam_x[box] - vessel.centre_x, scan.beam_y[box] - vessel.centre_y)
        patch = echo[box]
        patch[distance < vessel.radius + VESSEL_WALL_CM] *= VESSEL_WALL
        patch[distance < vessel.radius] *= VESSEL_LUMEN / VESSEL_WALL
    organ = state.organ
    if organ is not None:
        box = beam_box(scan, organ.centre_x, organ.centre_y, organ.extent_cm)
        if box is not None:
            rho = organ.normalised_radius(scan.beam_x[box], scan.beam_y[box])
            # Inside: darker than the surroundings (the core differs again); the capsule rim: brighter.
            factor = np.where(rho < 1, np.float32(subject.organ_contrast), np.float32(1))
            factor[rho < subject.preset.organ_core_fraction] *= subject.core_factor
            factor[(rho >= 1 - organ.capsule_share) & (rho < 1)] = subject.capsule_brightness
            echo[box] *= factor
    state.echogenicity = echo
    return echo


@lru_cache(maxsize=64)
def _psf(axial_sigma: float, lateral_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Separable Gaussian PSF kernels, scaled so that mean speckle power equals the echogenicity."""

    def kernel(sigma: float) -> np.ndarray:
        half = max(1, int(np.ceil(PSF_HALF_WIDTH_SIGMAS * sigma)))
        return cv2.getGaussianKernel(2 * half + 1, sigma, cv2.CV_32F)

    axial, lateral = kernel(axial_sigma), kernel(lateral_sigma)
    energy = float((axial**2).sum() * (lateral**2).sum())
    return axial, (lateral / np.sqrt(energy)).astype(np.float32)


def _channel_db(state: FrameState) -> tuple[np.ndarray, np.ndarray]:
    """Per beam row: round-trip attenuation (dB, negative) and time-gain compensation (dB, positive)."""
    preset = state.subject.preset
    attenuation = -preset.attenuation_db_per_cm * state.scan.depth_cm
    return attenuation, -state.subject.tgc_compensation * attenuation


def _db_to_amplitude(db: np.ndarray | float) -> np.ndarray:
    return np.power(np.float32(10), np.asarray(db, np.float32) / 20)


def acquire(state: FrameState, rng: np.random.Generator) -> np.ndarray:
    """Simulate the echo over the beam grid and return the log-compressed beam image (uint8)."""
    scan, subject = state.scan, state.subject
    preset = subject.preset
    echo = state.echogenicity if state.echogenicity is not None else build_echogenicity(state)
    shape = state.beam_shape

    # Complex Gaussian scatterers, sparse when density < 1; amplitude so E|z|^2 equals the echogenicity.
    density = subject.scatterer_density
    occupancy = rng.random(shape, dtype=np.float32)
    weight = np.where(occupancy < density, np.float32(np.sqrt(0.5 / density)), np.float32(0))
    weight[occupancy > 1 - BRIGHT_SCATTERER_SHARE] *= BRIGHT_SCATTERER_GAIN
    scatter_real, scatter_imag = complex_gaussian(rng, shape, np.sqrt(echo) * weight)

    # The point spread function: separable, short axially, wider laterally; real and imaginary alike.
    grain = scan.samples_per_px
    axial, lateral = _psf(preset.speckle_axial_px * grain, preset.speckle_lateral_px * grain)
    echo_real = cv2.sepFilter2D(scatter_real, -1, lateral, axial, borderType=cv2.BORDER_REFLECT)
    echo_imag = cv2.sepFilter2D(scatter_imag, -1, lateral, axial, borderType=cv2.BORDER_REFLECT)

    # Attenuation and lost transmission act on the echo; electronic noise joins at the receiver; TGC and
    # gain then amplify both, which is why noise grows with depth on screen.
    attenuation_db, tgc_db = _channel_db(state)
    echo_gain = _db_to_amplitude(attenuation_db + tgc_db + state.gain_db)
    if state.transmission is not None:
        echo_gain = echo_gain * state.transmission
    noise_gain = _db_to_amplitude(preset.noise_floor_db + state.extra_noise_db + tgc_db + state.gain_db)
    real, imag = complex_gaussian(rng, shape, noise_gain * np.float32(np.sqrt(0.5)))
    real += echo_real * echo_gain
    imag += echo_imag * echo_gain
    if state.clutter is not None:
        # Reverberation repeats the echoes it bounces between: a shifted copy, scaled by the clutter map.
        clutter_gain = state.clutter * _db_to_amplitude(state.gain_db)
        real += np.roll(echo_real, CLUTTER_SHIFT_ROWS, axis=0) * clutter_gain
        imag += np.roll(echo_imag, CLUTTER_SHIFT_ROWS, axis=0) * clutter_gain

    envelope = cv2.magnitude(real, imag)
    # The scanner's own post-detection smoothing fills the deepest speckle nulls, as on a real screen.
    envelope = cv2.GaussianBlur(
        envelope,
        (0, 0),
        sigmaX=POST_DETECTION_SHARE * preset.speckle_lateral_px * grain,
        sigmaY=POST_DETECTION_SHARE * preset.speckle_axial_px * grain,
    )
    np.maximum(envelope, np.float32(1e-6), out=envelope)
    # Log compression: average tissue at unit gain lands at the preset's display level.
    scale = np.float32(20 / np.log(10) * 255 / preset.dynamic_range_db)
    display = cv2.log(envelope) * scale + np.float32(255 * preset.tissue_display_level)
    return np.clip(display, 0, 255).astype(np.uint8)


def complex_gaussian(
    rng: np.random.Generator, shape: tuple[int, int], scale: np.ndarray | np.floating | float
) -> tuple[np.ndarray, np.ndarray]:
    """Circular complex Gaussian samples times `scale` (broadcast to `shape`): real and imaginary planes.

    Box-Muller on OpenCV's vectorised log and polar transform: the magnitude sqrt(-2 ln u) is Rayleigh,
    the phase uniform, so E|z|^2 = 2 scale^2. Several times faster than `standard_normal` at this size.
    """
    uniform = rng.random((2, *shape), dtype=np.float32)
    magnitude = cv2.log(np.float32(1) - uniform[0])
    magnitude *= np.float32(-2)
    magnitude = np.ascontiguousarray(cv2.sqrt(magnitude) * scale, dtype=np.float32)
    real, imag = cv2.polarToCart(magnitude, uniform[1] * np.float32(2 * np.pi))
    return real, imag


def _displayed_db(amplitude: np.ndarray, dynamic_range_db: float, level: float) -> np.ndarray:
    """Where an echo of this (expected) amplitude lands on screen, in dB above black (0 .. dynamic range)."""
    floored = np.ascontiguousarray(np.maximum(amplitude, np.float32(1e-9)), dtype=np.float32)
    db = cv2.log(floored) * np.float32(20 / np.log(10))
    return np.clip(db + level * dynamic_range_db, 0, dynamic_range_db)


def _expected_levels(state: FrameState) -> tuple[np.ndarray, np.ndarray]:
    """Expected tissue echo amplitude and noise-plus-clutter amplitude per beam sample, after TGC and gain.

    Without shadows, lost lines or clutter the channel only varies with depth: one column then stands
    for every scan line, which keeps the common (clean) case cheap.
    """
    subject = state.subject
    preset = subject.preset
    attenuation_db, tgc_db = _channel_db(state)
    tissue = np.sqrt(np.float32(subject.background_echogenicity)) * _db_to_amplitude(
        attenuation_db + tgc_db + state.gain_db
    )
    if state.transmission is not None:
        tissue = tissue * state.transmission
    noise = _db_to_amplitude(preset.noise_floor_db + state.extra_noise_db + tgc_db + state.gain_db)
    if state.clutter is not None:
        clutter = state.clutter * np.float32(
            np.sqrt(subject.background_echogenicity) * _db_to_amplitude(state.gain_db)
        )
        noise = np.hypot(noise, clutter)
    return tissue, noise


def _to_screen(state: FrameState, beam_map: np.ndarray) -> np.ndarray:
    full = np.broadcast_to(beam_map.astype(np.float32), state.beam_shape)
    return state.scan.to_screen_nearest(np.ascontiguousarray(full))


def channel_visibility(state: FrameState) -> np.ndarray:
    """Screen map in [0, 1]: how far average tissue stands above noise, clutter and black on screen."""
    preset = state.subject.preset
    tissue, noise = _expected_levels(state)
    dr, level = preset.dynamic_range_db, preset.tissue_display_level
    height = _displayed_db(np.hypot(tissue, noise), dr, level) - _displayed_db(noise, dr, level)
    return _to_screen(state, np.clip(height / FULL_VISIBILITY_DB, 0, 1))


def organ_echo_ratio(state: FrameState) -> float:
    """Mean echogenicity of the organ's inside relative to the surrounding tissue (core included)."""
    subject = state.subject
    core_share = min(1.0, (subject.preset.organ_core_fraction / CONTRAST_SAMPLE_RADIUS) ** 2)
    return subject.organ_contrast * (core_share * subject.core_factor + 1 - core_share)


def organ_contrast_map(state: FrameState) -> np.ndarray:
    """Screen map: how much darker (displayed dB) the organ would look than tissue around it, given the channel."""
    preset = state.subject.preset
    tissue, noise = _expected_levels(state)
    dr, level = preset.dynamic_range_db, preset.tissue_display_level
    ratio = np.float32(organ_echo_ratio(state))
    around = _displayed_db(np.hypot(tissue, noise), dr, level)
    inside = _displayed_db(np.sqrt(ratio * tissue**2 + noise**2), dr, level)
    return _to_screen(state, around - inside)
