"""Service test fixtures: a model registry the service can serve, settings, and a real uvicorn server.

Two kinds of model. The *served* model, `MODEL_NAME`, is what the endpoint, limit, swap, metrics and
browser tests run on; they compare the service with onnxruntime run in-process on the same frames, never
with fixed numbers, so they hold for any model that follows the contract. The *fixture* models
(`FIXTURE_MODEL_NAME`, `SEGMENT_MODEL_NAME`) are tiny ONNX graphs that follow the exporter's contract
(uint8 `frame` [N,1,S,S] in; `score` [N], `probabilities` [N,C] or `mask_probability` [N,1,S,S] out) with
deterministic weights whose outputs are known (the controller scores a frame by its mean brightness): the
tests that check values (guidance patterns, drift, masks) use them.

`SERVE_SHIPPED_MODEL` is the one switch: False serves the fixture graphs as `MODEL_NAME`; True serves the
shipped champion from `models/` (the fixture models are added beside it either way).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import uvicorn
from fastapi import FastAPI
from onnx import TensorProto, helper, numpy_helper

from usqa.service.frames import prepare_frame
from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.providers import plan_providers
from usqa.service.registry import CHAMPION, Manifest, ModelRegistry, ScoreHistogram
from usqa.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# The one switch (see the module docstring).
SERVE_SHIPPED_MODEL = True
SHIPPED_REGISTRY = REPO_ROOT / "models"
MODEL_NAME = "usqa-prostate"
FIXTURE_MODEL_NAME = "usqa-fixture-classify"
SEGMENT_MODEL_NAME = "usqa-fixture-segment"
FRAME_SIZE = 128
CLASS_NAMES = ["absent", "present"]
OPSET = 17
# Fixture controller: score = sigmoid(GAIN * (mean(frame) / 255 - MIDPOINT)); bright frames score high.
GAIN = 40.0
MIDPOINT = 0.15
THRESHOLDS = {"0.05": 0.3, "0.1": 0.4, "0.15": 0.5, "0.2": 0.55}
SERVER_START_TIMEOUT_S = 30.0


def fixture_score(frame: np.ndarray, gain: float = GAIN, midpoint: float = MIDPOINT) -> float:
    """The fixture controller's score for one prepared uint8 frame, in numpy (for expected values)."""
    return float(1.0 / (1.0 + np.exp(-gain * (frame.astype(np.float64).mean() / 255.0 - midpoint))))


def _scaled_input() -> list[onnx.NodeProto]:
    return [
        helper.make_node("Cast", ["frame"], ["frame_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["frame_f", "inv255"], ["unit"]),
    ]


def _graph(
    nodes: list[onnx.NodeProto], output: onnx.ValueInfoProto, initializers: dict[str, np.ndarray]
) -> onnx.ModelProto:
    frame = helper.make_tensor_value_info("frame", TensorProto.UINT8, ["N", 1, FRAME_SIZE, FRAME_SIZE])
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items()]
    inits.append(numpy_helper.from_array(np.asarray(1 / 255, dtype=np.float32), "inv255"))
    graph = helper.make_graph(_scaled_input() + nodes, "usqa_fixture", [frame], [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def controller_graph(gain: float = GAIN, midpoint: float = MIDPOINT) -> onnx.ModelProto:
    nodes = [
        helper.make_node("ReduceMean", ["unit"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["mean", "midpoint"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["score"]),
    ]
    output = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    return _graph(nodes, output, {"gain": np.float32(gain), "midpoint": np.float32(midpoint)})


def classifier_graph() -> onnx.ModelProto:
    # Two features per frame (mean and mean of squares) through a linear map and a softmax.
    nodes = [
        helper.make_node("ReduceMean", ["unit"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["unit", "unit"], ["square"]),
        helper.make_node("ReduceMean", ["square"], ["mean_sq"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Concat", ["mean", "mean_sq"], ["features4"], axis=1),
        helper.make_node("Flatten", ["features4"], ["features"], axis=1),
        helper.make_node("Gemm", ["features", "weight", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(CLASS_NAMES)])
    weight = np.array([[-8.0, 8.0], [4.0, -4.0]], dtype=np.float32)
    bias = np.array([0.5, -0.5], dtype=np.float32)
    return _graph(nodes, output, {"weight": weight, "bias": bias})


def segmenter_graph() -> onnx.ModelProto:
    # mask_probability = sigmoid(20 * (pixel / 255 - 0.5)): bright pixels are "the structure".
    nodes = [
        helper.make_node("Sub", ["unit", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "steep"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["mask_probability"]),
    ]
    output = helper.make_tensor_value_info(
        "mask_probability", TensorProto.FLOAT, ["N", 1, FRAME_SIZE, FRAME_SIZE]
    )
    return _graph(nodes, output, {"half": np.float32(0.5), "steep": np.float32(20.0)})


def fixture_manifest(name: str, task: str, *, thresholds: dict[str, float] | None = None) -> Manifest:
    edges = [round(x, 2) for x in np.linspace(0.0, 1.0, 11)]
    return Manifest(
        name=name,
        task=task,  # type: ignore[arg-type]
        class_names=CLASS_NAMES if task == "classify" else ["background", "prostate"],
        preprocessing={"size": FRAME_SIZE, "crop": "none", "interpolation": "area"},
        graphs={"controller": "controller.onnx", "predictor": "predictor.onnx"},
        thresholds=thresholds or THRESHOLDS,
        score_histogram=ScoreHistogram(edges=edges, counts=[2, 3, 5, 8, 10, 12, 14, 16, 18, 12]),
        metrics={"fixture": True},
        code_revision="test-fixture",
    )


def write_graphs(folder: Path, task: str, *, gain: float = GAIN) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"controller.onnx": folder / "controller.onnx", "predictor.onnx": folder / "predictor.onnx"}
    onnx.save(controller_graph(gain=gain), str(files["controller.onnx"]))
    onnx.save(classifier_graph() if task == "classify" else segmenter_graph(), str(files["predictor.onnx"]))
    return files


def build_fixture_registry(root: Path, *, serve_fixture: bool = True) -> Path:
    """A registry with the fixture models as champions (and, by default, the classify one as MODEL_NAME too)."""
    registry = ModelRegistry(root / "models")
    sources = root / "sources"
    classify = write_graphs(sources / "classify", "classify")
    registry.publish(fixture_manifest(FIXTURE_MODEL_NAME, "classify"), classify, alias=CHAMPION)
    segment = write_graphs(sources / "segment", "segment")
    registry.publish(fixture_manifest(SEGMENT_MODEL_NAME, "segment"), segment, alias=CHAMPION)
    if serve_fixture:
        registry.publish(fixture_manifest(MODEL_NAME, "classify"), classify, alias=CHAMPION)
    return registry.root


def served_version(root: Path) -> int:
    """The version of MODEL_NAME the service starts with (1 for the fixture; whatever the shipped one is)."""
    return ModelRegistry(root).resolve(MODEL_NAME, CHAMPION)


def reference_model(root: Path, name: str = MODEL_NAME) -> LoadedModel:
    """The champion of `name` in onnxruntime, in-process: what the service's answers are checked against."""
    return load_model(
        ModelRegistry(root).load(name, CHAMPION),
        target_rejection=0.05,
        providers=plan_providers(("CPUExecutionProvider",)),
        intra_op_threads=1,
        warmup_runs=0,
    )


def reference_scores(model: LoadedModel, images: list[np.ndarray]) -> list[float]:
    """Controller scores of decoded frames through the shared preprocessing, in-process."""
    prepared = np.stack([prepare_frame(image, model.spec) for image in images])
    return [float(s) for s in model.run(prepared).scores]


def republish(registry: ModelRegistry, name: str, *, alias: str | None = None) -> int:
    """Publish the champion's files again as a new version (a retrained model, as far as serving can tell)."""
    champion = registry.load(name, CHAMPION)
    files = {file: champion.path / file for file in champion.manifest.files}
    manifest = champion.manifest.model_copy(
        update={"version": 0, "files": {}, "code_revision": "republished"}
    )
    return registry.publish(manifest, files, alias=alias).version


def tamper(registry: ModelRegistry, name: str, version: int) -> None:
    """Flip one byte of a version's controller graph: its sha256 no longer matches the manifest."""
    path = registry.root / name / str(version) / registry.manifest(name, version).graphs["controller"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def source_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registry every service test starts from: the served model and the fixture models."""
    root = tmp_path_factory.mktemp("registry")
    if not SERVE_SHIPPED_MODEL:
        return build_fixture_registry(root)
    models = build_fixture_registry(root, serve_fixture=False)
    shutil.copytree(SHIPPED_REGISTRY / MODEL_NAME, models / MODEL_NAME)
    return models


@pytest.fixture
def registry_root(source_registry: Path, tmp_path: Path) -> Path:
    """A private copy per test: tests that publish, promote or tamper never touch the shared registry."""
    root = tmp_path / "models"
    shutil.copytree(source_registry, root)
    return root


@pytest.fixture(scope="session")
def served_model(source_registry: Path) -> LoadedModel:
    return reference_model(source_registry)


def make_settings(registry_root: Path, **overrides: Any) -> Settings:
    """Settings for a test app: quiet polling, small warm-up, everything else as in production."""
    values: dict[str, Any] = {
        "registry": registry_root,
        "model_name": MODEL_NAME,
        "registry_poll_s": 3600.0,
        "warmup_runs": 1,
        "redis_url": None,
        "api_token": None,
        "demo_frames": 24,
        # Hermetic: only the test's registry, never the checkout's models/ behind it (locate.py).
        "shipped_registry": False,
        # One exam unless a test asks for more (the fixture registry holds three champions).
        "model_names": (),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(registry_root: Path) -> Settings:
    return make_settings(registry_root)


@dataclass
class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread."""

    app: FastAPI
    host: str
    port: int

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/scan"


@contextlib.contextmanager
def serve(app: FastAPI, *, ws_max_size: int = 16 * 1024 * 1024) -> Iterator[LiveServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=ws_max_size,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn-test")
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(app, "127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    """The app on the default test settings, served for real."""
    from usqa.service.api import create_app

    with serve(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="module")
def shared_server(source_registry: Path) -> Iterator[LiveServer]:
    """One server of the served model per test module, for tests that only read: the registry never changes."""
    from usqa.service.api import create_app

    with serve(create_app(make_settings(source_registry))) as live:
        yield live


@pytest.fixture(scope="module")
def fixture_server(source_registry: Path) -> Iterator[LiveServer]:
    """One server of the fixture classifier per test module, for tests that check known values."""
    from usqa.service.api import create_app

    with serve(create_app(make_settings(source_registry, model_name=FIXTURE_MODEL_NAME))) as live:
        yield live


def frame_of_level(
    level: int, shape: tuple[int, int] = (96, 128), seed: int = 0, spread: int = 40
) -> np.ndarray:
    """A textured uint8 frame whose mean is about `level` (fixture scores follow brightness)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-spread, spread + 1, shape)
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image)
    assert ok
    return bytes(data.tobytes())


def jpeg_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return bytes(data.tobytes())


def dicom_bytes(frames: list[np.ndarray]) -> bytes:
    """An uncompressed 8-bit MONOCHROME2 DICOM (multi-frame when given several frames)."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    height, width = frames[0].shape
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(frames).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
