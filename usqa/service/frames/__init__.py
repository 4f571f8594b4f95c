"""The one frame pipeline, shared by training and serving: decode anything to uint8 grayscale, then
`prepare_frame` it to the model input described by a `FrameSpec`. See docs/frames.md."""

from usqa.contracts.frames import FrameSpec
from usqa.service.frames.decode import (
    MEDIA_TYPES,
    RAW_MEDIA_TYPE,
    decode_bytes,
    decode_dicom,
    decode_image_bytes,
    decode_raw,
    iter_source_frames,
    iter_video_frames,
    read_frames,
    sniff_format,
)
from usqa.service.frames.errors import (
    CorruptFrameError,
    DecodeBudgetError,
    DecodeTimeoutError,
    EmptyFrameError,
    FrameError,
    FrameTooLargeError,
    NoPixelDataError,
    RawSizeMismatchError,
    TooManyFramesError,
    UnsupportedFormatError,
)
from usqa.service.frames.masks import prepare_mask
from usqa.service.frames.preprocess import (
    find_scan_region,
    letterbox,
    prepare_frame,
    prepare_frames,
    to_grayscale_u8,
)

__all__ = [
    "MEDIA_TYPES",
    "RAW_MEDIA_TYPE",
    "CorruptFrameError",
    "DecodeBudgetError",
    "DecodeTimeoutError",
    "EmptyFrameError",
    "FrameError",
    "FrameSpec",
    "FrameTooLargeError",
    "NoPixelDataError",
    "RawSizeMismatchError",
    "TooManyFramesError",
    "UnsupportedFormatError",
    "decode_bytes",
    "decode_dicom",
    "decode_image_bytes",
    "decode_raw",
    "find_scan_region",
    "iter_source_frames",
    "iter_video_frames",
    "letterbox",
    "prepare_frame",
    "prepare_frames",
    "prepare_mask",
    "read_frames",
    "sniff_format",
    "to_grayscale_u8",
]
