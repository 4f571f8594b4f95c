from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from usqa.service.api import create_app
from usqa.service.api.errors import BODY_TOO_LARGE, NO_FILE_PART
from usqa.service.api.schemas import AssessResponse
from usqa.service.frames import FrameSpec, prepare_frame
from usqa.service.frames.errors import (
    CONTENT_MISMATCH,
    EMPTY_INPUT,
    FRAME_TOO_LARGE,
    RAW_SIZE_MISMATCH,
    TOO_MANY_FRAMES,
    UNRECOGNISED_BYTES,
)
from usqa.service.inference.model import threshold_for
from usqa.service.registry import ModelRegistry

from ..conftest import (
    MODEL_NAME,
    SEGMENT_MODEL_NAME,
    THRESHOLDS,
    LiveServer,
    dicom_bytes,
    fixture_score,
    frame_of_level,
    jpeg_bytes,
    make_settings,
    png_bytes,
    reference_model,
    reference_scores,
    serve,
)


@pytest.fixture
def client(shared_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.http, timeout=30) as c:
        yield c


SPEC = FrameSpec(size=128)


def post(client: httpx.Client, body: bytes, content_type: str | None, **params: object) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/assess", content=body, headers=headers, params=params)


@pytest.fixture(scope="module")
def expected(source_registry: Path) -> Callable[[np.ndarray], float]:
    """The served model's score for a decoded frame, from onnxruntime in-process."""
    model = reference_model(source_registry)
    return lambda image: reference_scores(model, [image])[0]


def test_png_frame_is_scored_with_verdict_prediction_and_timings(
    client: httpx.Client, expected: Callable[[np.ndarray], float], source_registry: Path
) -> None:
    manifest = ModelRegistry(source_registry).load(MODEL_NAME).manifest
    image = frame_of_level(60, shape=(120, 160))
    response = post(client, png_bytes(image), "image/png")
    assert response.status_code == 200
    body = AssessResponse.model_validate(response.json())
    assert (body.model.name, body.model.version, body.model.task) == (
        MODEL_NAME,
        manifest.version,
        manifest.task,
    )
    assert body.target_rejection == 0.05 and body.threshold == threshold_for(manifest, 0.05)
    assert body.frame_count == 1
    frame = body.frames[0]
    assert frame.amenability_score == pytest.approx(expected(image), abs=1e-5)
    # One verdict: amenable exactly when good, and in scope the display score decides it.
    assert frame.amenable is (frame.verdict == "good")
    if frame.verdict in ("good", "adjust"):
        assert frame.amenable is (frame.display_score >= frame.display_threshold)
    assert frame.prediction.task == "classify"
    assert frame.prediction.label in manifest.class_names
    assert sum(frame.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    t = frame.timings
    assert t.decode_ms >= 0 and t.inference_ms > 0 and t.total_ms >= t.inference_ms


def test_dark_and_bright_frames_get_opposite_verdicts(fixture_server: LiveServer) -> None:
    # The fixture controller scores brightness: a dark frame is below the threshold, a bright one above.
    with httpx.Client(base_url=fixture_server.http, timeout=30) as fixture_client:
        dark = post(fixture_client, png_bytes(frame_of_level(10)), "image/png").json()["frames"][0]
        bright = post(fixture_client, png_bytes(frame_of_level(120)), "image/png").json()["frames"][0]
    assert dark["amenability_score"] == pytest.approx(
        fixture_score(prepare_frame(frame_of_level(10), SPEC)), abs=1e-5
    )
    assert not dark["amenable"] and bright["amenable"]
    assert dark["threshold"] == THRESHOLDS["0.05"]


def test_jpeg_frame(client: httpx.Client, expected: Callable[[np.ndarray], float]) -> None:
    image = frame_of_level(70, spread=5)
    response = post(client, jpeg_bytes(image), "image/jpeg")
    assert response.status_code == 200
    assert response.json()["frames"][0]["amenability_score"] == pytest.approx(expected(image), abs=0.02)


def test_dicom_cine_gives_one_result_per_frame(
    client: httpx.Client, expected: Callable[[np.ndarray], float]
) -> None:
    frames = [frame_of_level(level, seed=i) for i, level in enumerate((10, 60, 120))]
    response = post(client, dicom_bytes(frames), "application/dicom")
    assert response.status_code == 200
    body = response.json()
    assert body["frame_count"] == 3 and [f["index"] for f in body["frames"]] == [0, 1, 2]
    scores = [f["amenability_score"] for f in body["frames"]]
    assert scores == pytest.approx([expected(f) for f in frames], abs=1e-5)


def test_single_frame_dicom(client: httpx.Client) -> None:
    response = post(client, dicom_bytes([frame_of_level(50)]), "application/dicom")
    assert response.status_code == 200 and response.json()["frame_count"] == 1


def test_raw_grayscale_with_width_and_height(
    client: httpx.Client, expected: Callable[[np.ndarray], float]
) -> None:
    image = frame_of_level(80, shape=(60, 100))
    response = post(client, image.tobytes(), "application/octet-stream", width=100, height=60)
    assert response.status_code == 200
    assert response.json()["frames"][0]["amenability_score"] == pytest.approx(expected(image), abs=1e-5)


@pytest.mark.parametrize(("part_type", "make"), [("image/png", png_bytes), ("application/dicom", None)])
def test_multipart_file_part(
    client: httpx.Client, part_type: str, make: object, expected: Callable[[np.ndarray], float]
) -> None:
    image = frame_of_level(90)
    data = png_bytes(image) if make else dicom_bytes([image])
    response = client.post("/assess", files={"file": ("frame", data, part_type)}, data={"note": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["frames"][0]["amenability_score"] == pytest.approx(expected(image), abs=1e-5)


def test_multipart_raw_part_uses_the_size_parameters(client: httpx.Client) -> None:
    image = frame_of_level(40, shape=(32, 48))
    response = client.post(
        "/assess",
        files={"file": ("frame.raw", image.tobytes(), "application/octet-stream")},
        params={"width": 48, "height": 32},
    )
    assert response.status_code == 200, response.text


def test_segmentation_reports_area_box_and_mask(registry_root: Path) -> None:
    settings = make_settings(registry_root, model_name=SEGMENT_MODEL_NAME, target_rejection=0.15)
    image = np.zeros((100, 200), dtype=np.uint8)
    image[20:60, 40:120] = 220  # the fixture segmenter marks bright pixels
    with serve(create_app(settings)) as live, httpx.Client(base_url=live.http, timeout=30) as client:
        plain = post(client, png_bytes(image), "image/png").json()["frames"][0]["prediction"]
        with_mask = post(client, png_bytes(image), "image/png", mask="true").json()["frames"][0]["prediction"]
    assert plain["task"] == "segment" and plain["mask_png_base64"] is None
    assert plain["mask_area_fraction"] == pytest.approx((40 * 80) / (100 * 200), rel=0.05)
    box = plain["bounding_box"]
    assert box["x"] == pytest.approx(40, abs=2) and box["y"] == pytest.approx(20, abs=2)
    assert box["width"] == pytest.approx(80, abs=3) and box["height"] == pytest.approx(40, abs=3)
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(with_mask["mask_png_base64"]), np.uint8), 0)
    assert mask.shape == image.shape
    assert mask[40, 80] == 255 and mask[80, 10] == 0


# -- bad input: a 4xx with the pipeline's own message, never a 500 ------------------------------------------


def test_unsupported_media_type_is_415(client: httpx.Client) -> None:
    response = post(client, b"GIF89a....", "image/gif")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_format"
    assert "unsupported media type 'image/gif'" in response.json()["detail"]


def test_unrecognised_octet_stream_without_size_is_415(client: httpx.Client) -> None:
    response = post(client, b"\x01\x02\x03" * 50, "application/octet-stream")
    assert response.status_code == 415 and response.json()["detail"] == UNRECOGNISED_BYTES


def test_bytes_that_are_not_what_they_claim_are_400(client: httpx.Client) -> None:
    response = post(client, jpeg_bytes(frame_of_level(50)), "image/png")
    assert response.status_code == 400
    assert response.json()["detail"] == CONTENT_MISMATCH.format(media_type="image/png", kind="PNG")


def test_truncated_png_is_400(client: httpx.Client) -> None:
    data = png_bytes(frame_of_level(50, shape=(64, 64)))
    response = post(client, data[: len(data) // 2], "image/png")
    assert response.status_code == 400 and response.json()["code"] == "corrupt_frame"


def test_empty_body_is_400(client: httpx.Client) -> None:
    response = post(client, b"", "image/png")
    assert response.status_code == 400 and response.json()["detail"] == EMPTY_INPUT


def test_raw_size_mismatch_is_422(client: httpx.Client) -> None:
    response = post(client, bytes(100), "application/octet-stream", width=20, height=10)
    assert response.status_code == 422
    assert response.json()["detail"] == RAW_SIZE_MISMATCH.format(
        width=20, height=10, expected=200, actual=100
    )


def test_invalid_size_parameter_is_422(client: httpx.Client) -> None:
    assert post(client, bytes(100), "application/octet-stream", width=0, height=10).status_code == 422


def test_multipart_without_a_file_is_400(client: httpx.Client) -> None:
    response = client.post("/assess", data={"note": "no file"}, files={"other": ("", b"", "")})
    # An empty-filename part is a plain field to the form parser: there is no file part.
    assert response.status_code == 400 and response.json()["detail"] == NO_FILE_PART


def test_limits_give_413(registry_root: Path) -> None:
    settings = make_settings(
        registry_root, max_body_bytes=20_000, max_frame_pixels=64 * 64, max_frames_per_input=2
    )
    with serve(create_app(settings)) as live, httpx.Client(base_url=live.http, timeout=30) as client:
        too_big = post(client, bytes(30_000), "application/octet-stream", width=100, height=300)
        assert too_big.status_code == 413 and too_big.json()["detail"] == BODY_TOO_LARGE.format(limit=20_000)
        large = post(client, png_bytes(frame_of_level(50, shape=(65, 64))), "image/png")
        assert large.status_code == 413
        assert large.json()["detail"] == FRAME_TOO_LARGE.format(width=64, height=65, max_pixels=64 * 64)
        frames = [frame_of_level(50, shape=(16, 16), seed=i) for i in range(3)]
        many = post(client, dicom_bytes(frames), "application/dicom")
        assert many.status_code == 413 and many.json()["detail"] == TOO_MANY_FRAMES.format(max_frames=2)
        # Chunked upload (no Content-Length): refused while reading.
        chunked = client.post(
            "/assess",
            content=iter([bytes(15_000), bytes(15_000)]),
            headers={"content-type": "application/octet-stream"},
        )
        assert chunked.status_code == 413


def test_openapi_documents_content_types_and_the_response_schema(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/assess"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "image/png",
        "image/jpeg",
        "application/dicom",
        "application/octet-stream",
        "multipart/form-data",
    }
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "AssessResponse"
    )
    assert {"400", "413", "415", "422", "429", "503"} <= set(operation["responses"])
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"width", "height", "mask", "model"}
    schemas = spec["components"]["schemas"]
    assert {"FrameAssessment", "ClassPredictionOut", "MaskPredictionOut", "Timings"} <= set(schemas)
