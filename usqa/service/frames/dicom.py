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
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.encaps import parse_basic_offsets
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder
from pydicom.pixels.decoders.base import Decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from usqa.service.frames.errors import (
    CORRUPT_DICOM,
    DECODE_BUDGET,
    DEFLATED_HEADER_TOO_LONG,
    DEFLATED_TOO_LARGE,
    DICOM_BAD_ATTRIBUTE,
    DICOM_SHORT_PIXEL_DATA,
    DICOM_UNDECODABLE,
    EMPTY_IMAGE,
    EMPTY_INPUT,
    FRAME_TOO_LARGE,
    NO_PIXEL_DATA,
    PIXEL_DATA_FRAMES,
    TOO_MANY_FRAMES,
    UNSUPPORTED_PHOTOMETRIC,
    UNSUPPORTED_TRANSFER_SYNTAX,
    CorruptFrameError,
    DecodeBudgetError,
    EmptyFrameError,
    FrameError,
    FrameTooLargeError,
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
PIXEL_DATA_TAG = 0x7FE00010
# A deflated data set is first inflated this far to read its header; the rest is capped by that header.
DEFLATED_HEADER_BYTES = 1024 * 1024
# Elements after the pixel data (trailing padding, a digital signature) that a deflated data set may hold.
DEFLATED_TRAILER_BYTES = 64 * 1024


def decode_dicom(
    source: bytes | Path, *, max_pixels: int, max_frames: int, max_decoded_pixels: int | None = None
) -> list[np.ndarray]:
    """Every frame of a DICOM file (bytes or a path) as uint8 grayscale HxW arrays, in frame order."""
    return list(
        iter_dicom_frames(
            source, max_pixels=max_pixels, max_frames=max_frames, max_decoded_pixels=max_decoded_pixels
        )
    )


def iter_dicom_frames(
    source: bytes | Path, *, max_pixels: int, max_frames: int, max_decoded_pixels: int | None = None
) -> Iterator[np.ndarray]:
    """Check the header now, then decode frames lazily: a long cine streams one frame at a time.

    `max_pixels` bounds Rows * Columns (one frame), `max_frames` bounds NumberOfFrames and the frames the
    pixel data holds, and `max_decoded_pixels` (None: no bound beyond the other two) bounds frames x Rows x
    Columns over the whole input. Display mapping: 8-bit monochrome is used as stored (scanners burn their
    display mapping into it); deeper monochrome goes through the modality LUT and then the VOI LUT or
    window when the header has one, else a per-frame min-max stretch; MONOCHROME1 is inverted; colour
    becomes luminance.
    """
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data:
        raise EmptyFrameError(EMPTY_INPUT)
    budget = _Budget(max_pixels, max_frames, max_decoded_pixels)
    dataset = _read(data, budget)
    decoder, frames = _check_header(dataset, budget)
    return _decoded_frames(dataset, decoder, frames, budget)


class _Budget:
    """The limits one input is decoded under."""

    def __init__(self, max_pixels: int, max_frames: int, max_decoded_pixels: int | None) -> None:
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_decoded_pixels = max_decoded_pixels

    def over(self, pixels: int) -> bool:
        return self.max_decoded_pixels is not None and pixels > self.max_decoded_pixels

    def error(self, frames: int, rows: int, columns: int, pixels: int) -> DecodeBudgetError:
        return DecodeBudgetError(
            DECODE_BUDGET.format(
                frames=frames,
                width=columns,
                height=rows,
                pixels=pixels,
                max_decoded_pixels=self.max_decoded_pixels,
            )
        )


def _read(data: bytes, budget: _Budget) -> Dataset:
    """The data set; a deflated one is inflated here, capped by what its header declares."""
    try:
        stream = io.BytesIO(data)
        preamble = read_preamble(stream, False)
        file_meta = _read_file_meta_info(stream)
        if file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return pydicom.dcmread(io.BytesIO(data))
        body = data[stream.tell() :]
    except FrameError:
        raise
    except Exception as exc:  # pydicom raises many types on bad bytes; the client gets one
        raise CorruptFrameError(CORRUPT_DICOM) from exc
    inflated = _inflate(body, budget)
    try:
        dataset = read_dataset(io.BytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    except Exception as exc:
        raise CorruptFrameError(CORRUPT_DICOM) from exc
    # The inflated bytes are plain explicit VR little endian from here on.
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return FileDataset("deflated", dataset, preamble, file_meta, False, True)


def _inflate(body: bytes, budget: _Budget) -> bytes:
    """Inflate the header first, check it, then the rest with a cap of the pixel data it declares."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        head = inflater.decompress(body, DEFLATED_HEADER_BYTES)
        stream = io.BytesIO(head)
        header = read_dataset(stream, is_implicit_VR=False, is_little_endian=True, stop_when=_at_pixel_data)
    except Exception as exc:
        raise CorruptFrameError(CORRUPT_DICOM) from exc
    if inflater.eof:
        return head
    if "Rows" not in header or not _pixel_data_follows(head, stream.tell()):
        raise DecodeBudgetError(DEFLATED_HEADER_TOO_LONG.format(limit=DEFLATED_HEADER_BYTES))
    _check_sizes(header, budget)
    try:
        declared = int(get_expected_length(header, "bytes"))
    except Exception as exc:
        raise CorruptFrameError(DICOM_UNDECODABLE) from exc
    # The pixel data element's own header is 12 bytes (tag, VR, reserved, 32-bit length).
    cap = stream.tell() + 12 + declared + declared % 2 + DEFLATED_TRAILER_BYTES
    if len(head) > cap:
        raise DecodeBudgetError(DEFLATED_TOO_LARGE.format(limit=cap))
    try:
        rest = inflater.decompress(inflater.unconsumed_tail, cap - len(head) + 1)
    except zlib.error as exc:
        raise CorruptFrameError(CORRUPT_DICOM) from exc
    if len(head) + len(rest) > cap:
        raise DecodeBudgetError(DEFLATED_TOO_LARGE.format(limit=cap))
    return head + rest


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) == PIXEL_DATA_TAG


def _pixel_data_follows(head: bytes, offset: int) -> bool:
    """True when the header read stopped at the PixelData element (not at the end of the inflated bytes)."""
    return head[offset : offset + 4] == b"\xe0\x7f\x10\x00"


def _check_sizes(dataset: Dataset, budget: _Budget) -> int:
    """Rows, Columns and NumberOfFrames against the limits; the declared frame count."""
    rows = _int_attribute(dataset, "Rows")
    columns = _int_attribute(dataset, "Columns")
    frames = _int_attribute(dataset, "NumberOfFrames", default=1)
    if rows <= 0 or columns <= 0:
        raise EmptyFrameError(EMPTY_IMAGE.format(width=columns, height=rows))
    if rows * columns > budget.max_pixels:
        raise FrameTooLargeError(
            FRAME_TOO_LARGE.format(width=columns, height=rows, max_pixels=budget.max_pixels)
        )
    if frames <= 0:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword="NumberOfFrames"))
    if frames > budget.max_frames:
        raise TooManyFramesError(TOO_MANY_FRAMES.format(max_frames=budget.max_frames), frames=frames)
    if budget.over(frames * rows * columns):
        raise budget.error(frames, rows, columns, frames * rows * columns)
    return frames


def _check_header(dataset: Dataset, budget: _Budget) -> tuple[Decoder, int]:
    """Refuse what cannot or must not be decoded, from header attributes and the pixel data's length."""
    # The transfer syntax first: pydicom stops quietly where bytes turn to garbage, and a file meta
    # without a transfer syntax tells garbage apart from a real data set that has no pixels.
    transfer_syntax = _attribute(getattr(dataset, "file_meta", Dataset()), "TransferSyntaxUID")
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

    frames = _check_sizes(dataset, budget)
    photometric = _photometric(dataset)
    if photometric not in SUPPORTED_PHOTOMETRICS:
        raise UnsupportedFormatError(UNSUPPORTED_PHOTOMETRIC.format(value=shown(photometric)))
    for keyword in ("BitsAllocated", "BitsStored", "SamplesPerPixel"):
        _int_attribute(dataset, keyword)

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
    dataset: Dataset, decoder: Decoder, declared: int, budget: _Budget
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
        bits_stored = _int_attribute(dataset, "BitsStored")
        return to_grayscale_u8(pixels if bits_stored == 8 else _scale_to_u8(pixels, bits_stored))
    raise UnsupportedFormatError(UNSUPPORTED_PHOTOMETRIC.format(value=shown(photometric)))


def _monochrome_u8(pixels: np.ndarray, dataset: Dataset) -> np.ndarray:
    bits_stored = _int_attribute(dataset, "BitsStored")
    signed = _int_attribute(dataset, "PixelRepresentation", default=0) == 1
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


def _attribute(dataset: Dataset, keyword: str) -> Any:
    try:
        value = dataset.get(keyword)
    except Exception as exc:  # pydicom converts raw values lazily, so a bad VR surfaces here
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc
    if value is None or value == "":
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword))
    return value


def _int_attribute(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    if default is not None and keyword not in dataset:
        return default
    value = _attribute(dataset, keyword)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc


def _first_float(dataset: Dataset, keyword: str) -> float:
    """A multi-valued window attribute offers alternative windows; the first is the default view."""
    value = _attribute(dataset, keyword)
    try:
        return float(value[0] if isinstance(value, MultiValue) else value)
    except (TypeError, ValueError, IndexError) as exc:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc
