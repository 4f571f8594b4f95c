"""Scan conversion: from beam space (depth samples x scan lines) to the square screen, with cached maps.

Beam sample (i, j) sits at depth `(i + 0.5) * depth / n_depth` below the array face on line j. On screen the
field of view is fitted into the square with a small margin and centred horizontally, apex side up; the
rest of the screen is black, as on a scanner. All physical coordinates are centimetres with the sector
apex (or the middle of the linear array) at the origin, x lateral and y away from the probe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from usqa.service.simulator.presets import REFERENCE_SIZE, ProbeGeometry

# Share of the screen edge left black around the field of view (room for burned-in text).
SCREEN_MARGIN = 0.04
# Beam samples per screen pixel: a little above one so scan conversion interpolates rather than drops.
BEAM_OVERSAMPLING = 1.15
# An empty second map: cv2.remap then reads whole-sample positions from the first map alone.
_NO_FRACTION = np.empty((0, 0), np.uint16)


@dataclass(frozen=True, eq=False)
class ScanConverter:
    """Maps and coordinates for one (probe, size): built once per process and shared by every frame."""

    probe: ProbeGeometry
    size: int
    px_per_cm: float
    # Screen position (pixels) of the physical origin's x and of the physical y at the screen's top row.
    origin_col: float
    top_y_cm: float
    n_depth: int
    n_lines: int
    # Depth below the array face of each beam row (cm), shape (n_depth, 1).
    depth_cm: np.ndarray
    # Physical coordinates of every beam sample, shape (n_depth, n_lines).
    beam_x: np.ndarray
    beam_y: np.ndarray
    # Physical coordinates of every screen pixel centre, shape (size, size).
    pixel_x: np.ndarray
    pixel_y: np.ndarray
    # True inside the field of view.
    fan: np.ndarray
    # cv2.remap maps (fixed point) from screen to beam space; and the nearest beam sample of each pixel.
    map_fixed: np.ndarray
    map_fraction: np.ndarray
    map_nearest: np.ndarray
    # How many beam samples one output pixel spans at REFERENCE_SIZE scaling (for speckle grain).
    samples_per_px: float

    @property
    def is_sector(self) -> bool:
        return self.probe.kind == "sector"

    def to_screen(self, beam: np.ndarray, *, border: float = 0.0) -> np.ndarray:
        """Scan-convert a beam-space image (uint8 or float32) to the screen."""
        return cv2.remap(
            beam,
            self.map_fixed,
            self.map_fraction,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border,
        )

    def to_screen_nearest(self, beam: np.ndarray) -> np.ndarray:
        """Scan-convert a smooth beam-space map (float32) by nearest sample: 0 outside the field.

        Four times cheaper than interpolation, and a map such as visibility needs no sub-sample detail.
        """
        return cv2.remap(
            beam, self.map_nearest, _NO_FRACTION, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
        )

    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Screen (column, row) in pixels, fractional, of physical points."""
        col = x * self.px_per_cm + self.origin_col - 0.5
        row = (y - self.top_y_cm) * self.px_per_cm - 0.5
        return col, row

    def in_field(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True for physical points inside the field of view (which may reach beyond the screen)."""
        probe = self.probe
        if self.is_sector:
            r = np.hypot(x, y)
            angle = np.arctan2(x, y)
            return (
                (r >= probe.radius_cm)
                & (r <= probe.radius_cm + probe.depth_cm)
                & (np.abs(angle) <= np.deg2rad(probe.half_angle_deg))
            )
        return (np.abs(x) <= probe.width_cm / 2) & (y >= 0) & (y <= probe.depth_cm)

    def edge_distance(self, x: float, y: float) -> float:
        """Distance (cm) from a physical point inside the field to the nearest edge of the field."""
        probe = self.probe
        if self.is_sector:
            r = float(np.hypot(x, y))
            spare_angle = np.deg2rad(probe.half_angle_deg) - abs(float(np.arctan2(x, y)))
            lateral = r * np.sin(spare_angle) if spare_angle < np.pi / 2 else r
            return float(min(lateral, r - probe.radius_cm, probe.radius_cm + probe.depth_cm - r))
        return float(min(probe.width_cm / 2 - abs(x), y, probe.depth_cm - y))

    def lateral_shift(self, x: float, y: float, shift_cm: float) -> tuple[float, float]:
        """Move a point sideways across the scan lines (around the apex for a sector), as a probe slide does."""
        if self.is_sector:
            r = float(np.hypot(x, y))
            angle = float(np.arctan2(x, y)) + shift_cm / r
            return r * float(np.sin(angle)), r * float(np.cos(angle))
        return x + shift_cm, y

    def line_position(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fractional scan-line index of physical points (lines run 0 .. n_lines - 1 from left to right)."""
        probe = self.probe
        if self.is_sector:
            half = np.deg2rad(probe.half_angle_deg)
            return (np.arctan2(x, y) + half) / (2 * half) * self.n_lines - 0.5
        return (x + probe.width_cm / 2) / probe.width_cm * self.n_lines - 0.5

    def depth_position(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fractional beam row of physical points."""
        probe = self.probe
        below_face = np.hypot(x, y) - probe.radius_cm if self.is_sector else y
        return below_face / probe.depth_cm * self.n_depth - 0.5


def _field_box(probe: ProbeGeometry) -> tuple[float, float, float]:
    """Half-width, top y and bottom y (cm) of the field of view's bounding box."""
    if probe.kind == "sector":
        half = np.deg2rad(probe.half_angle_deg)
        r_max = probe.radius_cm + probe.depth_cm
        half_width = r_max * np.sin(half) if half < np.pi / 2 else r_max
        return float(half_width), float(probe.radius_cm * np.cos(half)), float(r_max)
    return probe.width_cm / 2, 0.0, probe.depth_cm


@lru_cache(maxsize=32)
def scan_converter(probe: ProbeGeometry, size: int) -> ScanConverter:
    """The scan converter for `probe` at `size` x `size` pixels (cached: maps are built once)."""
    if size < 16:
        raise ValueError(f"frame size must be at least 16 pixels, got {size}")
    half_width, top, bottom = _field_box(probe)
    usable = size * (1 - 2 * SCREEN_MARGIN)
    px_per_cm = min(usable / (2 * half_width), usable / (bottom - top))
    origin_col = size / 2
    top_y_cm = top - size * SCREEN_MARGIN / px_per_cm

    n_depth = max(8, round(probe.depth_cm * px_per_cm * BEAM_OVERSAMPLING))
    if probe.kind == "sector":
        half = np.deg2rad(probe.half_angle_deg)
        arc_cm = 2 * half * (probe.radius_cm + probe.depth_cm)
        n_lines = max(8, round(arc_cm * px_per_cm * BEAM_OVERSAMPLING))
    else:
        n_lines = max(8, round(probe.width_cm * px_per_cm * BEAM_OVERSAMPLING))

    depth_cm = ((np.arange(n_depth) + 0.5) * probe.depth_cm / n_depth).astype(np.float32)[:, None]
    line_fraction = ((np.arange(n_lines) + 0.5) / n_lines).astype(np.float32)[None, :]
    if probe.kind == "sector":
        angle = (line_fraction * 2 - 1) * np.deg2rad(probe.half_angle_deg)
        radius = depth_cm + probe.radius_cm
        beam_x, beam_y = radius * np.sin(angle), radius * np.cos(angle)
    else:
        beam_x = np.broadcast_to((line_fraction - 0.5) * probe.width_cm, (n_depth, n_lines))
        beam_y = np.broadcast_to(depth_cm, (n_depth, n_lines))

    cols, rows = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    pixel_x = (cols + 0.5 - origin_col) / px_per_cm
    pixel_y = top_y_cm + (rows + 0.5) / px_per_cm
    partial = ScanConverter(
        probe=probe,
        size=size,
        px_per_cm=float(px_per_cm),
        origin_col=float(origin_col),
        top_y_cm=float(top_y_cm),
        n_depth=n_depth,
        n_lines=n_lines,
        depth_cm=depth_cm,
        beam_x=np.ascontiguousarray(beam_x, dtype=np.float32),
        beam_y=np.ascontiguousarray(beam_y, dtype=np.float32),
        pixel_x=pixel_x,
        pixel_y=pixel_y,
        fan=np.zeros((size, size), bool),
        map_fixed=np.zeros((1, 1, 2), np.int16),
        map_fraction=np.zeros((1, 1), np.uint16),
        map_nearest=np.zeros((1, 1, 2), np.int16),
        samples_per_px=float(BEAM_OVERSAMPLING * size / REFERENCE_SIZE),
    )
    fan = partial.in_field(pixel_x, pixel_y)
    # Pixels outside the field map far outside the beam image, so remap fills them with the border (black).
    map_col = np.where(fan, partial.line_position(pixel_x, pixel_y), -10).astype(np.float32)
    map_row = np.where(fan, partial.depth_position(pixel_x, pixel_y), -10).astype(np.float32)
    map_fixed, map_fraction = cv2.convertMaps(map_col, map_row, cv2.CV_16SC2)
    # Nearest sample, clipped so that every pixel of the field reads a sample (a centre on the field's
    # very edge rounds half a sample outside).
    nearest_col = np.where(fan, np.clip(np.floor(map_col + 0.5), 0, n_lines - 1), -10)
    nearest_row = np.where(fan, np.clip(np.floor(map_row + 0.5), 0, n_depth - 1), -10)
    map_nearest = np.ascontiguousarray(np.stack([nearest_col, nearest_row], axis=-1).astype(np.int16))
    for array in (depth_cm, pixel_x, pixel_y, fan, map_fixed, map_fraction, map_nearest):
        array.setflags(write=False)
    return replace(partial, fan=fan, map_fixed=map_fixed, map_fraction=map_fraction, map_nearest=map_nearest)
