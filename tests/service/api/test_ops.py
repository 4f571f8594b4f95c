from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from usqa.service.api import create_app
from usqa.service.api.schemas import ReadinessResponse
from usqa.service.inference.calibration import MSG_UNCALIBRATED
from usqa.service.inference.model import LoadedModel
from usqa.service.registry.pass_line import pass_line

from ..conftest import (
    FIXTURE_MODEL_NAME,
    MODEL_NAME,
    LiveServer,
    dicom_bytes,
    frame_of_level,
    make_settings,
    png_bytes,
    serve,
)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    raise AssertionError(f"no sample {name} {labels}")


def test_healthz_and_readyz(shared_server: LiveServer, served_model: LoadedModel) -> None:
    assert httpx.get(f"{shared_server.http}/healthz").json() == {"status": "ok"}
    response = httpx.get(f"{shared_server.http}/readyz")
    assert response.status_code == 200
    ready = ReadinessResponse.model_validate(response.json())
    assert ready.ready and ready.model is not None
    assert (ready.model.name, ready.model.version, ready.model.task) == (
        MODEL_NAME,
        served_model.number,
        served_model.task,
    )
    assert ready.provider.name == "CPUExecutionProvider" == ready.provider.preferred
    assert not ready.provider.fallback and "CPUExecutionProvider" in ready.provider.available
    assert ready.provider.requested[0] == "TensorrtExecutionProvider"
    assert ready.workers >= 1 and ready.intra_op_threads >= 1
    assert ready.announcements == "off" and ready.swap_failure is None
    serving = f"serving {MODEL_NAME} version {served_model.number} on CPUExecutionProvider"
    if served_model.scale.fallback:  # a v1 manifest says it serves raw scores with no out-of-scope check
        serving += "; " + MSG_UNCALIBRATED.format(name=MODEL_NAME, version=served_model.number)
    line = pass_line(served_model.manifest)
    if not line.certified:  # an uncertified pass line is said, not hidden
        serving += f"; pass line {line.promise}"
    # Then what the machine carries (the shared server may have measured frames of earlier tests by now).
    capacity = ready.capacity
    assert capacity is not None and capacity.stream_fps == 30.0 and capacity.open_streams == 0
    carried = (
        "capacity not measured yet" if capacity.streams is None else f"{capacity.streams} streams at 30 fps"
    )
    assert ready.detail.startswith(serving + "; ") and ready.detail.endswith(
        ")" if capacity.streams else carried
    )
    assert carried in ready.detail
    assert ready.model is not None and ready.model.display_scale == served_model.scale.scale
    assert ready.model.pass_line.certified == line.certified and ready.model.pass_line.promise == line.promise


def test_metrics_cover_requests_streams_scores_and_drift(registry_root: Path) -> None:
    # The fixture model: its scores (bright frames score high) make the drift and amenable counts known.
    # A 30-score window: the service-wide index is published once it is full.
    settings = make_settings(
        registry_root, model_name=FIXTURE_MODEL_NAME, max_body_bytes=50_000, drift_window=30
    )
    with serve(create_app(settings)) as live:
        base = live.http
        frames = [frame_of_level(110, shape=(24, 24), seed=i) for i in range(40)]
        assert (
            httpx.post(
                f"{base}/assess", content=dicom_bytes(frames), headers={"content-type": "application/dicom"}
            ).status_code
            == 200
        )
        assert (
            httpx.post(f"{base}/assess", content=b"x", headers={"content-type": "image/gif"}).status_code
            == 415
        )
        assert (
            httpx.post(
                f"{base}/assess", content=bytes(60_000), headers={"content-type": "image/png"}
            ).status_code
            == 413
        )
        png = png_bytes(frame_of_level(100, shape=(24, 24)))
        with connect(live.ws) as ws:
            ws.recv(timeout=10)
            for _ in range(35):
                ws.send(png)
                while json.loads(ws.recv(timeout=10))["type"] != "result":
                    pass
            open_during = metric(httpx.get(f"{base}/metrics").text, "usqa_scan_sessions_open")
            ws.send(json.dumps({"type": "end"}))
            while json.loads(ws.recv(timeout=10))["type"] != "summary":
                pass
        deadline = time.monotonic() + 5  # the server finishes its side of the close just after the client
        while metric((response := httpx.get(f"{base}/metrics")).text, "usqa_scan_sessions_open") != 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    model = {"model": FIXTURE_MODEL_NAME, "version": "1"}
    assert metric(text, "usqa_inference_request_success_total", endpoint="assess", **model) == 1
    assert metric(text, "usqa_inference_request_success_total", endpoint="scan", **model) == 35
    assert (
        metric(text, "usqa_inference_request_failure_total", endpoint="assess", reason="rejected", **model)
        == 2
    )
    assert metric(text, "usqa_inference_count_total", **model) == 75
    assert 1 <= metric(text, "usqa_inference_exec_count_total", **model) <= 75
    for histogram in ("usqa_inference_request_duration_seconds", "usqa_inference_queue_duration_seconds"):
        assert metric(text, f"{histogram}_count", endpoint="scan", **model) == 35
    assert metric(text, "usqa_decode_duration_seconds_count", endpoint="assess") == 1
    assert metric(text, "usqa_inference_compute_infer_duration_seconds_count", **model) >= 1
    assert metric(text, "usqa_amenability_score_count", **model) == 75
    assert metric(text, "usqa_amenable_frames_total", **model) == 75
    assert metric(text, "usqa_inference_pending_request_count") == 0
    assert open_during == 1 and metric(text, "usqa_scan_sessions_open") == 0
    assert metric(text, "usqa_scan_frames_received_total") == 35
    assert metric(text, "usqa_scan_frames_dropped_total") == 0
    assert metric(text, "usqa_model_info", task="classify", provider="CPUExecutionProvider", **model) == 1
    assert metric(text, "usqa_execution_provider_info", provider="CPUExecutionProvider") == 1
    assert metric(text, "usqa_model_ready") == 1
    assert metric(text, "usqa_model_swap_total", result="swapped") == 1
    assert metric(text, "usqa_model_swap_failed") == 0
    # Bright frames only, against a validation histogram spread over every bin: a large drift.
    assert metric(text, "usqa_score_drift_psi", **model) > 0.25
    assert metric(text, "usqa_scan_session_drift_psi_count") == 1
