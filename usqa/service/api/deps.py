"""Dependencies of the routes, as `Annotated` aliases: `ServiceDep`, `ModelDep`, `ScoringAuth`, `ControlAuth`,
`RecordsAuth`, `SessionStoreDep`.

All are `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per dependency
per request for what are attribute lookups.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from usqa.service.api.errors import NO_MODEL, ApiError
from usqa.service.api.security import check_token
from usqa.service.api.state import ServiceState
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.served_models import ModelNotServedError
from usqa.service.live.session_store import SessionStore
from usqa.service.settings import Settings


async def get_service(connection: HTTPConnection) -> ServiceState:
    return connection.app.state.service


async def get_settings_of_app(connection: HTTPConnection) -> Settings:
    return connection.app.state.settings


ServiceDep = Annotated[ServiceState, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]


ModelName = Annotated[
    str | None,
    Query(max_length=64, description="The exam's model (GET /models); the default model when absent"),
]


async def current_model(service: ServiceDep, model: ModelName = None) -> LoadedModel:
    """The served version of the asked model, taken once per request: a swap mid-request does not change it."""
    try:
        holder = service.models.holder(model)
    except ModelNotServedError as exc:
        raise ApiError(404, "model_not_served", str(exc)) from exc
    current = holder.current
    if current is None:
        failure = holder.last_failure
        raise ApiError(
            503, "no_model", NO_MODEL.format(reason=failure.reason if failure else "still loading")
        )
    return current


# The OpenAPI document shows the bearer scheme; the check stays ours, for the messages and 401 vs 403.
bearer_scheme = HTTPBearer(auto_error=False, description="USQA_API_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return None if credentials is None else credentials.credentials or None


async def require_scoring_token(settings: SettingsDep, credentials: Credentials) -> None:
    if settings.require_token_for_scoring:
        check_token(settings.api_token, _token(credentials), control=False)


async def require_control_token(settings: SettingsDep, credentials: Credentials) -> None:
    check_token(settings.api_token, _token(credentials), control=True)


async def require_records_token(settings: SettingsDep, credentials: Credentials) -> None:
    """Routes that hand out patient images (session reports, captures): the token whenever one is set."""
    if settings.api_token is not None:
        check_token(settings.api_token, _token(credentials), control=False)


async def get_session_store(service: ServiceDep) -> SessionStore:
    return service.records


ModelDep = Annotated[LoadedModel, Depends(current_model)]
ScoringAuth = Depends(require_scoring_token)
ControlAuth = Depends(require_control_token)
RecordsAuth = Depends(require_records_token)
SessionStoreDep = Annotated[SessionStore, Depends(get_session_store)]
