"""Where a model input pixel came from in the uploaded frame, so boxes and outlines land on the image shown.

`prepare_frame` crops (optionally), letterboxes to a square and resizes to S x S. `prepare_with_geometry`
runs that same function and records the crop box and letterbox offsets, so results in model input pixels
map back to the frame a sonographer sees. The crop is found once here and the shared `prepare_frame` then
does the rest, on the cropped frame with crop "none" (tests check both paths give identical pixels).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from usqa.service.frames import FrameSpec, find_scan_region, prepare_frame, to_grayscale_u8
from usqa.service.inference.verdict import DEFAULT_LIMITS, FrameSignal, SignalLimits, measure_signal


@dataclass(frozen=True)
class FrameGeometry:
    """The map from an S x S model input back to the source frame (pixels, x right, y down)."""

    source_width: int
    source_height: int
    crop: tuple[int, int, int, int]  # y0, y1, x0, x1 in the source, half-open
    input_size: int

    @property
    def side(self) -> int:
        """Side of the letterboxed square, in source pixels."""
        y0, y1, x0, x1 = self.crop
        return max(y1 - y0, x1 - x0)

    @property
    def scale(self) -> float:
        """Source pixels per input pixel."""
        return self.side / self.input_size

    @property
    def content(self) -> tuple[int, int, int, int]:
        """The input-pixel window (v0, v1, u0, u1) that holds image, not letterbox padding."""
        y0, y1, x0, x1 = self.crop
        top = (self.side - (y1 - y0)) // 2
        left = (self.side - (x1 - x0)) // 2
        s = self.scale
        v0 = int(np.floor(top / s))
        u0 = int(np.floor(left / s))
        v1 = int(np.ceil((top + (y1 - y0)) / s))
        u1 = int(np.ceil((left + (x1 - x0)) / s))
        return v0, min(v1, self.input_size), u0, min(u1, self.input_size)

    def scaled_to(self, width: int, height: int) -> FrameGeometry:
        """The same map for the frame at `width` x `height` that this one's source is a scaled-down copy of
        (an EXIF-rotated JPEG declares its size before rotation: the axes are matched by aspect)."""
        if (width > height) != (self.source_width > self.source_height) and width != height:
            width, height = height, width
        sy, sx = height / self.source_height, width / self.source_width
        y0, y1, x0, x1 = self.crop
        crop = (
            min(round(y0 * sy), height),
            min(round(y1 * sy), height),
            min(round(x0 * sx), width),
            min(round(x1 * sx), width),
        )
        return FrameGeometry(width, height, crop, self.input_size)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Input-pixel (u, v) points, shape [..., 2], as source (x, y) points clipped to the frame."""
        y0, y1, x0, x1 = self.crop
        top = (self.side - (y1 - y0)) // 2
        left = (self.side - (x1 - x0)) // 2
        xy = points.astype(np.float64) * self.scale
        xy[..., 0] += x0 - left
        xy[..., 1] += y0 - top
        xy[..., 0] = np.clip(xy[..., 0], 0, self.source_width)
        xy[..., 1] = np.clip(xy[..., 1], 0, self.source_height)
        return xy


@dataclass(frozen=True)
class PreparedFrame:
    """A model input frame with where it came from and how much signal it carries."""

    pixels: np.ndarray  # uint8 [S, S]
    geometry: FrameGeometry
    signal: FrameSignal  # measured before the letterbox padding

    @property
    def mean_level(self) -> float:
        return self.signal.mean_level

    @property
    def std_level(self) -> float:
        return self.signal.std_level


def prepare_with_geometry(
    image: np.ndarray,
    spec: FrameSpec,
    limits: SignalLimits = DEFAULT_LIMITS,
    source_size: tuple[int, int] | None = None,
) -> PreparedFrame:
    """`prepare_frame(image, spec)` plus its geometry and the no-signal checks on the unpadded frame.

    `source_size` (width, height) is the frame's size as the client has it, when `image` was decoded smaller
    (a JPEG at a DCT scale): the geometry then maps to that frame."""
    gray = to_grayscale_u8(image)
    height, width = gray.shape
    if spec.crop == "auto":
        y0, y1, x0, x1 = find_scan_region(gray)
        region = gray[y0:y1, x0:x1]
        pixels = prepare_frame(region, dataclasses.replace(spec, crop="none"))
    else:
        y0, y1, x0, x1 = 0, height, 0, width
        region = gray
        pixels = prepare_frame(gray, spec)
    geometry = FrameGeometry(width, height, (y0, y1, x0, x1), spec.size)
    if source_size is not None and source_size != (width, height):
        geometry = geometry.scaled_to(*source_size)
    return PreparedFrame(pixels=pixels, geometry=geometry, signal=measure_signal(region, limits))


def stack_pixels(frames: list[PreparedFrame]) -> np.ndarray:
    """uint8 [N, S, S] for the graphs; a single frame is a view, not a copy."""
    if len(frames) == 1:
        return frames[0].pixels[None]
    return np.stack([f.pixels for f in frames])
