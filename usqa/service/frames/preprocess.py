"""The one frame preprocessing shared by training and serving: grayscale, optional crop, letterbox, resize.

A model only ever sees frames made by `prepare_frame`, whichever path (an upload, a DICOM cine, a training
folder) they came from; a second implementation anywhere would be a train/serve skew waiting to happen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from usqa.contracts.frames import FrameSpec
from usqa.service.frames.errors import EMPTY_IMAGE, UNSUPPORTED_ARRAY, EmptyFrameError, UnsupportedFormatError

# Screen-capture backgrounds are black up to codec noise; the dim edges of a low-gain fan sit just above.
# The value is on the 0-255 grayscale, after the blur below.
CONTENT_LEVEL = 8
# Blur sigma per pixel of the shorter side: closes single-pixel speckle holes, keeps text strokes thin.
BLUR_SIGMA_FRACTION = 1 / 480
# Structures thinner than this fraction of the shorter frame side (text strokes, calibration ticks,
# colour and grey bars) cannot seed the scan region.
THIN_STRUCTURE_FRACTION = 0.04
# A seed smaller than this fraction of the frame is a label or a logo, not a scan; one whose box is more
# than MAX_SEED_ASPECT times longer than wide is a header strip or a bar.
MIN_REGION_FRACTION = 0.02
MAX_SEED_ASPECT = 5.0

# The one interpolation (see docs/frames.md): frames are almost always shrunk (a 480x640 or 1080x1920
# capture to 128x128), and INTER_AREA averages every source pixel into its target pixel. Point-sampling
# methods (nearest, linear, cubic) alias speckle into moire when shrinking, and speckle texture is part of
# what the quality model reads. When a frame is enlarged OpenCV's INTER_AREA behaves like bilinear.
_INTERPOLATION_FLAGS = {"area": cv2.INTER_AREA}
# The letterboxed square is max(H, W) on a side, so a frame one pixel high and 70,000 wide (70 kB, well
# under the pixel limit) would need a 4.9 GB square. A frame longer than this is first shrunk, aspect
# kept, so no square exceeds this side (16 MiB); every frame up to it (a 4K capture) is prepared as before.
LETTERBOX_MAX_SIDE = 4096


def to_grayscale_u8(image: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array as a C-contiguous uint8 HxW luminance image.

    Intensities keep their meaning rather than being stretched, because brightness and contrast are part
    of image quality: uint8 is kept, uint16 maps its full range to 0-255, floats are read as 0-1 (clipped;
    NaN is 0), bool is 0/255. Other integer types have no display range and are min-max scaled. Colour
    becomes Rec. 601 luminance (0.299 R + 0.587 G + 0.114 B), the weights OpenCV's decoders also use.
    An input that is already a C-contiguous uint8 HxW array is returned as is, not copied.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise UnsupportedFormatError(UNSUPPORTED_ARRAY.format(shape=image.shape, dtype=image.dtype))
    if image.size == 0:
        raise EmptyFrameError(EMPTY_IMAGE.format(width=image.shape[1], height=image.shape[0]))
    levels = np.ascontiguousarray(_to_u8_levels(image))
    if levels.ndim == 3:
        code = cv2.COLOR_RGB2GRAY if levels.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        levels = cv2.cvtColor(levels, code)
    return levels


def find_scan_region(gray: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (y0, y1, x0, x1), half-open, of the scan (fan or rectangle) in a screen capture.

    Bright content is thresholded after a light blur. An opening removes thin structures (text, tick
    marks, colour and grey bars), and of what survives the largest piece that is neither a strip (a
    header bar) nor a speck seeds the scan. The box then covers every bright component the seed touches,
    which restores what the opening shaved (a sector's narrow apex, dim fan edges): when unsure the crop
    keeps too much rather than cutting into the scan. Returns the whole frame when nothing qualifies (an
    all-black frame, a frame of text only).
    """
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        gray = to_grayscale_u8(gray)  # also the one place an empty array is refused
    bounded = within_letterbox_bound(gray)
    if bounded is gray:
        return _scan_region(gray)
    # Searched on the frame shrunk as `prepare_frame` shrinks it (OpenCV's labelling takes seconds on a
    # 16-megapixel column), then widened to whole source pixels: a crop keeps too much, never too little.
    y0, y1, x0, x1 = _scan_region(bounded)
    height, width = gray.shape
    rows, columns = height / bounded.shape[0], width / bounded.shape[1]
    return (
        math.floor(y0 * rows),
        min(height, math.ceil(y1 * rows)),
        math.floor(x0 * columns),
        min(width, math.ceil(x1 * columns)),
    )


