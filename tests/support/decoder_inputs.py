"""The decoder malformed-input harness, part two: valid seeds (encoded images, pydicom's bundled
ultrasound), byte mutations, DICOM headers that lie, and headers that declare absurd sizes."""

from __future__ import annotations

import copy
import io
import resource
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pydicom.examples
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    MPEG2MPML,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from tests.service.conftest import dicom_bytes, frame_of_level
from tests.service.frames.conftest import FrameBuilders
from tests.support.decoder_tally import MAX_PIXELS

# -- valid inputs to start from --------------------------------------------------------------------------


@cache
def encoded_images() -> dict[str, list[bytes]]:
    """Small valid images of each container: grayscale and colour, two sizes, a 16-bit PNG."""
    gray = frame_of_level(90, shape=(24, 32), seed=1)
    colour = cv2.cvtColor(frame_of_level(140, shape=(20, 28), seed=2), cv2.COLOR_GRAY2BGR)
    colour[:, :, 0] //= 2
    deep = (gray.astype(np.uint16) * 257)[:16, :16]
    return {
        "png": [FrameBuilders.encode(image, ".png") for image in (gray, colour, deep)],
        "jpeg": [
            FrameBuilders.encode(gray, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
            FrameBuilders.encode(colour, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ],
        "bmp": [FrameBuilders.encode(gray, ".bmp"), FrameBuilders.encode(colour, ".bmp")],
        "tiff": [FrameBuilders.encode(gray, ".tif"), FrameBuilders.encode(colour, ".tif")],
    }


def bundled_ultrasound() -> list[Path]:
    """pydicom's five bundled ultrasound files, by path: never `get_testdata_file`, which may download."""
    examples = [pydicom.examples.get_path(name) for name in ("rgb_color", "palette_color", "ybr_color")]
    examples.append(pydicom.examples.get_path("jpeg2k"))
    # The fifth US file sits beside the examples in pydicom's own test-file folder (no example name).
    examples.append(examples[0].parent / "ExplVR_BigEnd.dcm")
    return examples


@cache
def dicom_seeds() -> dict[str, bytes]:
    """The bundled ultrasound files and two native 8-bit files the suite writes (one frame, a 3-frame cine)."""
    seeds = {path.name: path.read_bytes() for path in bundled_ultrasound()}
    seeds["native-1.dcm"] = dicom_bytes([frame_of_level(100, shape=(24, 32), seed=3)])
    seeds["native-cine.dcm"] = dicom_bytes([frame_of_level(60 + 20 * i, (16, 20), seed=i) for i in range(3)])
    return seeds


@cache
def dicom_datasets() -> dict[str, Dataset]:
    return {name: pydicom.dcmread(io.BytesIO(data)) for name, data in dicom_seeds().items()}


def pixel_data_offset(data: bytes) -> int:
    """Where the header stops (the PixelData tag), so mutations can favour the header over pixels."""
    for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        found = data.rfind(tag)
        if found > 0:
            return found
    return min(len(data), 2048)


# -- mutations -------------------------------------------------------------------------------------------


@st.composite
def positions(draw: st.DrawFn, length: int, header: int) -> int:
    """A byte position, half the time inside the header (where a flipped bit changes the meaning)."""
    if draw(st.booleans()) and header > 0:
        return draw(st.integers(0, min(header, length) - 1))
    return draw(st.integers(0, length - 1))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, header: int) -> bytes:
    """`seed` truncated, bit-flipped, overwritten, with bytes inserted or removed: one to four edits."""
    data = bytearray(seed)
    for edit in draw(
        st.lists(
            st.sampled_from(["truncate", "flip", "flip", "overwrite", "insert", "delete"]),
            min_size=1,
            max_size=4,
        )
    ):
        if not data:
            break
        at = draw(positions(len(data), header))
        if edit == "truncate":
            del data[at:]
        elif edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def mutated_image(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(encoded_images())))
    seed = draw(st.sampled_from(encoded_images()[kind]))
    return kind, draw(mutated(seed, header=min(len(seed), 96)))


@st.composite
def mutated_dicom(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(dicom_seeds())))
    seed = dicom_seeds()[name]
    return name, draw(mutated(seed, header=pixel_data_offset(seed)))


# -- lying DICOM headers ---------------------------------------------------------------------------------

_US = "US"
_NUMBER_STRINGS = st.one_of(
    st.integers(-3, 3).map(str),
    st.integers(0, 10**9).map(str),
    st.sampled_from(["", "abc", "1.5", "1e9", "NaN", "inf", "-inf", " 7 ", "9" * 30, "0x10"]),
)
TRANSFER_SYNTAXES = [
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    RLELossless,
    MPEG2MPML,
    "1.2.3.4.5",
    "not a uid",
    "",
]
PHOTOMETRICS = [
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "PALETTE COLOR",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
    "HSV",
    "",
    "monochrome2",
    "RGB\\RGB",
]
# keyword -> (VR, strategy of values): unsigned shorts anywhere in range, strings that are not numbers.
LIES: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "Rows": (_US, st.one_of(st.sampled_from([0, 1, 2, 4096, 65535]), st.integers(0, 65535))),
    "Columns": (_US, st.one_of(st.sampled_from([0, 1, 3, 4096, 65535]), st.integers(0, 65535))),
    "BitsAllocated": (_US, st.sampled_from([0, 1, 7, 8, 12, 16, 24, 32, 64, 65535])),
    "BitsStored": (_US, st.sampled_from([0, 1, 7, 8, 12, 16, 17, 32, 65535])),
    "HighBit": (_US, st.sampled_from([0, 7, 11, 15, 31, 65535])),
    "SamplesPerPixel": (_US, st.sampled_from([0, 1, 2, 3, 4, 255, 65535])),
    "PixelRepresentation": (_US, st.sampled_from([0, 1, 2, 65535])),
    "PlanarConfiguration": (_US, st.sampled_from([0, 1, 2])),
    "NumberOfFrames": ("IS", _NUMBER_STRINGS),
    "PhotometricInterpretation": ("CS", st.one_of(st.sampled_from(PHOTOMETRICS), st.text(max_size=12))),
    "WindowCenter": ("DS", _NUMBER_STRINGS),
    "WindowWidth": ("DS", st.sampled_from(["0", "1", "-5", "1e30", "NaN", "abc", "40\\400"])),
    "VOILUTFunction": ("CS", st.sampled_from(["LINEAR", "SIGMOID", "LINEAR_EXACT", "BOGUS", ""])),
    "RescaleSlope": ("DS", st.sampled_from(["0", "1", "-1", "1e300", "NaN", "x"])),
    "RescaleIntercept": ("DS", st.sampled_from(["0", "-1024", "1e300", "inf"])),
}


