"""Reading a DICOM data set within a request's decode budget: the limits themselves (`DecodeBudget`), the
header's sizes against them, and a deflated data set inflated with a cap of what its header declares (pydicom
would inflate it whole before any check)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGTransferSyntaxes,
)

from usqa.service.frames.errors import (
    CORRUPT_DICOM,
    DECODE_BUDGET,
    DECODE_TOO_SLOW,
    DEFLATED_HEADER_TOO_LONG,
    DEFLATED_TOO_LARGE,
    DICOM_BAD_ATTRIBUTE,
    DICOM_CODESTREAM_SIZE,
    DICOM_UNDECODABLE,
    EMPTY_IMAGE,
    FRAME_TOO_LARGE,
    TOO_MANY_FRAMES,
    CorruptFrameError,
    DecodeBudgetError,
    DecodeTimeoutError,
    EmptyFrameError,
    FrameError,
    FrameTooLargeError,
    TooManyFramesError,
)
from usqa.service.frames.headers import declared_size

PIXEL_DATA_TAG = 0x7FE00010
# A deflated data set is first inflated this far to read its header; the rest is capped by that header.
DEFLATED_HEADER_BYTES = 1024 * 1024
# Elements after the pixel data (trailing padding, a digital signature) that a deflated data set may hold.
DEFLATED_TRAILER_BYTES = 64 * 1024


class DecodeBudget:
    """The limits one input is decoded under."""

    def __init__(
        self, max_pixels: int, max_frames: int, max_decoded_pixels: int | None, max_decode_s: float | None
    ) -> None:
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_decoded_pixels = max_decoded_pixels
        self.max_decode_s = max_decode_s
        self.deadline = None if max_decode_s is None else time.monotonic() + max_decode_s

    def check_time(self, frames: int) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DecodeTimeoutError(DECODE_TOO_SLOW.format(seconds=self.max_decode_s, frames=frames))

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


def read_within(data: bytes, budget: DecodeBudget) -> Dataset:
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


def _inflate(body: bytes, budget: DecodeBudget) -> bytes:
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
    check_sizes(header, budget)
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


def check_sizes(dataset: Dataset, budget: DecodeBudget) -> int:
    """Rows, Columns and NumberOfFrames against the limits; the declared frame count."""
    rows = int_attribute(dataset, "Rows")
    columns = int_attribute(dataset, "Columns")
    frames = int_attribute(dataset, "NumberOfFrames", default=1)
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


def attribute(dataset: Dataset, keyword: str) -> Any:
    try:
        value = dataset.get(keyword)
    except Exception as exc:  # pydicom converts raw values lazily, so a bad VR surfaces here
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc
    if value is None or value == "":
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword))
    return value


def int_attribute(dataset: Dataset, keyword: str, default: int | None = None) -> int:
    if default is not None and keyword not in dataset:
        return default
    value = attribute(dataset, keyword)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptFrameError(DICOM_BAD_ATTRIBUTE.format(keyword=keyword)) from exc


def check_codestreams(dataset: Dataset, declared: int, rows: int, columns: int) -> None:
    """Each JPEG 2000 or JPEG frame's own size (SIZ, SOF) must be the header's: a tiny file whose header says
    64x64 must not hand the codec a 4096x4096 codestream. Read before any frame is decoded."""
    syntax = dataset.file_meta.TransferSyntaxUID
    reader = (
        _j2k_size
        if syntax in JPEG2000TransferSyntaxes
        else _jpeg_size
        if syntax in JPEGTransferSyntaxes
        else None
    )
    if reader is None:
        return
    try:
        encoded_frames = generate_frames(dataset.PixelData, number_of_frames=declared)
        for index, encoded in enumerate(encoded_frames):
            if index >= declared:
                return
            size = reader(encoded)
            if size is not None and size != (columns, rows):
                raise CorruptFrameError(
                    DICOM_CODESTREAM_SIZE.format(
                        index=index, width=size[0], height=size[1], columns=columns, rows=rows
                    )
                )
    except FrameError:
        raise
    except Exception as exc:  # fragments that cannot be split into frames
        raise CorruptFrameError(DICOM_UNDECODABLE) from exc


def _j2k_size(codestream: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG 2000 codestream's SIZ segment (ISO/IEC 15444-1 A.5.1), or None."""
    at = codestream.find(b"\xff\x4f\xff\x51", 0, 256)  # SOC then SIZ (also inside a JP2 wrapper)
    if at < 0 or len(codestream) < at + 24:
        return None
    xsiz, ysiz, x_offset, y_offset = struct.unpack_from(">IIII", codestream, at + 8)
    return xsiz - x_offset, ysiz - y_offset


def _jpeg_size(codestream: bytes) -> tuple[int, int] | None:
    try:
        width, height = declared_size(codestream, "jpeg")
    except CorruptFrameError:
        return None
    return width, height
