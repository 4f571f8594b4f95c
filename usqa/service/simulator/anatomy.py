"""Anatomy: one subject's tissue and organ, and the organ's cross-section at each point of a sweep.

A subject is drawn once from its own generator; a sweep position t in [0, 1] then fixes everything that
is not speckle: the organ is an ellipsoid-like body that the image plane enters, crosses at its widest and
leaves again, so its cross-section grows and shrinks smoothly while the probe wobbles a little.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from usqa.service.simulator.presets import Preset
from usqa.service.simulator.scan import ScanConverter

# Share of a subject's sweep in which the image plane cuts the organ (the brief's ~60 % gland frames).
ORGAN_SWEEP_SHARE = (0.54, 0.66)
# The smallest cross-section drawn, relative to the widest: the plane enters the organ's rounded end.
MIN_SECTION_SCALE = 0.35
# The organ keeps this share of its distance to the field's edges free, so clean frames are not cut.
ORGAN_EDGE_CLEARANCE = 0.85
# Probe wobble during the sweep: lateral/axial drift (cm, as a share of the depth) and rotation (rad).
WOBBLE_SHARE_OF_DEPTH = 0.03
WOBBLE_ROTATION_RAD = 0.08
# Large-scale texture: coarse grid of the smooth random field, and its keyframes along the sweep.
TEXTURE_GRID = (5, 7)
TEXTURE_KEYFRAMES = 3


@dataclass(frozen=True)
class OrganSection:
    """The organ in one frame: an ellipse with low-order radius harmonics, rotated, with a capsule."""

    centre_x: float
    centre_y: float
    semi_major: float
    semi_minor: float
    rotation: float
    harmonic_amplitudes: tuple[float, ...]
    harmonic_phases: tuple[float, ...]
    capsule_cm: float

    @property
    def extent_cm(self) -> float:
        """An upper bound of the distance from the centre to the outer boundary."""
        return self.semi_major * (1 + sum(abs(a) for a in self.harmonic_amplitudes))

    @property
    def equivalent_radius_cm(self) -> float:
        return float(np.sqrt(self.semi_major * self.semi_minor))

    @property
    def capsule_share(self) -> float:
        """Capsule thickness as a share of the normalised radius (the rim is 1 - share .. 1)."""
        return min(0.5, self.capsule_cm / self.equivalent_radius_cm)

    def moved_to(self, x: float, y: float) -> OrganSection:
        return replace(self, centre_x=x, centre_y=y)

    def _radius_at(self, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """Boundary radius (relative) in the direction (cos, sin): 1 + sum_k a_k cos(k angle + phase_k)."""
        radius = np.ones_like(cos)
        # cos(k angle), sin(k angle) by the angle-addition recurrence: no trigonometric calls per point.
        cos_k, sin_k = cos, sin
        for amplitude, phase in zip(self.harmonic_amplitudes, self.harmonic_phases, strict=True):
            cos_k, sin_k = cos_k * cos - sin_k * sin, sin_k * cos + cos_k * sin
            radius += amplitude * (cos_k * np.cos(phase) - sin_k * np.sin(phase))
        return radius

    def normalised_radius(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance from the centre relative to the boundary in that direction: < 1 inside the organ."""
        dx, dy = x - self.centre_x, y - self.centre_y
        cos, sin = np.cos(self.rotation), np.sin(self.rotation)
        u = (dx * cos + dy * sin) / self.semi_major
        v = (dy * cos - dx * sin) / self.semi_minor
        rho = np.hypot(u, v)
        safe = np.maximum(rho, 1e-12)
        return rho / self._radius_at(u / safe, v / safe)

    def _points(self, rho: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = rho * self._radius_at(np.cos(angle), np.sin(angle))
        u, v = scaled * np.cos(angle) * self.semi_major, scaled * np.sin(angle) * self.semi_minor
        cos, sin = np.cos(self.rotation), np.sin(self.rotation)
        return self.centre_x + u * cos - v * sin, self.centre_y + u * sin + v * cos

    def boundary_points(self, n: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points on the boundary and their share of its length (weights sum to 1)."""
        angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
        x, y = self._points(np.ones(n), angle)
        step = np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y)
        return x, y, step / step.sum()

    def area_points(
        self, rings: int = 12, n: int = 48
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points spread over the organ, their share of its area, and their normalised radius."""
        # Rings at sqrt-spaced radii hold equal area per unit of the squared boundary radius.
        rho = np.sqrt((np.arange(rings) + 0.5) / rings)
        angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
        rho_grid, angle_grid = np.meshgrid(rho, angle, indexing="ij")
        x, y = self._points(rho_grid.ravel(), angle_grid.ravel())
        weights = self._radius_at(np.cos(angle_grid.ravel()), np.sin(angle_grid.ravel())) ** 2
        return x, y, weights / weights.sum(), rho_grid.ravel()


@dataclass(frozen=True)
class Vessel:
    """An anechoic round structure with a thin bright wall (artery, vein, cyst): dark, but not the organ."""

    centre_x: float
    centre_y: float
    radius: float


@dataclass(frozen=True, eq=False)
class SubjectProfile:
    """Everything about one subject that stays fixed over their sweep."""

    name: str
    preset: Preset
    background_echogenicity: float
    scatterer_density: float
    gain_db: float
    tgc_compensation: float
    organ_contrast: float
    capsule_brightness: float
    core_factor: float
    # Log-texture keyframes, shape (TEXTURE_KEYFRAMES, *TEXTURE_GRID).
    texture: np.ndarray
    organ: OrganSection
    sweep_centre: float
    sweep_half_width: float
    wobble_phases: tuple[float, float, float]
    vessels: tuple[Vessel, ...]

    def organ_scale(self, t: float) -> float:
        """Cross-section scale at sweep position t: 0 outside the organ, 1 at its widest."""
        u = (t - self.sweep_centre) / self.sweep_half_width
        if abs(u) >= 1:
            return 0.0
        return MIN_SECTION_SCALE + (1 - MIN_SECTION_SCALE) * float(np.sqrt(1 - u * u))

    def _wobble(self, t: float) -> tuple[float, float, float]:
        amplitude = WOBBLE_SHARE_OF_DEPTH * self.preset.probe.depth_cm
        px, py, pr = self.wobble_phases
        return (
            amplitude * float(np.sin(2 * np.pi * 1.3 * t + px)),
            amplitude * float(np.sin(2 * np.pi * 0.9 * t + py)),
            WOBBLE_ROTATION_RAD * float(np.sin(2 * np.pi * 1.1 * t + pr)),
        )

    def organ_at(self, t: float) -> OrganSection | None:
        """The organ's cross-section at sweep position t, or None where the plane misses it."""
        scale = self.organ_scale(t)
        if scale == 0.0:
            return None
        dx, dy, dr = self._wobble(t)
        # The cross-section's shape drifts with t too: the harmonics breathe a little along the sweep.
        breathing = 1 + 0.3 * np.sin(2 * np.pi * t + self.wobble_phases[0])
        return replace(
            self.organ,
            centre_x=self.organ.centre_x + dx,
            centre_y=self.organ.centre_y + dy,
            semi_major=self.organ.semi_major * scale,
            semi_minor=self.organ.semi_minor * scale,
            rotation=self.organ.rotation + dr,
            harmonic_amplitudes=tuple(a * float(breathing) for a in self.organ.harmonic_amplitudes),
        )

    def vessels_at(self, t: float) -> tuple[Vessel, ...]:
        dx, dy, _ = self._wobble(t)
        return tuple(replace(v, centre_x=v.centre_x + dx, centre_y=v.centre_y + dy) for v in self.vessels)

    def texture_at(self, t: float, shape: tuple[int, int]) -> np.ndarray:
        """Smooth multiplicative tissue texture (mean about 1) over the beam grid at sweep position t."""
        position = t * (TEXTURE_KEYFRAMES - 1)
        k = min(int(position), TEXTURE_KEYFRAMES - 2)
        w = position - k
        grid = ((1 - w) * self.texture[k] + w * self.texture[k + 1]).astype(np.float32)
        smooth = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
        return np.exp(smooth)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _place_organ(rng: np.random.Generator, preset: Preset, scan: ScanConverter) -> OrganSection:
    probe = preset.probe
    depth = probe.radius_cm + _uniform(rng, preset.organ_depth_fraction) * probe.depth_cm
    lateral = _uniform(rng, (-preset.organ_lateral_fraction, preset.organ_lateral_fraction))
    if scan.is_sector:
        angle = lateral * np.deg2rad(probe.half_angle_deg)
        x, y = depth * float(np.sin(angle)), depth * float(np.cos(angle))
    else:
        x, y = lateral * probe.width_cm / 2, depth
    amplitudes = tuple(float(a * rng.uniform(0.3, 1.0)) for a in preset.organ_harmonics)
    phases = tuple(float(p) for p in rng.uniform(0, 2 * np.pi, len(amplitudes)))
    size = _uniform(rng, (0.85, 1.15))
    organ = OrganSection(
        centre_x=x,
        centre_y=y,
        semi_major=preset.organ_semi_axes_cm[0] * size,
        semi_minor=preset.organ_semi_axes_cm[1] * size * _uniform(rng, (0.85, 1.15)),
        rotation=_uniform(rng, (-0.35, 0.35)),
        harmonic_amplitudes=amplitudes,
        harmonic_phases=phases,
        capsule_cm=preset.capsule_thickness_cm,
    )
    # Shrink to fit: the widest section, wobble and harmonic breathing included, stays inside the field.
    wobble = WOBBLE_SHARE_OF_DEPTH * probe.depth_cm * np.sqrt(2)
    room = ORGAN_EDGE_CLEARANCE * scan.edge_distance(x, y) - wobble
    extent = organ.semi_major * (1 + 1.3 * sum(amplitudes))
    if extent > room:
        shrink = room / extent
        organ = replace(organ, semi_major=organ.semi_major * shrink, semi_minor=organ.semi_minor * shrink)
    return organ


def _place_vessels(
    rng: np.random.Generator, preset: Preset, scan: ScanConverter, organ: OrganSection
) -> tuple[Vessel, ...]:
    vessels: list[Vessel] = []
    count = int(rng.integers(preset.vessel_count[0], preset.vessel_count[1] + 1))
    beam_x, beam_y = scan.beam_x.ravel(), scan.beam_y.ravel()
    for _ in range(count):
        radius = _uniform(rng, preset.vessel_radius_cm)
        for _attempt in range(20):
            k = int(rng.integers(beam_x.size))
            x, y = float(beam_x[k]), float(beam_y[k])
            clear_of_organ = np.hypot(x - organ.centre_x, y - organ.centre_y) > organ.extent_cm + radius * 1.5
            clear_of_others = all(
                np.hypot(x - v.centre_x, y - v.centre_y) > v.radius + radius for v in vessels
            )
            if clear_of_organ and clear_of_others and scan.edge_distance(x, y) > radius * 1.2:
                vessels.append(Vessel(x, y, radius))
                break
    return tuple(vessels)


def draw_subject(name: str, preset: Preset, scan: ScanConverter, rng: np.random.Generator) -> SubjectProfile:
    """Draw one subject: tissue, gain, organ placement and sweep, all from the subject's own generator."""
    organ = _place_organ(rng, preset, scan)
    share = _uniform(rng, ORGAN_SWEEP_SHARE)
    return SubjectProfile(
        name=name,
        preset=preset,
        background_echogenicity=_uniform(rng, preset.background_echogenicity),
        scatterer_density=_uniform(rng, preset.scatterer_density),
        gain_db=_uniform(rng, preset.gain_db),
        tgc_compensation=_uniform(rng, preset.tgc_compensation),
        organ_contrast=_uniform(rng, preset.organ_contrast),
        capsule_brightness=_uniform(rng, preset.capsule_brightness),
        core_factor=_uniform(rng, preset.organ_core_factor),
        texture=rng.normal(0, preset.texture_sigma, (TEXTURE_KEYFRAMES, *TEXTURE_GRID)).astype(np.float32),
        organ=organ,
        sweep_centre=_uniform(rng, (share / 2 + 0.02, 1 - share / 2 - 0.02)),
        sweep_half_width=share / 2,
        wobble_phases=(
            _uniform(rng, (0, 2 * np.pi)),
            _uniform(rng, (0, 2 * np.pi)),
            _uniform(rng, (0, 2 * np.pi)),
        ),
        vessels=_place_vessels(rng, preset, scan, organ),
    )