def raw_element(dataset: Dataset, keyword: str, vr: str, value: Any) -> RawDataElement:
    """An element with exactly these bytes: pydicom would refuse to hold most lies as typed values."""
    implicit, little = dataset.original_encoding
    if vr == _US:
        raw = struct.pack("<H" if little else ">H", value)
    else:
        raw = str(value).encode("latin-1", errors="replace")
        raw += b" " * (len(raw) % 2)
    number = pydicom.datadict.tag_for_keyword(keyword)
    assert number is not None, keyword
    tag = Tag(number)
    return RawDataElement(tag, vr, len(raw), raw, 0, bool(implicit), bool(little))


@st.composite
def lying_dicom(draw: st.DrawFn) -> tuple[str, bytes]:
    """A bundled file with PixelData removed, attributes deleted or lying, or a false transfer syntax."""
    name = draw(st.sampled_from(sorted(dicom_datasets())))
    original = dicom_datasets()[name]
    dataset = copy.deepcopy(original)
    told: list[str] = []
    if draw(st.integers(0, 9)) == 0:
        del dataset.PixelData
        told.append("no PixelData")
    for keyword in draw(st.lists(st.sampled_from(sorted(LIES)), min_size=0, max_size=4, unique=True)):
        vr, values = LIES[keyword]
        if draw(st.integers(0, 5)) == 0:
            dataset.pop(keyword, None)
            told.append(f"no {keyword}")
            continue
        value = draw(values)
        dataset[keyword] = raw_element(dataset, keyword, vr, value)
        told.append(f"{keyword}={value!r}")
    data = write_dicom(dataset)
    if not told or draw(st.integers(0, 3)) == 0:
        syntax = draw(st.sampled_from(TRANSFER_SYNTAXES))
        data = with_transfer_syntax(data, syntax)
        told.append(f"TransferSyntaxUID={syntax!r}")
    return f"{name} with {', '.join(told)}", data


def write_dicom(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    with pydicom.config.disable_value_validation():
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def with_transfer_syntax(data: bytes, syntax: str) -> bytes:
    """The file with its file meta claiming `syntax`; the data set stays encoded as it was."""
    (meta_length,) = struct.unpack_from("<I", data, 140)  # (0002,0000) UL, right after "DICM"
    meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    meta.TransferSyntaxUID = UID(syntax)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    with pydicom.config.disable_value_validation():
        write_file_meta_info(fp, meta, enforce_standard=False)
    return data[:132] + fp.getvalue() + data[144 + meta_length :]


# -- absurd declared sizes -------------------------------------------------------------------------------


@st.composite
def absurd_size(draw: st.DrawFn, largest_side: int) -> tuple[int, int]:
    """Width and height whose product exceeds the pixel limit, each side at most `largest_side`."""
    width = draw(st.integers(1, largest_side))
    smallest_height = MAX_PIXELS // width + 1
    if smallest_height > largest_side:
        width, smallest_height = largest_side, MAX_PIXELS // largest_side + 1
    return width, draw(st.integers(smallest_height, largest_side))


def png_declaring(width: int, height: int) -> bytes:
    return FrameBuilders.png_declaring(width, height)


def jpeg_declaring(width: int, height: int) -> bytes:
    return FrameBuilders.jpeg_declaring(width, height)


def bmp_declaring(width: int, height: int) -> bytes:
    return FrameBuilders.bmp_declaring(width, height)


def tiff_declaring(width: int, height: int) -> bytes:
    return FrameBuilders.tiff_declaring(width, height)


def dicom_declaring(width: int, height: int) -> bytes:
    dataset = copy.deepcopy(dicom_datasets()["native-1.dcm"])
    dataset["Rows"] = raw_element(dataset, "Rows", _US, height)
    dataset["Columns"] = raw_element(dataset, "Columns", _US, width)
    return write_dicom(dataset)


# Largest side each header can state: PNG and TIFF 2**31 - 1 (and more), BMP int32, JPEG and DICOM 16 bits.
DECLARING: dict[str, tuple[Callable[[int, int], bytes], int]] = {
    "png": (png_declaring, 2**31 - 1),
    "jpeg": (jpeg_declaring, 65535),
    "bmp": (bmp_declaring, 2**31 - 1),
    "tiff": (tiff_declaring, 2**32 - 1),
    "dicom": (dicom_declaring, 65535),
}


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