def _scan_region(gray: np.ndarray) -> tuple[int, int, int, int]:
    height, width = gray.shape
    whole = (0, height, 0, width)
    shorter = min(height, width)
    blurred = cv2.GaussianBlur(gray, (0, 0), sigmaX=max(1.0, shorter * BLUR_SIGMA_FRACTION))
    content = (blurred > CONTENT_LEVEL).astype(np.uint8)

    side = max(3, round(shorter * THIN_STRUCTURE_FRACTION) | 1)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    thick = cv2.morphologyEx(content, cv2.MORPH_OPEN, opening)
    count, seeds, stats, _ = cv2.connectedComponentsWithStats(thick, connectivity=8)
    seed = _largest_scan_like(stats, count, height * width)
    if seed is None:
        return whole

    # The opening only removes pixels, so every seed pixel lies in some bright component.
    _, components = cv2.connectedComponents(content, connectivity=8)
    touched = np.unique(components[seeds == seed])
    region = np.isin(components, touched[touched != 0])
    rows = np.flatnonzero(region.any(axis=1))
    columns = np.flatnonzero(region.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def _largest_scan_like(stats: np.ndarray, count: int, frame_area: int) -> int | None:
    """Label of the largest component big and compact enough to be a scan, or None."""
    best: int | None = None
    for label in range(1, count):
        box_width = int(stats[label, cv2.CC_STAT_WIDTH])
        box_height = int(stats[label, cv2.CC_STAT_HEIGHT])
        area = int(stats[label, cv2.CC_STAT_AREA])
        if area < MIN_REGION_FRACTION * frame_area:
            continue
        if max(box_width, box_height) > MAX_SEED_ASPECT * min(box_width, box_height):
            continue
        if best is None or area > stats[best, cv2.CC_STAT_AREA]:
            best = label
    return best


def within_letterbox_bound(gray: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """`gray` itself, or shrunk so its longer side is `LETTERBOX_MAX_SIDE` (the shorter at least 1 px)."""
    height, width = gray.shape[:2]
    longer = max(height, width)
    if longer <= LETTERBOX_MAX_SIDE:
        return gray
    scale = LETTERBOX_MAX_SIDE / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # OpenCV: (width, height)
    return cv2.resize(gray, size, interpolation=interpolation)


def letterbox(gray: np.ndarray) -> np.ndarray:
    """Pad an HxW image with 0 to a centred max(H, W) square; an odd leftover pixel goes bottom/right."""
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=gray.dtype)
    top = (side - height) // 2
    left = (side - width) // 2
    square[top : top + height, left : left + width] = gray
    return square


def prepare_frame(image: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """THE shared preprocessing: grayscale, optional scan-region crop, letterbox, resize.

    Returns a C-contiguous uint8 array of shape (spec.size, spec.size). Letterboxing before the resize
    keeps the aspect ratio, so a probe's geometry looks the same to the model at every capture size.
    A frame longer than `LETTERBOX_MAX_SIDE` is shrunk to it first, so memory stays bounded.
    """
    gray = to_grayscale_u8(image)
    if spec.crop == "auto":
        y0, y1, x0, x1 = find_scan_region(gray)
        gray = gray[y0:y1, x0:x1]
    square = letterbox(within_letterbox_bound(gray, _INTERPOLATION_FLAGS[spec.interpolation]))
    if square.shape[0] != spec.size:
        square = cv2.resize(
            square, (spec.size, spec.size), interpolation=_INTERPOLATION_FLAGS[spec.interpolation]
        )
    return np.ascontiguousarray(square)


def prepare_frames(images: Iterable[np.ndarray], spec: FrameSpec) -> np.ndarray:
    """`prepare_frame` over many frames, stacked as uint8 [N, size, size] (N may be 0)."""
    prepared = [prepare_frame(image, spec) for image in images]
    if not prepared:
        return np.zeros((0, spec.size, spec.size), dtype=np.uint8)
    return np.stack(prepared)


def _to_u8_levels(image: np.ndarray) -> np.ndarray:
    """The dtype rules of `to_grayscale_u8`, channels untouched."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype == np.uint16:
        # Rounded 65535 -> 255 mapping; the same scale OpenCV applies to 16-bit PNG and TIFF.
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        unit = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return min_max_u8(image)
    raise UnsupportedFormatError(UNSUPPORTED_ARRAY.format(shape=image.shape, dtype=image.dtype))


def min_max_u8(values: np.ndarray) -> np.ndarray:
    """Stretch the array's own range to 0-255 (a constant array becomes 0)."""
    low = float(values.min())
    high = float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.rint(scaled).astype(np.uint8)
