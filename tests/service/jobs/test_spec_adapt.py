"""Adaptation fields of a job spec: checked by the API (422) before anything is queued, torch-free."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from usqa.service.api.app import create_app
from usqa.service.jobs import JobSpec, SpecError, check_spec

from ..conftest import make_settings, serve

DATASET = "ds-0123456789abcdef"
TOKEN = "adapt-test-token"


def test_an_adaptation_spec_resolves_without_torch() -> None:
    spec = JobSpec(
        dataset=DATASET, task="classify", adapt_from="usqa@champion", labels=64, adapt_mode="probe"
    )
    check_spec(spec)
    assert JobSpec(dataset=DATASET, task="segment", adapt_from="usqa:3", labels=8).adapt_mode is None
    # The worker names its training device (USQA_TRAIN_DEVICE) in every job's overrides, adaptations too.
    on_device = JobSpec(
        dataset=DATASET, task="classify", adapt_from="usqa", labels=8, overrides={"device": "cpu"}
    )
    check_spec(on_device)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"labels": 8}, "set adapt_from too"),
        ({"adapt_mode": "probe"}, "set adapt_from too"),
        ({"adapt_from": "usqa"}, "needs labels"),
        ({"adapt_from": "usqa", "labels": 8, "backbone": "b.pt"}, "cannot be combined"),
        ({"adapt_from": "usqa", "labels": 8, "overrides": {"reward": {"kind": "avg"}}}, "does not apply"),
        ({"adapt_from": "usqa", "labels": 8, "overrides": {"steps": 0}}, "non-negative integer"),
        ({"adapt_from": "usqa", "labels": 8, "overrides": {"device": 0}}, "a device name"),
    ],
)
def test_inconsistent_adaptation_fields_are_refused(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words):
        check_spec(JobSpec(dataset=DATASET, task="classify", **fields))


@pytest.mark.parametrize(
    "fields",
    [{"adapt_from": "../etc", "labels": 8}, {"adapt_from": "usqa", "labels": 0}, {"adapt_mode": "retrain"}],
)
def test_malformed_adaptation_fields_fail_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JobSpec(dataset=DATASET, task="classify", **fields)


@pytest.fixture
def client(registry_root: Path, tmp_path: Path, redis_url: str) -> Iterator[httpx.Client]:
    settings = make_settings(registry_root, redis_url=redis_url, data_root=tmp_path / "data", api_token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serve(create_app(settings)) as live,
        httpx.Client(base_url=live.http, timeout=30, headers=headers) as http,
    ):
        yield http


@pytest.mark.parametrize(
    "fields",
    [
        {"adapt_from": "usqa", "labels": -1},
        {"adapt_from": "no/such", "labels": 8},
        {"adapt_from": "usqa", "labels": 8, "adapt_mode": "all"},
        {"adapt_from": "usqa"},
        {"labels": 64},
    ],
)
def test_the_api_answers_422_to_bad_adaptation_values(client: httpx.Client, fields: dict[str, Any]) -> None:
    response = client.post("/retrain", json={"dataset": DATASET, "task": "classify", **fields})
    assert response.status_code == 422, response.text
