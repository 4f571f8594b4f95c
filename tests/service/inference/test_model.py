from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from usqa.service.inference.model import (
    MSG_NO_THRESHOLD,
    LoadedModel,
    ModelLoadError,
    load_model,
    threshold_for,
)
from usqa.service.inference.providers import plan_providers
from usqa.service.registry import CHAMPION, ModelRegistry

from ..conftest import (
    FIXTURE_MODEL_NAME,
    FRAME_SIZE,
    MODEL_NAME,
    SEGMENT_MODEL_NAME,
    THRESHOLDS,
    fixture_manifest,
    fixture_score,
)


def _load(registry_root: Path, name: str, target: float = 0.05) -> LoadedModel:
    version = ModelRegistry(registry_root).load(name, CHAMPION)
    return load_model(
        version,
        target_rejection=target,
        providers=plan_providers(("CPUExecutionProvider",)),
        intra_op_threads=1,
    )


def test_classifier_model_scores_follow_the_graph_contract(source_registry: Path) -> None:
    model = _load(source_registry, FIXTURE_MODEL_NAME)
    frames = np.random.default_rng(0).integers(0, 256, (5, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    frames[:2] //= 4  # darker frames score lower with the fixture controller
    outputs = model.run(frames)
    assert outputs.scores.shape == (5,) and outputs.scores.dtype == np.float32
    np.testing.assert_allclose(outputs.scores, [fixture_score(f) for f in frames], rtol=1e-4)
    assert outputs.probabilities is not None and outputs.probabilities.shape == (5, 2)
    np.testing.assert_allclose(outputs.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert model.threshold == THRESHOLDS["0.05"]
    assert model.provider == "CPUExecutionProvider"
    assert (model.name, model.number, model.task) == (FIXTURE_MODEL_NAME, 1, "classify")


def test_the_served_model_follows_the_graph_contract(source_registry: Path) -> None:
    model = _load(source_registry, MODEL_NAME)
    size = model.spec.size
    outputs = model.run(np.random.default_rng(1).integers(0, 256, (3, size, size), dtype=np.uint8))
    assert outputs.scores.shape == (3,) and np.all((outputs.scores >= 0) & (outputs.scores <= 1))
    if model.task == "classify":
        assert outputs.probabilities is not None
        assert outputs.probabilities.shape == (3, len(model.class_names))
    else:
        assert outputs.mask_probability is not None and outputs.mask_probability.shape == (3, size, size)


def test_segmenter_returns_one_mask_per_frame(source_registry: Path) -> None:
    model = _load(source_registry, SEGMENT_MODEL_NAME, target=0.15)
    outputs = model.run(np.zeros((3, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8))
    assert outputs.mask_probability is not None
    assert outputs.mask_probability.shape == (3, FRAME_SIZE, FRAME_SIZE)
    assert outputs.probabilities is None
    assert model.threshold == THRESHOLDS["0.15"]


def test_threshold_is_looked_up_by_value() -> None:
    manifest = fixture_manifest("m", "classify")
    assert threshold_for(manifest, 0.1) == THRESHOLDS["0.1"]
    with pytest.raises(ModelLoadError) as info:
        threshold_for(manifest, 0.07)
    assert str(info.value) == MSG_NO_THRESHOLD.format(
        name="m", version=0, target=0.07, available=sorted(THRESHOLDS)
    )


def test_an_operating_point_without_a_threshold_refuses_the_version(source_registry: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no threshold for target rejection 0\.3"):
        _load(source_registry, FIXTURE_MODEL_NAME, target=0.3)


def _publish_graph(tmp_path: Path, controller: bytes) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "reg")
    (tmp_path / "controller.onnx").write_bytes(controller)
    predictor = tmp_path / "predictor.onnx"
    predictor.write_bytes(controller)
    registry.publish(
        fixture_manifest("broken", "classify"),
        {"controller.onnx": tmp_path / "controller.onnx", "predictor.onnx": predictor},
        alias=CHAMPION,
    )
    return registry


def test_bytes_that_are_no_graph_are_a_load_error_not_a_crash(tmp_path: Path) -> None:
    registry = _publish_graph(tmp_path, b"not an onnx graph")
    with pytest.raises(ModelLoadError, match="controller graph does not follow the contract"):
        _load(registry.root, "broken")


def test_a_graph_with_the_wrong_input_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("score", TensorProto.UINT8, ["N", 1, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["score"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    registry = _publish_graph(tmp_path, model.SerializeToString())
    with pytest.raises(ModelLoadError, match="no input named 'frame'"):
        _load(registry.root, "broken")
    assert onnx.load_from_string(model.SerializeToString()).graph.input[0].name == "image"
