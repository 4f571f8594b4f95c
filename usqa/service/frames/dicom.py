"""DICOM frames as 8-bit grayscale through pydicom 3 and its pylibjpeg decoding plugins.

The header (PixelData present, transfer syntax decodable, Rows * Columns, NumberOfFrames, pixel-data
length) is checked before any pixel is decoded; frames are then decoded one at a time, so a cine never
exists in memory at full bit depth and colour.

Budgets hold while decoding, not only in the header: the frames the pixel data holds are counted (native
data by its length, encapsulated data by its offset table) and refused past `max_frames` even when
NumberOfFrames says fewer; no more frames are decoded than the header declares; frames x Rows x Columns must
fit `max_decoded_pixels`, from the header and again frame by frame as decoded; a deflated data set is
inflated with a cap of what its own header declares (pydicom would inflate it whole before any check).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder
from pydicom.pixels.decoders.base import Decoder
from pydicom.pixels.utils import get_expected_length

from usqa.service.frames.dicom_budget import (
    DecodeBudget,
    attribute,
    check_codestreams,
    check_sizes,
    int_attribute,
    read_within,
)
from usqa.service.frames.errors import (
    DICOM_BAD_ATTRIBUTE,
    DICOM_SHORT_PIXEL_DATA,
    DICOM_UNDECODABLE,
    EMPTY_INPUT,
    NO_PIXEL_DATA,
    PIXEL_DATA_FRAMES,
    UNSUPPORTED_PHOTOMETRIC,
    UNSUPPORTED_TRANSFER_SYNTAX,
    CorruptFrameError,
    EmptyFrameError,
    FrameError,
    NoPixelDataError,
    TooManyFramesError,
    UnsupportedFormatError,
    shown,
)
from usqa.service.frames.preprocess import min_max_u8, to_grayscale_u8

MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
# Photometric interpretations as stored; pydicom hands the YBR ones back as RGB (JPEG 2000 decoders undo
# the ICT/RCT transform, YBR_FULL/_422 are converted), so after decoding colour is RGB or a palette.
SUPPORTED_PHOTOMETRICS = MONOCHROME | {
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "PALETTE COLOR",
}


def decode_dicom(
    source: bytes | Path,
    *,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    max_decode_s: float | None = None,
) -> list[np.ndarray]:
    """Every frame of a DICOM file (bytes or a path) as uint8 grayscale HxW arrays, in frame order."""
    return list(
        iter_dicom_frames(
            source,
            max_pixels=max_pixels,
            max_frames=max_frames,
            max_decoded_pixels=max_decoded_pixels,
            max_decode_s=max_decode_s,
        )
    )


def iter_dicom_frames(
    source: bytes | Path,
    *,
    max_pixels: int,
    max_frames: int,
    max_decoded_pixels: int | None = None,
    max_decode_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Check the header now, then decode frames lazily: a long cine streams one frame at a time.

    `max_pixels` bounds Rows * Columns (one frame), `max_frames` bounds NumberOfFrames and the frames the
    pixel data holds, and `max_decoded_pixels` (None: no bound beyond the other two) bounds frames x Rows x
    Columns over the whole input; `max_decode_s` (None: none) bounds the decoding time, checked between
    frames from this call on. Display mapping: 8-bit monochrome is used as stored (scanners burn their
    display mapping into it); deeper monochrome goes through the modality LUT and then the VOI LUT or
    window when the header has one, else a per-frame min-max stretch; MONOCHROME1 is inverted; colour
    becomes luminance.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data:
        raise EmptyFrameError(EMPTY_INPUT)
    budget = DecodeBudget(max_pixels, max_frames, max_decoded_pixels, max_decode_s)
    dataset = read_within(data, budget)
    decoder, frames = _check_header(dataset, budget)
    return _decoded_frames(dataset, decoder, frames, budget)


def _check_header(dataset: Dataset, budget: DecodeBudget) -> tuple[Decoder, int]:
    """Refuse what cannot or must not be decoded, from header attributes and the pixel data's length."""
    # The transfer syntax first: pydicom stops quietly where bytes turn to garbage, and a file meta
    # without a transfer syntax tells garbage apart from a real data set that has no pixels.
    transfer_syntax = attribute(getattr(dataset, "file_meta", Dataset()), "TransferSyntaxUID")
    if "PixelData" not in dataset:
        raise NoPixelDataError(NO_PIXEL_DATA)
    unsupported = UNSUPPORTED_TRANSFER_SYNTAX.format(
        name=shown(getattr(transfer_syntax, "name", transfer_syntax))
    )
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError as exc:
        raise UnsupportedFormatError(unsupported) from exc
    if not decoder.is_available:  # a codec whose plugin is not installed
        raise UnsupportedFormatError(unsupported)

    frames = check_sizes(dataset, budget)
    photometric = _photometric(dataset)
    if photometric not in SUPPORTED_PHOTOMETRICS:
        raise UnsupportedFormatError(UNSUPPORTED_PHOTOMETRIC.format(value=shown(photometric)))
    for keyword in ("BitsAllocated", "BitsStored", "SamplesPerPixel"):
        int_attribute(dataset, keyword)

    if decoder.is_native:
        # A header that promises more frames or pixels than the data holds (a "lying" header).
        try:
            expected = get_expected_length(dataset, "bytes")
        except Exception as exc:
            raise CorruptFrameError(DICOM_UNDECODABLE) from exc
        actual = len(dataset.PixelData)
        if actual < expected:
            raise CorruptFrameError(DICOM_SHORT_PIXEL_DATA.format(expected=expected, actual=actual))
        held = actual * frames // max(expected, 1)
    else:
        held = _encapsulated_frames(dataset)
        if held <= budget.max_frames:
            check_codestreams(
                dataset, frames, int_attribute(dataset, "Rows"), int_attribute(dataset, "Columns")
            )
    # The pixel data may hold more frames than NumberOfFrames says; only the declared ones are decoded,
    # but an input holding more than the limit is refused outright.
    if held > budget.max_frames:
        raise TooManyFramesError(
            PIXEL_DATA_FRAMES.format(frames=held, max_frames=budget.max_frames), frames=held
        )
    return decoder, frames


