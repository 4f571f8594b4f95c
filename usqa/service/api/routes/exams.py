"""GET /models: the exams this service serves, each with its model's version and state (issue #27)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from usqa.service.api.deps import ScoringAuth, ServiceDep
from usqa.service.api.schemas import PassLineOut

router = APIRouter(tags=["scoring"], dependencies=[ScoringAuth])

CARD_URL = "/models/{name}/{version}/card"


class ServedModel(BaseModel):
    name: str
    default: bool = Field(description="Answers callers that name no model")
    state: Literal["serving", "loading", "failed"]
    version: int | None
    task: str | None
    class_names: list[str] | None
    pass_line: PassLineOut | None
    card: str | None = Field(description="The served version's model card")
    failure: str | None = Field(description="Why a version was refused, while it is")


class ServedModelList(BaseModel):
    default: str
    models: list[ServedModel]


@router.get("/models", response_model=ServedModelList)
async def served(service: ServiceDep) -> ServedModelList:
    """Every served exam's model: pick one with `?model=NAME` on /assess and /ws/scan, or a hello's `model`."""
    models = []
    for holder in service.models:
        model, failure = holder.current, holder.last_failure
        state: Literal["serving", "loading", "failed"] = (
            "serving" if model is not None else "failed" if failure is not None else "loading"
        )
        models.append(
            ServedModel(
                name=holder.name,
                default=holder is service.holder,
                state=state,
                version=None if model is None else model.number,
                task=None if model is None else model.task,
                class_names=None if model is None else list(model.class_names),
                pass_line=None if model is None else PassLineOut.of(model),
                card=None if model is None else CARD_URL.format(name=holder.name, version=model.number),
                failure=None if failure is None else failure.reason,
            )
        )
    return ServedModelList(default=service.holder.name, models=models)
