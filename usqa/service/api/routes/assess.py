"""POST /assess: score one uploaded frame, or every frame of a DICOM cine."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from usqa.service.api.deps import ModelDep, ScoringAuth, ServiceDep
from usqa.service.api.schemas import AssessResponse, ErrorResponse
from usqa.service.api.upload_scoring import Assessor

router = APIRouter(tags=["scoring"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "One frame as PNG or JPEG, a DICOM file (single or multi-frame: one result per frame), raw 8-bit "
            "grayscale bytes (application/octet-stream with `width` and `height`), or a multipart form whose "
            "`file` part is any of these."
        ),
        "content": {
            "image/png": _BINARY,
            "image/jpeg": _BINARY,
            "application/dicom": _BINARY,
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Corrupt or empty frame, malformed multipart"},
    401: {"model": ErrorResponse, "description": "Bearer token missing or wrong (when required)"},
    413: {"model": ErrorResponse, "description": "Body, frame or frame count over a limit"},
    415: {"model": ErrorResponse, "description": "Unsupported media type or file format"},
    422: {
        "model": ErrorResponse,
        "description": "Well-formed input the service cannot use (raw size mismatch)",
    },
    429: {"model": ErrorResponse, "description": "Inference queue full; see Retry-After"},
    404: {"model": ErrorResponse, "description": "The asked model (`?model=`) is not served here"},
    503: {"model": ErrorResponse, "description": "No model loaded yet"},
}


@router.post(
    "/assess",
    response_model=AssessResponse,
    dependencies=[ScoringAuth],
    responses=ERRORS,
    openapi_extra=REQUEST_BODY,
    summary="Amenability score, verdict and task prediction per frame",
)
async def assess(
    request: Request,
    service: ServiceDep,
    model: ModelDep,
    width: Annotated[int | None, Query(gt=0, description="Raw frames: width in pixels")] = None,
    height: Annotated[int | None, Query(gt=0, description="Raw frames: height in pixels")] = None,
    mask: Annotated[bool, Query(description="Segmentation: include the mask as base64 PNG")] = False,
) -> AssessResponse:
    return await Assessor(service).handle(request, model, width=width, height=height, mask=mask)