def _encapsulated_frames(dataset: Dataset) -> int:
    """Frames an encapsulated pixel data says it holds: its offset table's entries (0 when it has none)."""
    if "ExtendedOffsetTable" in dataset:
        return len(dataset.ExtendedOffsetTable) // 8
    try:
        return len(parse_basic_offsets(io.BytesIO(dataset.PixelData)))
    except Exception as exc:
        raise CorruptFrameError(DICOM_UNDECODABLE) from exc


def _decoded_frames(
    dataset: Dataset, decoder: Decoder, declared: int, budget: DecodeBudget
) -> Iterator[np.ndarray]:
    # Never more frames than declared (pydicom would otherwise return whatever else fits in the pixel
    # data), and the pixels actually decoded are counted against the budget frame by frame.
    frames = decoder.iter_array(dataset, raw=False, allow_excess_frames=False)
    decoded = 0
    pixels = 0
    while decoded < declared:
        # Only the decoder call and the display mapping are wrapped: never the yield, so an exception
        # thrown into this generator by its consumer is not mistaken for corrupt data.
        try:
            item = next(frames, None)
            if item is None:
                return
            array, meta = item
            decoded += 1
            rows, columns = int(array.shape[0]), int(array.shape[1])
            pixels += rows * columns
            if budget.over(pixels):
                raise budget.error(decoded, rows, columns, pixels)
            budget.check_time(decoded)
            frame = _display_u8(array, _text(meta["photometric_interpretation"]), dataset)
        except FrameError:
            raise
        except Exception as exc:  # codec plugins raise RuntimeError, ValueError, ...
            raise CorruptFrameError(DICOM_UNDECODABLE) from exc
        yield frame


def _display_u8(pixels: np.ndarray, photometric: str, dataset: Dataset) -> np.ndarray:
    """One decoded frame as displayed: uint8 grayscale HxW."""
    if photometric in MONOCHROME:
        gray = _monochrome_u8(pixels, dataset)
        return 255 - gray if photometric == "MONOCHROME1" else gray
    if photometric == "PALETTE COLOR":
        return to_grayscale_u8(apply_color_lut(pixels, dataset))
    if photometric == "RGB":
        bits_stored = int_attribute(dataset, "BitsStored")
        return to_grayscale_u8(pixels if bits_stored == 8 else _scale_to_u8(pixels, bits_stored))
    raise UnsupportedFormatError(UNSUPPORTED_PHOTOMETRIC.format(value=shown(photometric)))


def _monochrome_u8(pixels: np.ndarray, dataset: Dataset) -> np.ndarray:
    bits_stored = int_attribute(dataset, "BitsStored")
    signed = int_attribute(dataset, "PixelRepresentation", default=0) == 1
    if bits_stored <= 8 and not signed:
        return pixels.astype(np.uint8) if bits_stored == 8 else _scale_to_u8(pixels, bits_stored)
    values = apply_modality_lut(pixels, dataset)
    if dataset.get("VOILUTSequence"):
        # The VOI LUT indexes integer stored-or-rescaled values; its entries span its own bit depth.
        mapped = apply_voi(np.rint(values).astype(np.int64), dataset)
        depth = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        return _scale_to_u8(mapped, depth)
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        return _window_u8(values, dataset)
    return min_max_u8(values)


def _window_u8(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The first window of the VOI LUT module, straight to 0-255 (PS3.3 C.11.2.1.2 and C.11.2.1.3)."""
    center = _first_float(dataset, "WindowCenter")
    width = _first_float(dataset, "WindowWidth")
    function = str(dataset.get("VOILUTFunction", "LINEAR")).upper()
    x = values.astype(np.float64)
    if function == "SIGMOID" and width > 0:
        unit = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))  # C.11.2.1.3.1
    elif function == "LINEAR_EXACT" and width > 0:
        unit = (x - center) / width + 0.5  # C.11.2.1.3.2
    elif function == "LINEAR" and width >= 1:
        # C.11.2.1.2.1; a width of exactly 1 is a step at the centre.
        unit = (x - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5
    else:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword="WindowWidth"))
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _scale_to_u8(values: np.ndarray, bits: int) -> np.ndarray:
    """Map 0 .. 2**bits - 1 onto 0-255 (for 1-bit masks, 12-bit colour, 16-bit LUT output)."""
    top = float(2**bits - 1)
    unit = np.clip(values.astype(np.float64), 0.0, top) / top
    return np.rint(unit * 255.0).astype(np.uint8)


def _photometric(dataset: Dataset) -> str:
    value = dataset.get("PhotometricInterpretation")
    if value is None:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword="PhotometricInterpretation"))
    return _text(value).strip().upper()


def _text(value: Any) -> str:
    # pydicom reports decoded photometrics as a str-valued Enum; str() of it would be the member name.
    return str(getattr(value, "value", value))


def _first_float(dataset: Dataset, keyword: str) -> float:
    """A multi-valued window attribute offers alternative windows; the first is the default view."""
    value = attribute(dataset, keyword)
    try:
        return float(value[0] if isinstance(value, MultiValue) else value)
    except (TypeError, ValueError, IndexError) as exc:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc
