"""Hostile DICOM files built in memory (issue 28): small files that decode to far more than they look.

Each builder returns the bytes of a well-formed Part 10 file; what is hostile is the pixel data's size
against its header (more frames than NumberOfFrames says), a deflated data set that inflates to megabytes,
or a header declaring huge compressed frames in a few bytes.
"""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

ULTRASOUND_MULTIFRAME = UID("1.2.840.10008.5.1.4.1.1.3.1")
# A JPEG 2000 codestream's first marker (SOC) then SIZ: enough to look like a frame; never decoded here.
J2K_STUB = b"\xff\x4f\xff\x51" + bytes(40)


def _dataset(rows: int, columns: int, declared_frames: int, transfer_syntax: UID) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ULTRASOUND_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows = rows
    dataset.Columns = columns
    dataset.NumberOfFrames = declared_frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    return dataset


def _written(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def excess_frames(held: int, *, side: int = 2, declared: int = 1, deflated: bool = False) -> bytes:
    """NumberOfFrames says `declared`, the native pixel data holds `held` frames of side x side zeros.

    Deflated, 16,384 frames of 32x32 (16 MiB of pixels) fit in about 17 KB.
    """
    syntax = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    dataset = _dataset(side, side, declared, syntax)
    dataset.PixelData = bytes(held * side * side)
    dataset["PixelData"].VR = "OB"
    return _written(dataset)


def huge_compressed_frames(frames: int = 40, side: int = 4096) -> bytes:
    """`frames` JPEG 2000 frames declared side x side (40 of 4096x4096 is 671 M pixels) in under 3 KB."""
    dataset = _dataset(side, side, frames, JPEG2000Lossless)
    dataset.PixelData = encapsulate([J2K_STUB] * frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    return _written(dataset)


def offset_table_frames(held: int, *, declared: int = 1, side: int = 16) -> bytes:
    """An encapsulated data set whose offset table lists `held` frames while NumberOfFrames says `declared`."""
    dataset = _dataset(side, side, declared, JPEG2000Lossless)
    dataset.PixelData = encapsulate([J2K_STUB] * held, has_bot=True)
    dataset["PixelData"].VR = "OB"
    return _written(dataset)


def zero_j2k_frames(frames: int = 8, side: int = 4096) -> bytes:
    """`frames` real JPEG 2000 frames of side x side zeros: a few hundred bytes that take seconds to decode.

    8 of 4096x4096 are exactly the default budget of decoded pixels (128 Mi), so they are decoded, not refused.
    """
    import numpy as np
    from openjpeg import encode

    codestream = encode(np.zeros((side, side), np.uint8))
    dataset = _dataset(side, side, frames, JPEG2000Lossless)
    dataset.PixelData = encapsulate([codestream] * frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    return _written(dataset)


def undersized_header_j2k(declared_side: int = 64, encoded_side: int = 4096, frames: int = 1) -> bytes:
    """A header of declared_side x declared_side frames whose JPEG 2000 codestreams are encoded_side wide."""
    import numpy as np
    from openjpeg import encode

    codestream = encode(np.zeros((encoded_side, encoded_side), np.uint8))
    dataset = _dataset(declared_side, declared_side, frames, JPEG2000Lossless)
    dataset.PixelData = encapsulate([codestream] * frames, has_bot=True)
    dataset["PixelData"].VR = "OB"
    return _written(dataset)
