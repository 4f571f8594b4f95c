"""Operations: /healthz (the process answers), /readyz (a warm model serves), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from usqa.service.api.deps import ServiceDep
from usqa.service.api.metrics import METRICS_CONTENT_TYPE
from usqa.service.api.schemas import HealthResponse, ReadinessResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    return HealthResponse()


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def readyz(service: ServiceDep) -> JSONResponse:
    report = service.readiness()
    return JSONResponse(report.model_dump(mode="json"), status_code=200 if report.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)
