"""Errors clients see: one constant per message (the tests import them), one JSON shape, never a 500 for bad input.

Every error body is `{"detail": message, "code": stable_code}`: the service's own errors, and also what
FastAPI and Starlette answer by themselves (request validation, an unparsable body, an unknown path or
method), which the handlers here rewrite into that shape; the OpenAPI document says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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
INVALID_REQUEST: Final = "invalid request: {problems}"
INVALID_REQUEST_MORE: Final = "; and {count} more"
NOT_FOUND: Final = "no such endpoint: check the path (the API is described at /docs)"
METHOD_NOT_ALLOWED: Final = "method not allowed on this endpoint (the Allow header lists the allowed ones)"
MALFORMED_BODY_DESCRIPTION: Final = "Malformed request body (not parsable as its content type)"
VALIDATION_DESCRIPTION: Final = "A parameter or body field is missing or invalid"
# Request-validation problems listed in one message; more are counted, not listed.
VALIDATION_PROBLEMS_SHOWN: Final = 5
VALIDATION_MESSAGE_CHARS: Final = 200
_LOCATIONS: Final = {
    "query": "query parameter",
    "path": "path parameter",
    "header": "header",
    "cookie": "cookie",
}

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


def control_refusal(request: Request) -> ApiError | None:
    """The 401/403 a control route would answer this request's token with, or None when it passes."""
    from service.api.deps import require_control_token
    from service.api.security import bearer_token, check_token

    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not any(d.call is require_control_token for d in dependant.dependencies):
        return None
    try:
        check_token(
            request.app.state.settings.api_token,
            bearer_token(request.headers.get("authorization")),
            control=True,
        )
    except ApiError as refusal:
        return refusal
    return None


def validation_message(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one sentence: where each problem is and what pydantic says of it."""
    problems = [_validation_problem(error) for error in errors[:VALIDATION_PROBLEMS_SHOWN]]
    message = INVALID_REQUEST.format(problems="; ".join(problems) or "the request does not match its schema")
    if len(errors) > VALIDATION_PROBLEMS_SHOWN:
        message += INVALID_REQUEST_MORE.format(count=len(errors) - VALIDATION_PROBLEMS_SHOWN)
    return message


def _validation_problem(error: Any) -> str:
    location = [str(part) for part in error.get("loc", ())] if isinstance(error, dict) else []
    what = str(error.get("msg", "invalid value")) if isinstance(error, dict) else str(error)
    if isinstance(error, dict) and error.get("type") == "json_invalid":
        what = f"not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
        location = location[:1]
    if not location:
        where = "request"
    elif location[0] == "body":
        where = "body" if len(location) == 1 else f"body field {'.'.join(location[1:])!r}"
    else:
        kind = _LOCATIONS.get(location[0], location[0])
        where = f"{kind} {'.'.join(location[1:])!r}" if len(location) > 1 else kind
    return f"{where}: {what}"[:VALIDATION_MESSAGE_CHARS]


def _status_code_name(status: int) -> str:
    """`bad_request` for 400, ...: the stable code of an error that only has a status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return "_".join(phrase.lower().replace("-", " ").split())


def _http_error_detail(status: int, detail: Any) -> str:
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        return NOT_FOUND
    if status == 405 and detail == HTTPStatus.METHOD_NOT_ALLOWED.phrase:
        return METHOD_NOT_ALLOWED
    if isinstance(detail, str) and detail.strip():
        return detail
    try:
        return HTTPStatus(status).description or HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP error {status}"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.message, "code": exc.code}, status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(FrameError)
    async def _frame_error(request: Request, exc: FrameError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=frame_error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses a JSON body before it resolves the route's dependencies: a control route's token
        # is checked here too, so a request without one learns nothing but that it needs one.
        refusal = control_refusal(request)
        if refusal is not None:
            return JSONResponse(
                {"detail": refusal.message, "code": refusal.code}, refusal.status, headers=refusal.headers
            )
        return JSONResponse({"detail": validation_message(exc.errors()), "code": "invalid_request"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (204, 304):  # no body allowed
            return Response(status_code=exc.status_code, headers=exc.headers)
        body = {
            "detail": _http_error_detail(exc.status_code, exc.detail),
            "code": _status_code_name(exc.status_code),
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.openapi = _documenting_error_shape(app.openapi)  # type: ignore[method-assign]


def _documenting_error_shape(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with FastAPI's validation-error schema replaced by the one error shape.

    FastAPI documents a 422 `HTTPValidationError` for every operation with parameters or a body; the
    handlers above answer `ErrorResponse` instead, and 400 for a body its content type cannot parse.
    """
    from service.api.schemas import ErrorResponse

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches the document: the edits below are made once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" not in schemas:
            return document
        schemas.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                documented = responses.get("422", {}).get("content", {}).get("application/json", {})
                if documented.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    responses["422"] = {"description": VALIDATION_DESCRIPTION, "content": error}
                if "requestBody" in operation and "400" not in responses:
                    responses["400"] = {"description": MALFORMED_BODY_DESCRIPTION, "content": error}
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        return document

    return openapi
