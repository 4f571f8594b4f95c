from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from usqa.contracts.protocol import CloseCode
from usqa.service.api import create_app
from usqa.service.api.app import TOKEN_FOR_SCORING_WITHOUT_TOKEN, build_state
from usqa.service.api.errors import (
    NO_MODEL,
    TOKEN_MISSING,
    TOKEN_REQUIRED_IN_PRODUCTION,
    TOKEN_TOO_WEAK_IN_PRODUCTION,
    ConfigurationError,
)
from usqa.service.api.scan_messages import MSG_NO_MODEL_REASON
from usqa.service.inference.batcher import MSG_QUEUE_FULL
from usqa.service.inference.providers import ProviderError
from usqa.service.registry.store import MSG_NO_MODEL
from usqa.service.settings import Settings

from ..conftest import MODEL_NAME, build_fixture_registry, frame_of_level, make_settings, png_bytes, serve


def test_production_refuses_to_start_without_a_token(registry_root: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_app(make_settings(registry_root, environment="production"))
    assert str(info.value) == TOKEN_REQUIRED_IN_PRODUCTION
    create_app(make_settings(registry_root, environment="production", api_token="t" * 24))  # fine with one


@pytest.mark.parametrize("token", ["t", "x" * 23, " " * 40, "a strong-looking token with spaces"])
def test_production_refuses_a_weak_token(registry_root: Path, token: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_app(make_settings(registry_root, environment="production", api_token=token))
    assert str(info.value) == TOKEN_TOO_WEAK_IN_PRODUCTION


def test_requiring_a_scoring_token_needs_one_configured(registry_root: Path) -> None:
    with pytest.raises(ConfigurationError, match=TOKEN_FOR_SCORING_WITHOUT_TOKEN):
        create_app(make_settings(registry_root, require_token_for_scoring=True))


def test_a_required_provider_that_is_missing_stops_start_up(registry_root: Path) -> None:
    with pytest.raises(ProviderError, match="'CUDAExecutionProvider' is required"):
        build_state(make_settings(registry_root, require_provider="CUDAExecutionProvider"))


def test_assess_can_require_the_token(registry_root: Path) -> None:
    settings = make_settings(registry_root, api_token="tok", require_token_for_scoring=True)
    png = png_bytes(frame_of_level(60))
    with serve(create_app(settings)) as live:
        anonymous = httpx.post(f"{live.http}/assess", content=png, headers={"content-type": "image/png"})
        assert anonymous.status_code == 401 and anonymous.json()["detail"] == TOKEN_MISSING
        allowed = httpx.post(
            f"{live.http}/assess",
            content=png,
            headers={"content-type": "image/png", "Authorization": "Bearer tok"},
        )
        assert allowed.status_code == 200
        assert httpx.get(f"{live.http}/healthz").status_code == 200  # operations stay open


def test_a_full_queue_answers_429_with_retry_after_while_streams_go_on(registry_root: Path) -> None:
    settings = make_settings(registry_root, retry_after_s=2)
    png = png_bytes(frame_of_level(60))
    with serve(create_app(settings)) as live:
        live.app.state.service.queue.max_pending = 0  # as if every slot were taken
        response = httpx.post(f"{live.http}/assess", content=png, headers={"content-type": "image/png"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        assert response.json()["detail"] == MSG_QUEUE_FULL.format(pending=0, retry_after=2)
        with connect(live.ws) as ws:
            ws.recv(timeout=10)
            ws.send(png)
            assert json.loads(ws.recv(timeout=10))["type"] == "result"
        metrics = httpx.get(f"{live.http}/metrics").text
    assert 'reason="queue_full"' in metrics


def test_without_a_model_the_service_is_alive_not_ready_and_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "empty-registry"
    settings = make_settings(empty, registry_poll_s=0.1)
    with serve(create_app(settings)) as live:
        assert httpx.get(f"{live.http}/healthz").status_code == 200
        not_ready = httpx.get(f"{live.http}/readyz")
        reason = MSG_NO_MODEL.format(name=MODEL_NAME, root=empty)
        assert not_ready.status_code == 503
        assert not_ready.json()["detail"] == f"no model loaded: {reason}"
        refused = httpx.post(
            f"{live.http}/assess",
            content=png_bytes(frame_of_level(60)),
            headers={"content-type": "image/png"},
        )
        assert refused.status_code == 503 and refused.json()["detail"] == NO_MODEL.format(reason=reason)
        with connect(live.ws) as ws, pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert (ws.close_code, ws.close_reason) == (CloseCode.TRY_AGAIN, MSG_NO_MODEL_REASON)
        # The model is published: the poller loads it and the service turns ready.
        build_fixture_registry(tmp_path / "later")
        (tmp_path / "later" / "models").rename(empty)
        deadline = time.monotonic() + 10
        while httpx.get(f"{live.http}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not load the model that appeared"
            time.sleep(0.05)


def test_settings_come_from_usqa_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USQA_REGISTRY", str(tmp_path))
    monkeypatch.setenv("USQA_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("USQA_API_TOKEN", "from-env")
    monkeypatch.setenv("USQA_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("USQA_PROVIDERS", '["CPUExecutionProvider"]')
    monkeypatch.setenv("USQA_MAX_SCAN_SESSIONS", "3")
    settings = Settings()
    assert settings.registry == tmp_path and settings.data_root == tmp_path / "data"
    assert settings.redis_url == "redis://127.0.0.1:6379/3" and settings.api_token == "from-env"
    assert settings.providers == ("CPUExecutionProvider",) and settings.max_scan_sessions == 3
