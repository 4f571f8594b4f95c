from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from usqa.service.api import create_app
from usqa.service.api.errors import CONTROL_DISABLED, TOKEN_INVALID, TOKEN_MISSING
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.registry.store import MSG_NO_VERSION, MSG_TAMPERED

from ..conftest import MODEL_NAME, make_settings, republish, serve, served_version, tamper

TOKEN = "control-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(registry_root: Path) -> Iterator[httpx.Client]:
    with (
        serve(create_app(make_settings(registry_root, api_token=TOKEN))) as live,
        httpx.Client(base_url=live.http, timeout=30) as c,
    ):
        yield c


def test_control_needs_the_bearer_token(client: httpx.Client) -> None:
    url = f"/models/{MODEL_NAME}/promote"
    missing = client.post(url, json={"ref": "1"})
    assert missing.status_code == 401 and missing.json()["detail"] == TOKEN_MISSING
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post(url, json={"ref": "1"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == TOKEN_INVALID
    basic = client.post(url, json={"ref": "1"}, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert client.get(f"/models/{MODEL_NAME}").status_code == 401


def test_without_a_configured_token_control_is_disabled(registry_root: Path) -> None:
    with serve(create_app(make_settings(registry_root))) as live:
        response = httpx.post(f"{live.http}/models/{MODEL_NAME}/promote", json={"ref": "1"}, headers=AUTH)
    assert response.status_code == 403 and response.json()["detail"] == CONTROL_DISABLED


def test_promote_and_rollback_move_the_served_version(client: httpx.Client, registry_root: Path) -> None:
    old = served_version(registry_root)
    new = republish(ModelRegistry(registry_root), MODEL_NAME)
    versions = ModelRegistry(registry_root).versions(MODEL_NAME)
    listing = client.get(f"/models/{MODEL_NAME}", headers=AUTH).json()
    assert listing == {
        "name": MODEL_NAME,
        "versions": versions,
        "aliases": {CHAMPION: old},
        "served_version": old,
    }
    promoted = client.post(f"/models/{MODEL_NAME}/promote", json={"ref": "latest"}, headers=AUTH).json()
    assert (promoted["version"], promoted["served_version"], promoted["swap"]["status"]) == (
        new,
        new,
        "swapped",
    )
    assert client.get("/readyz").json()["model"]["version"] == new
    rolled = client.post(f"/models/{MODEL_NAME}/rollback", json={}, headers=AUTH).json()
    assert (rolled["version"], rolled["served_version"]) == (old, old)
    assert rolled["swap"]["previous_version"] == new
    # Walk the alias's history back to its start: then there is nothing left to roll back to.
    for _ in range(len(versions) + 1):
        earlier = client.post(f"/models/{MODEL_NAME}/rollback", json={}, headers=AUTH)
        if earlier.status_code != 200:
            break
    assert earlier.status_code == 409 and earlier.json()["code"] == "conflict"


def test_promoting_another_alias_does_not_swap_this_instance(
    client: httpx.Client, registry_root: Path
) -> None:
    old = served_version(registry_root)
    new = republish(ModelRegistry(registry_root), MODEL_NAME)
    response = client.post(
        f"/models/{MODEL_NAME}/promote", json={"ref": str(new), "alias": "challenger"}, headers=AUTH
    ).json()
    assert response["swap"] is None and response["served_version"] == old


def test_unknown_versions_and_tampered_files_are_refused(client: httpx.Client, registry_root: Path) -> None:
    old = served_version(registry_root)
    versions = ModelRegistry(registry_root).versions(MODEL_NAME)
    missing = client.post(f"/models/{MODEL_NAME}/promote", json={"ref": "4242"}, headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["detail"] == MSG_NO_VERSION.format(name=MODEL_NAME, ref="4242", versions=versions)
    assert client.post("/models/nope/promote", json={"ref": "1"}, headers=AUTH).status_code == 404
    registry = ModelRegistry(registry_root)
    bad = republish(registry, MODEL_NAME)
    tamper(registry, MODEL_NAME, bad)
    refused = client.post(f"/models/{MODEL_NAME}/promote", json={"ref": str(bad)}, headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == MSG_TAMPERED.format(
        name=MODEL_NAME, version=bad, file="controller.onnx"
    )
    assert client.get("/readyz").json()["model"]["version"] == old


def test_promoting_a_version_that_cannot_serve_is_refused_and_the_champion_stays(
    client: httpx.Client, registry_root: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(registry_root)
    old = served_version(registry_root)
    champion = registry.load(MODEL_NAME, CHAMPION)
    garbage = {}
    for file in champion.manifest.files:
        garbage[file] = tmp_path / file
        garbage[file].write_bytes(b"\x08\x01" * 512)  # hashed and intact, but no ONNX graph
    manifest = champion.manifest.model_copy(update={"version": 0, "files": {}})
    broken = registry.publish(manifest, garbage).version
    answer = client.post(f"/models/{MODEL_NAME}/promote", json={"ref": str(broken)}, headers=AUTH)
    assert answer.status_code == 409 and answer.json()["code"] == "unservable_version"
    assert "stays where it was" in answer.json()["detail"]
    assert registry.resolve(MODEL_NAME, CHAMPION) == old


@pytest.mark.parametrize("alias", ["x" * 65, "a/b", ".hidden", ""])
def test_alias_names_are_validated(client: httpx.Client, alias: str) -> None:
    answer = client.post(f"/models/{MODEL_NAME}/promote", json={"ref": "1", "alias": alias}, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
