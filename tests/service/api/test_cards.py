"""GET /models/{name}/{version}/card: JSON by default, Markdown or HTML on request, the API's error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from usqa.service.api import create_app
from usqa.service.api.errors import TOKEN_MISSING
from usqa.service.api.routes.cards import card_format
from usqa.service.registry import ModelRegistry
from usqa.service.registry.card import CARD_JSON, FROM_MANIFEST_NOTE, INTENDED_USE
from usqa.service.registry.store import MSG_NO_MODEL, MSG_NO_VERSION, MSG_TAMPERED

from ..conftest import FIXTURE_MODEL_NAME, MODEL_NAME, make_settings, serve
from ..registry.test_card import publish_with_card


@pytest.fixture
def client(registry_root: Path) -> Iterator[httpx.Client]:
    with (
        serve(create_app(make_settings(registry_root))) as live,
        httpx.Client(base_url=live.http, timeout=30) as c,
    ):
        yield c


def test_a_version_without_a_card_gets_one_from_its_manifest(
    client: httpx.Client, registry_root: Path
) -> None:
    # The fixture models are published without a card (as versions exported before cards were).
    name, version = FIXTURE_MODEL_NAME, 1
    response = client.get(f"/models/{name}/{version}/card")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    card = response.json()
    assert (card["name"], card["version"], card["source"]) == (name, version, "manifest")
    assert card["note"] == FROM_MANIFEST_NOTE and card["intended_use"] == INTENDED_USE
    manifest = ModelRegistry(registry_root).manifest(name, version)
    assert card["class_names"] == manifest.class_names and card["thresholds"] == manifest.thresholds
    assert client.get(f"/models/{name}/champion/card").json() == card


def test_markdown_and_html_by_query_or_accept(client: httpx.Client) -> None:
    url = f"/models/{MODEL_NAME}/champion/card"
    markdown = client.get(url, params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Model card: {MODEL_NAME} version ")
    assert client.get(url, headers={"Accept": "text/markdown"}).text == markdown.text
    page = client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert (
        page.headers["content-type"].startswith("text/html") and '<article class="model-card">' in page.text
    )
    assert (
        client.get(url, params={"format": "json"}, headers={"Accept": "text/html"}).json()["name"]
        == MODEL_NAME
    )
    assert client.get(url, params={"format": "pdf"}).json()["code"] == "invalid_request"


def test_unknown_models_and_versions_answer_404_in_the_api_shape(client: httpx.Client) -> None:
    missing = client.get("/models/nope/1/card")
    assert missing.status_code == 404
    assert missing.json() == {"detail": MSG_NO_MODEL.format(name="nope"), "code": "not_found"}
    unknown = client.get(f"/models/{FIXTURE_MODEL_NAME}/99/card")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == MSG_NO_VERSION.format(name=FIXTURE_MODEL_NAME, ref="99", versions=[1])
    assert client.get(f"/models/{FIXTURE_MODEL_NAME}/challenger/card").status_code == 404


def test_a_published_card_is_served_and_a_tampered_one_refused(
    client: httpx.Client, registry_root: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(registry_root)
    version = publish_with_card(registry, tmp_path / "card")
    card = client.get(f"/models/{FIXTURE_MODEL_NAME}/{version}/card").json()
    assert (card["source"], card["version"], card["evaluation"]["metric"]) == ("export", version, "accuracy")
    path = registry_root / FIXTURE_MODEL_NAME / str(version) / CARD_JSON
    path.write_text(path.read_text().replace("Research", "Clinical"))
    refused = client.get(f"/models/{FIXTURE_MODEL_NAME}/{version}/card")
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": MSG_TAMPERED.format(name=FIXTURE_MODEL_NAME, version=version, file=CARD_JSON),
        "code": "integrity_error",
    }


def test_the_card_takes_the_scoring_token_when_scoring_needs_one(registry_root: Path) -> None:
    settings = make_settings(registry_root, api_token="t0ken", require_token_for_scoring=True)
    with serve(create_app(settings)) as live, httpx.Client(base_url=live.http, timeout=30) as c:
        url = f"/models/{MODEL_NAME}/champion/card"
        refused = c.get(url)
        assert refused.status_code == 401 and refused.json()["detail"] == TOKEN_MISSING
        assert c.get(url, headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_accept_negotiation() -> None:
    assert card_format(None, None) == "json"
    assert card_format("*/*", None) == "json"
    assert card_format("text/html;q=0.5, text/markdown", None) == "markdown"
    assert card_format("text/html;q=bad, application/json;q=0.1", None) == "json"
    assert card_format("text/html", "markdown") == "markdown"
