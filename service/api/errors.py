"""Errors clients see: one constant per message (the tests import them), one JSON shape, never a 500 for bad input.

Every error body is `{"detail": message, "code": stable_code}`.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.frames import (
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
INTERNAL_ERROR: Final = "internal error while scoring; the request was not scored"

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
    for cls in type(error).__mro__:
        if cls in FRAME_ERROR_STATUS:
            return FRAME_ERROR_STATUS[cls]
    return 400


def from_frame_error(error: FrameError) -> ApiError:
    return ApiError(frame_error_status(error), error.code, str(error))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(FrameError)
    async def _frame_error(request: Request, exc: FrameError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=frame_error_status(exc))
