"""Hot swap under load: a WebSocket stream and /assess requests keep running while the model changes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from usqa.service.api import create_app
from usqa.service.registry import CHAMPION, ModelRegistry, RedisAnnouncer
from usqa.service.registry.store import MSG_TAMPERED
from usqa.service.settings import Settings

from ..conftest import (
    MODEL_NAME,
    LiveServer,
    frame_of_level,
    make_settings,
    png_bytes,
    republish,
    serve,
    served_version,
    tamper,
)

TOKEN = "swap-token"
FRAME_PERIOD_S = 0.02
MAX_FRAMES = 1500  # a bound on the stream, far above what a passing test sends
DEADLINE_S = 20.0


class Traffic:
    """A paced WebSocket stream and a loop of /assess uploads, each in its own thread, until stopped."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.png = png_bytes(frame_of_level(90))
        self.messages: list[dict[str, Any]] = []
        self.assess: list[tuple[int, int | None]] = []  # (status, served version)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._guard(self._stream), daemon=True),
            threading.Thread(target=self._guard(self._uploads), daemon=True),
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=DEADLINE_S)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # surfaced by the test, not lost in a thread
                self.errors.append(exc)

        return run

    def _stream(self) -> None:
        with connect(self.server.ws) as ws:
            self.messages.append(json.loads(ws.recv(timeout=10)))
            receiver = threading.Thread(target=self._receive, args=(ws,), daemon=True)
            receiver.start()
            for _ in range(MAX_FRAMES):
                if self.stop.is_set():
                    break
                ws.send(self.png)
                time.sleep(FRAME_PERIOD_S)
            ws.send(json.dumps({"type": "end"}))
            receiver.join(timeout=DEADLINE_S)

    def _receive(self, ws: Any) -> None:
        for text in ws:
            message = json.loads(text)
            self.messages.append(message)
            if message["type"] == "summary":
                return

    def _uploads(self) -> None:
        with httpx.Client(base_url=self.server.http, timeout=30) as client:
            for _ in range(MAX_FRAMES):
                if self.stop.is_set():
                    return
                response = client.post("/assess", content=self.png, headers={"content-type": "image/png"})
                version = response.json()["model"]["version"] if response.status_code == 200 else None
                self.assess.append((response.status_code, version))

    def results(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "result"]

    def wait_for(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "traffic condition not met in time"
            time.sleep(0.02)

    def versions_seen(self) -> list[int]:
        seen: list[int] = []
        for result in self.results():
            if not seen or seen[-1] != result["model"]["version"]:
                seen.append(result["model"]["version"])
        return seen


def assert_clean_swap(traffic: Traffic, old: int, new: int) -> None:
    assert not traffic.errors, traffic.errors
    kinds = [m["type"] for m in traffic.messages]
    assert "error" not in kinds, [m for m in traffic.messages if m["type"] == "error"]
    swaps = [m for m in traffic.messages if m["type"] == "model_swap"]
    assert [(s["from_version"], s["to_version"]) for s in swaps] == [(old, new)]
    assert traffic.versions_seen() == [old, new]  # the stream went on across the swap, and never back
    seqs = [r["seq"] for r in traffic.results()]
    assert seqs == sorted(seqs)
    summary = traffic.messages[-1]
    assert summary["type"] == "summary" and summary["frames"]["failed"] == 0
    assert summary["model_versions"] == [old, new]
    statuses = {status for status, _ in traffic.assess}
    assert statuses == {200}, traffic.assess
    versions = [v for _, v in traffic.assess]
    assert versions[0] == old and versions[-1] == new
    assert versions == sorted(versions)


@pytest.fixture
def token_settings(registry_root: Path) -> Settings:
    return make_settings(registry_root, api_token=TOKEN)


def test_promote_over_http_swaps_under_a_running_stream(
    token_settings: Settings, registry_root: Path
) -> None:
    old = served_version(registry_root)
    new = republish(ModelRegistry(registry_root), MODEL_NAME)
    with serve(create_app(token_settings)) as live:
        with Traffic(live) as traffic:
            traffic.wait_for(lambda: len(traffic.results()) >= 5 and len(traffic.assess) >= 3)
            response = httpx.post(
                f"{live.http}/models/{MODEL_NAME}/promote",
                json={"ref": str(new)},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["version"], body["served_version"]) == (new, new)
            assert body["swap"]["status"] == "swapped" and body["swap"]["previous_version"] == old
            traffic.wait_for(lambda: traffic.versions_seen()[-1:] == [new] and (traffic.assess[-1][1] == new))
            traffic.wait_for(lambda: sum(r["model"]["version"] == new for r in traffic.results()) >= 5)
        assert_clean_swap(traffic, old, new)
        ready = httpx.get(f"{live.http}/readyz").json()
        assert ready["model"]["version"] == new and ready["last_swap"]["trigger"] == "control"


def test_a_redis_announcement_swaps_under_a_running_stream(registry_root: Path, redis_url: str) -> None:
    channel = f"usqa:registry:test-{uuid.uuid4().hex}"
    settings = make_settings(registry_root, redis_url=redis_url, registry_channel=channel)
    announcer = RedisAnnouncer(redis_url, channel=channel)
    publisher = ModelRegistry(registry_root, announcer=announcer)
    old = served_version(registry_root)
    try:
        with serve(create_app(settings)) as live:
            assert httpx.get(f"{live.http}/readyz").json()["announcements"] == "subscribed"
            with Traffic(live) as traffic:
                traffic.wait_for(lambda: len(traffic.results()) >= 5 and len(traffic.assess) >= 3)
                new = republish(publisher, MODEL_NAME, alias=CHAMPION)  # the trainer's publish, announced
                traffic.wait_for(
                    lambda: traffic.versions_seen()[-1:] == [new] and traffic.assess[-1][1] == new
                )
                traffic.wait_for(lambda: sum(r["model"]["version"] == new for r in traffic.results()) >= 5)
            assert_clean_swap(traffic, old, new)
            ready = httpx.get(f"{live.http}/readyz").json()
            assert ready["last_swap"]["trigger"] == "announcement:published"
    finally:
        announcer.close()


def test_a_tampered_version_is_refused_and_the_old_one_keeps_serving(
    registry_root: Path, redis_url: str
) -> None:
    channel = f"usqa:registry:test-{uuid.uuid4().hex}"
    settings = make_settings(registry_root, redis_url=redis_url, registry_channel=channel)
    registry = ModelRegistry(registry_root)
    announcer = RedisAnnouncer(redis_url, channel=channel)
    old = served_version(registry_root)
    try:
        with serve(create_app(settings)) as live:
            with Traffic(live) as traffic:
                traffic.wait_for(lambda: len(traffic.results()) >= 3)
                bad = republish(registry, MODEL_NAME, alias=CHAMPION)
                tamper(registry, MODEL_NAME, bad)
                announcer.announce("published", MODEL_NAME, bad, CHAMPION)
                traffic.wait_for(lambda: httpx.get(f"{live.http}/readyz").json()["swap_failure"] is not None)
                scored_before = len(traffic.results())
                traffic.wait_for(lambda: len(traffic.results()) >= scored_before + 5)
            ready = httpx.get(f"{live.http}/readyz")
            metrics = httpx.get(f"{live.http}/metrics").text
    finally:
        announcer.close()
    assert ready.status_code == 200
    report = ready.json()
    assert report["ready"] and report["model"]["version"] == old
    failure = report["swap_failure"]
    assert failure["version"] == bad and failure["status"] == "failed"
    assert failure["reason"] == MSG_TAMPERED.format(name=MODEL_NAME, version=bad, file="controller.onnx")
    assert f"version {bad} was refused" in report["detail"]
    assert "usqa_model_swap_failed 1.0" in metrics
    assert 'usqa_model_swap_total{result="failed"} 1.0' in metrics
    assert not traffic.errors
    assert traffic.versions_seen() == [old]
    assert "model_swap" not in {m["type"] for m in traffic.messages}
    assert "error" not in {m["type"] for m in traffic.messages}
    assert {status for status, _ in traffic.assess} == {200}
