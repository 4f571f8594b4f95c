from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pydicom.examples
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from usqa.service.frames.dicom import decode_dicom, iter_dicom_frames
from usqa.service.frames.errors import (
    DICOM_UNDECODABLE,
    TOO_MANY_FRAMES,
    CorruptFrameError,
    TooManyFramesError,
)

Build = Any  # the conftest `build` fixture (FrameBuilders)
LIMITS: dict[str, int] = {"max_pixels": 4096 * 4096, "max_frames": 1000}


def _bundled_ultrasound() -> list[Path]:
    """Every pydicom test file whose Modality is US (the default pattern never downloads anything)."""
    found = []
    for name in get_testdata_files():
        path = Path(name)
        if not path.is_file() or path.suffix in {".py", ".txt", ".json", ".dump", ".icc", ".gz"}:
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        if header.get("Modality") == "US":
            found.append(path)
    return sorted(found)


BUNDLED_ULTRASOUND = _bundled_ultrasound()

# Other bundled files that cover the remaining transfer syntaxes and pixel layouts: (name, frames).
BUNDLED_CODECS = [
    ("SC_rgb_rle_2frame.dcm", 2),  # RLE lossless, RGB, two frames
    ("rtdose_rle.dcm", 15),  # RLE lossless, 32-bit monochrome, fifteen frames
    ("MR_small_RLE.dcm", 1),  # RLE lossless, 16-bit monochrome with a window
    ("MR_small_jpeg_ls_lossless.dcm", 1),  # JPEG-LS lossless
    ("JPEGLSNearLossless_08.dcm", 1),  # JPEG-LS near-lossless
    ("SC_rgb_jpeg_gdcm.dcm", 1),  # JPEG lossless SV1
    ("JPGExtended.dcm", 1),  # JPEG extended, 12-bit
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", 1),  # JPEG baseline, YBR_FULL_422
    ("MR_small_jp2klossless.dcm", 1),  # JPEG 2000 lossless
    ("693_J2KI.dcm", 1),  # JPEG 2000 lossy, rescaled CT
    ("SC_ybr_full_422_uncompressed.dcm", 1),  # native YBR_FULL_422 (subsampled chroma)
    ("image_dfl.dcm", 1),  # deflated explicit VR little endian
    ("ExplVR_BigEnd.dcm", 1),  # big endian
]
# The same MR image stored six ways; every codec must give the same display frame.
MR_SMALL_VARIANTS = [
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
]


def test_discovery_found_the_documented_examples() -> None:
    names = {path.name for path in BUNDLED_ULTRASOUND}
    for example in ("ybr_color", "palette_color", "rgb_color", "jpeg2k"):
        assert pydicom.examples.get_path(example).name in names


@pytest.mark.parametrize("path", BUNDLED_ULTRASOUND, ids=lambda path: path.name)
def test_every_bundled_ultrasound_example_decodes(path: Path) -> None:
    header = pydicom.dcmread(path, stop_before_pixels=True)
    frames = decode_dicom(path, **LIMITS)
    assert len(frames) == int(header.get("NumberOfFrames") or 1)
    for frame in frames:
        assert frame.shape == (header.Rows, header.Columns)
        assert frame.dtype == np.uint8
    assert frames[0].max() > frames[0].min()


@pytest.mark.parametrize(("name", "count"), BUNDLED_CODECS, ids=[name for name, _ in BUNDLED_CODECS])
def test_bundled_files_in_other_transfer_syntaxes_decode(build: Build, name: str, count: int) -> None:
    path = build.bundled_dicom_files()[name]
    header = pydicom.dcmread(path, stop_before_pixels=True)
    frames = decode_dicom(path.read_bytes(), **LIMITS)
    assert len(frames) == count
    assert {frame.shape for frame in frames} == {(header.Rows, header.Columns)}
    assert {frame.dtype for frame in frames} == {np.dtype(np.uint8)}


def test_every_codec_gives_the_same_display_frame(build: Build) -> None:
    files = build.bundled_dicom_files()
    reference = decode_dicom(files[MR_SMALL_VARIANTS[0]], **LIMITS)[0]
    for name in MR_SMALL_VARIANTS[1:]:
        np.testing.assert_array_equal(decode_dicom(files[name], **LIMITS)[0], reference, err_msg=name)


def test_the_cine_streams_frame_by_frame_in_order() -> None:
    path = pydicom.examples.get_path("ybr_color")
    streamed = iter_dicom_frames(path, **LIMITS)
    first = next(streamed)
    rest = list(streamed)
    assert len(rest) == 29
    np.testing.assert_array_equal(first, decode_dicom(path, **LIMITS)[0])


def test_bytes_and_path_give_the_same_frames() -> None:
    path = pydicom.examples.get_path("palette_color")
    np.testing.assert_array_equal(
        decode_dicom(path, **LIMITS)[0], decode_dicom(path.read_bytes(), **LIMITS)[0]
    )


# --- display mapping, on data sets built in memory -------------------------------------------------------


def _decode(build: Build, dataset: Dataset) -> list[np.ndarray]:
    return decode_dicom(build.dicom_bytes(dataset), **LIMITS)


def test_eight_bit_monochrome_is_used_as_stored(build: Build) -> None:
    pixels = build.gradient(20, 30)
    np.testing.assert_array_equal(_decode(build, build.dicom_dataset(pixels))[0], pixels)


def test_monochrome1_is_inverted(build: Build) -> None:
    pixels = build.gradient(20, 30)
    frame = _decode(build, build.dicom_dataset(pixels, photometric="MONOCHROME1"))[0]
    np.testing.assert_array_equal(frame, 255 - pixels)


def test_multi_frame_monochrome_keeps_frame_order(build: Build) -> None:
    pixels = np.stack([np.full((6, 8), level, dtype=np.uint8) for level in (10, 20, 30)])
    frames = _decode(build, build.dicom_dataset(pixels, NumberOfFrames=3))
    assert [int(frame[0, 0]) for frame in frames] == [10, 20, 30]


def test_rgb_becomes_luminance(build: Build) -> None:
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    rgb[2:, :, 2] = 255
    frame = _decode(build, build.dicom_dataset(rgb, photometric="RGB"))[0]
    np.testing.assert_array_equal(frame, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


STORED_12_BIT = np.array([[0, 1000, 2000, 3000, 4000]], dtype=np.uint16)


def test_deep_monochrome_without_a_window_is_min_max_scaled(build: Build) -> None:
    frame = _decode(build, build.dicom_dataset(STORED_12_BIT, bits_stored=12))[0]
    np.testing.assert_array_equal(frame, [[0, 64, 128, 191, 255]])


def test_deep_monochrome_uses_its_linear_window(build: Build) -> None:
    dataset = build.dicom_dataset(STORED_12_BIT, bits_stored=12, WindowCenter=2000, WindowWidth=4001)
    # PS3.3 C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clipped; this window spans 0..4000.
    np.testing.assert_array_equal(_decode(build, dataset)[0], [[0, 64, 128, 191, 255]])


def test_a_narrow_window_saturates(build: Build) -> None:
    dataset = build.dicom_dataset(STORED_12_BIT, bits_stored=12, WindowCenter=2000, WindowWidth=100)
    # The centre: (2000 - 1999.5) / 99 + 0.5 = 0.505 -> 129.
    np.testing.assert_array_equal(_decode(build, dataset)[0], [[0, 0, 129, 255, 255]])


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_other_voi_functions_map_the_centre_to_mid_grey(build: Build, function: str) -> None:
    dataset = build.dicom_dataset(
        STORED_12_BIT, bits_stored=12, WindowCenter=2000, WindowWidth=1000, VOILUTFunction=function
    )
    frame = _decode(build, dataset)[0]
    assert frame[0, 2] == 128
    assert frame[0, 0] < 10
    assert frame[0, 4] > 245


def test_rescale_applies_before_the_window(build: Build) -> None:
    # CT-style: stored 0..4000, Hounsfield = stored - 1024, a soft-tissue window of 40 / 400.
    dataset = build.dicom_dataset(
        STORED_12_BIT,
        bits_stored=12,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
    )
    frame = _decode(build, dataset)[0]
    # Stored 1000 is -24 HU: (-24 - 39.5) / 399 + 0.5 = 0.3409 -> 87.
    np.testing.assert_array_equal(frame, [[0, 87, 255, 255, 255]])


def test_a_voi_lut_sequence_takes_precedence_over_min_max(build: Build) -> None:
    pixels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    dataset = build.dicom_dataset(pixels, bits_stored=12)
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [256, 0, 8])
    item.add_new("LUTData", "US", list(range(255, -1, -1)))  # an inverting LUT
    dataset.VOILUTSequence = [item]
    np.testing.assert_array_equal(_decode(build, dataset)[0], 255 - pixels)


def test_a_one_bit_mask_is_black_and_white(build: Build) -> None:
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[2:6, 2:6] = 1
    dataset = build.dicom_dataset(pixels, bits_stored=1)
    np.testing.assert_array_equal(_decode(build, dataset)[0], pixels * 255)


# --- failures that only a DICOM path has -----------------------------------------------------------------


def test_undecodable_compressed_frames_are_corrupt_with_the_codec_error_as_cause(build: Build) -> None:
    dataset = build.dicom_dataset(
        None,
        transfer_syntax=JPEGBaseline8Bit,
        Rows=8,
        Columns=8,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelRepresentation=0,
    )
    dataset.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"])
    dataset["PixelData"].VR = "OB"
    with pytest.raises(CorruptFrameError) as caught:
        decode_dicom(build.dicom_bytes(dataset), **LIMITS)
    assert str(caught.value) == DICOM_UNDECODABLE
    assert caught.value.__cause__ is not None


def test_the_header_is_checked_before_iteration_starts(build: Build) -> None:
    pixels = np.zeros((4, 6, 8), dtype=np.uint8)
    data = build.dicom_bytes(build.dicom_dataset(pixels, NumberOfFrames=4))
    with pytest.raises(TooManyFramesError) as caught:
        iter_dicom_frames(data, max_pixels=10_000, max_frames=3)  # raises here, not on next()
    assert str(caught.value) == TOO_MANY_FRAMES.format(max_frames=3)
