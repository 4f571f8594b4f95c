"""Errors clients see: one constant per message (the tests import them), `ApiError`, the frame-error statuses.

Every error body is `{"detail": message, "code": stable_code}` (`error_handlers` writes it, `openapi_errors`
documents it). This module imports nothing else of `usqa.service.api`, so every other module can import it.
"""

from __future__ import annotations

from typing import Final

from usqa.service.frames import (
    CorruptFrameError,
    EmptyFrameError,
    FrameError,
    FrameTooLargeError,
    NoPixelDataError,
    RawSizeMismatchError,
    TooManyFramesError,
    UnsupportedFormatError,
)

BODY_TOO_LARGE: Final = "request body too large: more than {limit} bytes (USQA_MAX_BODY_BYTES)"
NO_FILE_PART: Final = "multipart upload without a file part (send the frame as a form field named 'file')"
MALFORMED_MULTIPART: Final = "malformed multipart body: {reason}"
NO_MODEL: Final = "no model is being served yet: {reason}"
TOKEN_MISSING: Final = "missing bearer token (send 'Authorization: Bearer <token>')"
TOKEN_INVALID: Final = "invalid bearer token"
CONTROL_DISABLED: Final = "control endpoints are disabled: no API token is configured (USQA_API_TOKEN)"
TOKEN_REQUIRED_IN_PRODUCTION: Final = (
    "refusing to start in production without an API token: set USQA_API_TOKEN (or USQA_ENVIRONMENT=dev)"
)
# A production token is a secret, not a word: at least this long, no whitespace (e.g. `openssl rand -hex 24`).
MIN_PRODUCTION_TOKEN_CHARS: Final = 24
TOKEN_TOO_WEAK_IN_PRODUCTION: Final = (
    "refusing to start in production with a weak API token: USQA_API_TOKEN must be at least "
    f"{MIN_PRODUCTION_TOKEN_CHARS} characters without whitespace (e.g. openssl rand -hex 24)"
)
INTERNAL_ERROR: Final = "internal error while scoring; the request was not scored"
INVALID_REQUEST: Final = "invalid request: {problems}"
INVALID_REQUEST_MORE: Final = "; and {count} more"
NOT_FOUND: Final = "no such endpoint: check the path (the API is described at /docs)"
METHOD_NOT_ALLOWED: Final = "method not allowed on this endpoint (the Allow header lists the allowed ones)"

# Status codes for frame-pipeline errors: 415 for kinds the service does not read, 413 for sizes over a
# limit, 400 for bytes that are not what they claim, 422 for well-formed input the service cannot use.
FRAME_ERROR_STATUS: Final[dict[type[FrameError], int]] = {
    UnsupportedFormatError: 415,
    FrameTooLargeError: 413,
    TooManyFramesError: 413,
    CorruptFrameError: 400,
    EmptyFrameError: 400,
    RawSizeMismatchError: 422,
    NoPixelDataError: 422,
}


class ApiError(Exception):
    """An error with its status, code and client-facing message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class ConfigurationError(RuntimeError):
    """Settings the service refuses to start with."""


def frame_error_status(error: FrameError) -> int:
    """The status of a frame-pipeline error: its own class's, else the nearest base class's, else 400."""
    for cls in type(error).__mro__:
        if cls in FRAME_ERROR_STATUS:
            return FRAME_ERROR_STATUS[cls]
    return 400


def from_frame_error(error: FrameError) -> ApiError:
    return ApiError(frame_error_status(error), error.code, str(error))


SESSION_NOT_FOUND: Final = (
    "no such scan session: {session!r} (sessions are kept in memory, the most recent first)"
)
CAPTURE_NOT_FOUND: Final = "no capture {rank} in scan session {session!r}: it kept {count}"
