"""Container sniffing and header-only size reads, so an oversized frame is refused before it is decoded.

Each reader parses just enough of the format's own header (PNG IHDR, JPEG SOF, BMP info header, TIFF
first IFD) to learn the declared width and height; the pixel data is never touched here.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple

from usqa.service.frames.errors import CORRUPT_HEADER, CorruptFrameError

ImageKind = Literal["png", "jpeg", "bmp", "tiff"]
SniffedKind = Literal["png", "jpeg", "bmp", "tiff", "dicom"]

KIND_NAMES: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "tiff": "TIFF", "dicom": "DICOM"}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
BMP_SIGNATURE = b"BM"
TIFF_LITTLE_ENDIAN = b"II*\x00"
TIFF_BIG_ENDIAN = b"MM\x00*"
DICOM_PREAMBLE_LENGTH = 128
DICOM_MAGIC = b"DICM"
# Enough bytes to sniff every kind above (the DICOM magic sits after a 128-byte preamble).
SNIFF_LENGTH = DICOM_PREAMBLE_LENGTH + len(DICOM_MAGIC)

# Start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_SOS = 0xDA
_JPEG_EOI = b"\xff\xd9"
_TIFF_IMAGE_WIDTH = 256
_TIFF_IMAGE_LENGTH = 257
_TIFF_SHORT = 3
_TIFF_LONG = 4


class DeclaredSize(NamedTuple):
    width: int
    height: int


def sniff_format(data: bytes) -> SniffedKind | None:
    """Name the container from its magic bytes, or None; the extension and the media type are not trusted."""
    # DICOM first: a DICOM preamble may itself start with a TIFF header (dual-personality files).
    if data[DICOM_PREAMBLE_LENGTH:SNIFF_LENGTH] == DICOM_MAGIC:
        return "dicom"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if data.startswith((TIFF_LITTLE_ENDIAN, TIFF_BIG_ENDIAN)):
        return "tiff"
    if data.startswith(BMP_SIGNATURE):
        return "bmp"
    return None


def declared_size(data: bytes, kind: ImageKind) -> DeclaredSize:
    """Width and height as the header declares them; CorruptFrameError when the header cannot say."""
    try:
        size = _READERS[kind](data)
    except (struct.error, IndexError) as exc:
        raise CorruptFrameError(CORRUPT_HEADER.format(kind=KIND_NAMES[kind])) from exc
    if size is None:
        raise CorruptFrameError(CORRUPT_HEADER.format(kind=KIND_NAMES[kind]))
    return size


def jpeg_is_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first scan.

    OpenCV 4.x hands back a truncated JPEG with its missing rows painted grey (and only a warning), so
    completeness is checked here rather than left to the decoder version. Entropy-coded data escapes
    0xFF, so FF D9 after the scan header can only be the real end marker.
    """
    layout = _jpeg_layout(data)
    return layout is not None and layout[1] is not None and data.find(_JPEG_EOI, layout[1]) >= 0


def _png_size(data: bytes) -> DeclaredSize | None:
    # The signature, then IHDR must be the first chunk: length 13, type, width, height (big-endian).
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return DeclaredSize(width, height)


def _jpeg_size(data: bytes) -> DeclaredSize | None:
    layout = _jpeg_layout(data)
    return None if layout is None else layout[0]


def _jpeg_layout(data: bytes) -> tuple[DeclaredSize, int | None] | None:
    """The SOF size and the offset of the first scan's data (None if the bytes stop before it)."""
    if not data.startswith(JPEG_SIGNATURE):
        return None
    size: DeclaredSize | None = None
    position = 2
    while position + 1 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2:
            return None
        if marker in _JPEG_SOF_MARKERS:
            # Segment: length, precision (1 byte), height, width. Height 0 defers it to a DNL marker,
            # which OpenCV cannot read either, so it counts as an unreadable header.
            height, width = struct.unpack_from(">HH", data, position + 5)
            if height == 0:
                return None
            size = DeclaredSize(width, height)
        if marker == _JPEG_SOS:
            return None if size is None else (size, position + 2 + length)
        if marker == 0xD9:  # end of image before any scan
            return None
        position += 2 + length
    return None if size is None else (size, None)


def _bmp_size(data: bytes) -> DeclaredSize | None:
    if not data.startswith(BMP_SIGNATURE):
        return None
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:  # BITMAPCOREHEADER: unsigned 16-bit sides
        width, height = struct.unpack_from("<HH", data, 18)
    elif info_size >= 40:  # BITMAPINFOHEADER and later: signed, a negative height means top-down rows
        width, height = struct.unpack_from("<ii", data, 18)
        height = abs(height)
    else:
        return None
    return None if width < 0 else DeclaredSize(width, height)


def _tiff_size(data: bytes) -> DeclaredSize | None:
    # OpenCV decodes the first page only, so the first image file directory is the one that counts.
    if data.startswith(TIFF_LITTLE_ENDIAN):
        order = "<"
    elif data.startswith(TIFF_BIG_ENDIAN):
        order = ">"
    else:
        return None
    (directory,) = struct.unpack_from(order + "I", data, 4)
    (entries,) = struct.unpack_from(order + "H", data, directory)
    sides: dict[int, int] = {}
    for index in range(entries):
        tag, field_type = struct.unpack_from(order + "HH", data, directory + 2 + 12 * index)
        value_offset = directory + 2 + 12 * index + 8
        if tag in (_TIFF_IMAGE_WIDTH, _TIFF_IMAGE_LENGTH):
            if field_type == _TIFF_SHORT:
                (sides[tag],) = struct.unpack_from(order + "H", data, value_offset)
            elif field_type == _TIFF_LONG:
                (sides[tag],) = struct.unpack_from(order + "I", data, value_offset)
            else:
                return None
    if _TIFF_IMAGE_WIDTH not in sides or _TIFF_IMAGE_LENGTH not in sides:
        return None
    return DeclaredSize(sides[_TIFF_IMAGE_WIDTH], sides[_TIFF_IMAGE_LENGTH])


_READERS = {"png": _png_size, "jpeg": _jpeg_size, "bmp": _bmp_size, "tiff": _tiff_size}
