"""The OpenAPI document's error responses: the one error shape instead of FastAPI's validation-error schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI

from usqa.service.api.schemas import ErrorResponse

MALFORMED_BODY_DESCRIPTION: Final = "Malformed request body (not parsable as its content type)"
VALIDATION_DESCRIPTION: Final = "A parameter or body field is missing or invalid"
BODY_TIMEOUT_DESCRIPTION: Final = "The request body did not arrive in time (usqa/service/api/body_limits.py)"
BODY_BUDGET_DESCRIPTION: Final = (
    "Service unavailable: no model yet, shutting down, or too many request bodies held at once (Retry-After)"
)


def document_error_shape(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document show `ErrorResponse` for the errors FastAPI answers by itself.

    FastAPI documents a 422 `HTTPValidationError` for every operation with parameters or a body; the
    handlers in `error_handlers` answer `ErrorResponse` instead, and 400 for a body its content type
    cannot parse.
    """
    app.openapi = _documenting_error_shape(app.openapi)  # type: ignore[method-assign]


def _documenting_error_shape(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
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
                if "requestBody" in operation:
                    responses.setdefault("408", {"description": BODY_TIMEOUT_DESCRIPTION, "content": error})
                    responses.setdefault("503", {"description": BODY_BUDGET_DESCRIPTION, "content": error})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        return document

    return openapi
