"""Exception handlers: every error, the service's own and FastAPI's or Starlette's, answers one JSON shape.

What FastAPI and Starlette answer by themselves (request validation, an unparsable body, an unknown path or
method) is rewritten into `{"detail": message, "code": stable_code}` too; never a 500 for bad input.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from usqa.service.api.deps import require_control_token
from usqa.service.api.errors import METHOD_NOT_ALLOWED, NOT_FOUND, ApiError, frame_error_status
from usqa.service.api.security import bearer_token, check_token
from usqa.service.api.validation_messages import validation_message
from usqa.service.frames import FrameError


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that write every error as `{"detail": ..., "code": ...}`."""

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


def control_refusal(request: Request) -> ApiError | None:
    """The 401/403 a control route would answer this request's token with, or None when it passes."""
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
