"""Typed frame-pipeline errors and the messages clients see.

The API maps each class's stable `code` to a 4xx response; the messages below are the whole vocabulary a
client can receive, and the tests import them so a reworded message is one edit, not a hunt.
"""

from __future__ import annotations

from typing import ClassVar

UNSUPPORTED_MEDIA_TYPE = "unsupported media type {media_type!r}; supported: {supported}"
UNRECOGNISED_IMAGE = "unrecognised image data: expected PNG, JPEG, BMP or TIFF bytes"
UNRECOGNISED_BYTES = (
    "unrecognised data: expected PNG, JPEG, BMP, TIFF or DICOM bytes (raw 8-bit frames need width and height)"
)
UNRECOGNISED_FILE = "unrecognised file type: {name} is not an image, DICOM or video file"
UNSUPPORTED_ARRAY = "unsupported image array: shape {shape}, dtype {dtype}; expected HxW, HxWx3 or HxWx4"
UNSUPPORTED_TRANSFER_SYNTAX = "unsupported DICOM transfer syntax: {name}"
UNSUPPORTED_PHOTOMETRIC = "unsupported DICOM photometric interpretation: {value}"

CONTENT_MISMATCH = "corrupt data: declared as {media_type} but the bytes are not {kind}"
CORRUPT_HEADER = "corrupt {kind} data: the header is truncated or invalid"
CORRUPT_IMAGE = "corrupt {kind} data: the image could not be decoded"
CORRUPT_DICOM = "corrupt DICOM data: the data set could not be parsed"
DICOM_BAD_ATTRIBUTE = "corrupt DICOM data: {keyword} is missing or invalid"
DICOM_SHORT_PIXEL_DATA = (
    "corrupt DICOM data: the header declares {expected} bytes of pixel data but {actual} are present"
)
DICOM_UNDECODABLE = "corrupt DICOM data: the pixel data could not be decoded"
DICOM_CODESTREAM_SIZE = (
    "corrupt DICOM data: frame {index} is encoded as {width}x{height} but the header declares {columns}x{rows}; "
    "refused before decoding"
)
CORRUPT_VIDEO = "corrupt video: {name} could not be opened or read as a video"

EMPTY_INPUT = "empty input: no bytes received"
EMPTY_IMAGE = "empty image: {width}x{height} pixels"
EMPTY_FOLDER = "empty source: {name} holds no image, DICOM or video files"

FRAME_TOO_LARGE = (
    "frame too large: {width}x{height} pixels exceeds the limit of {max_pixels} pixels per frame"
)
RAW_SIZE_MISMATCH = "raw frame size mismatch: {width}x{height} needs {expected} bytes, got {actual}"
RAW_SIZE_REQUIRED = "raw 8-bit frames need both width and height"
NO_PIXEL_DATA = "DICOM data set has no pixel data"
TOO_MANY_FRAMES = "too many frames: the input has more than {max_frames}"
PIXEL_DATA_FRAMES = (
    "too many frames: the DICOM pixel data holds {frames} frames, more than the limit of {max_frames}"
)
DECODE_BUDGET = (
    "decoded size over the budget: {frames} frames of {width}x{height} are {pixels} pixels, more than the "
    "limit of {max_decoded_pixels} decoded pixels per request"
)
DEFLATED_TOO_LARGE = "deflated DICOM data inflates past {limit} bytes, more than its header declares"
DECODE_TOO_SLOW = "decoding took longer than the limit of {seconds:g} s per request after {frames} frames; the input was refused"
DECODER_CRASHED = "corrupt data: the decoder stopped on this input (its process ended); the input was refused"
DEFLATED_HEADER_TOO_LONG = "deflated DICOM data: no pixel data in its first {limit} inflated bytes"
# A value taken from the input (a header field, a media type, a file name) is shown at most this long.
SHOWN_VALUE_CHARS = 64


def cut(text: str) -> str:
    """A client's string cut to `SHOWN_VALUE_CHARS` (for `{value!r}` fields, whose repr escapes the rest)."""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "..."


def shown(value: object) -> str:
    """A value from the input as a message shows it: cut to `SHOWN_VALUE_CHARS`, control bytes escaped."""
    text = cut(str(value))
    return text if text.isprintable() else ascii(text)


class FrameError(ValueError):
    """Base of every frame-pipeline failure: `code` is stable for clients, the message is for people."""

    code: ClassVar[str] = "invalid_frame"


class UnsupportedFormatError(FrameError):
    """The input is of a kind the pipeline does not read (media type, file type, codec, array layout)."""

    code: ClassVar[str] = "unsupported_format"


class CorruptFrameError(FrameError):
    """The input claims a supported format but its bytes cannot be parsed or decoded."""

    code: ClassVar[str] = "corrupt_frame"


class EmptyFrameError(FrameError):
    """Zero bytes, or an image with no pixels."""

    code: ClassVar[str] = "empty_frame"


class FrameTooLargeError(FrameError):
    """A frame declares more pixels than the limit; raised before its pixel data is decoded."""

    code: ClassVar[str] = "frame_too_large"


class RawSizeMismatchError(FrameError):
    """Raw 8-bit bytes whose length is not width * height, or a raw frame without its size."""

    code: ClassVar[str] = "raw_size_mismatch"


class NoPixelDataError(FrameError):
    """A DICOM data set without a PixelData element (a report, a structured document, a DICOMDIR)."""

    code: ClassVar[str] = "no_pixel_data"


class TooManyFramesError(FrameError):
    """A multi-frame input (DICOM cine, video, folder) with more frames than the limit."""

    code: ClassVar[str] = "too_many_frames"

    def __init__(self, message: str, frames: int | None = None) -> None:
        super().__init__(message)
        # How many frames the input holds, when the decoder could count them before decoding.
        self.frames = frames


class DecodeBudgetError(FrameTooLargeError):
    """An input whose decoded pixels (frames x width x height) or inflated bytes exceed the request's budget."""

    code: ClassVar[str] = "decode_budget_exceeded"


class DecodeTimeoutError(DecodeBudgetError):
    """An input whose frames took longer to decode than the request's time limit (checked between frames)."""

    code: ClassVar[str] = "decode_time_exceeded"
