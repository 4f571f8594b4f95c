"""The promotion gate's decisions, without Redis or Celery: real ONNX graphs, real data sets, real registry.

The versions are the service's fixture graphs (the controller keeps frames by brightness; the classifier calls
a constant frame class 1 when it is brighter than its decision level), published into a temporary registry,
and the evaluation sets are small uploaded data sets of constant frames, so every figure is known exactly.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from usqa.service.datasets.uploads import DatasetStore
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.settings import Settings
from usqa.trainer.amenability.acceptance import MSG_REFUSED, TRIVIAL_PREDICTOR
from usqa.trainer.jobs.promotion import decide

from ...service.conftest import (
    FRAME_SIZE,
    classifier_graph,
    fixture_manifest,
    make_settings,
    write_graphs,
)
from ...support.verdicts import marginal_verdict

NAME = "gated"
# (frame level, label) of the holdout frames. The fixture controller rejects level 20 at the 5 % operating
# point and keeps the others; the fixture classifier calls every kept frame class 1.
MIXED_HOLDOUT = [(20, 0), (60, 1), (100, 1), (140, 1), (180, 1), (220, 1)]
BRIGHT_HOLDOUT = [(150, 1), (180, 1), (200, 1), (230, 1)]
# Decision level of a challenger that calls the level-60 frame class 0: 4 of 5 kept frames right.
SLIGHTLY_WORSE_LEVEL = 80


def classifier_deciding_at(level: float) -> onnx.ModelProto:
    """The fixture classifier with its bias moved: constant frames brighter than `level` are class 1."""
    model = classifier_graph()
    u = level / 255
    # For a constant frame the features are (u, u^2); logit(1) - logit(0) = 16 u - 8 u^2 + bias[1] - bias[0].
    gap = 16 * u - 8 * u * u
    for i, init in enumerate(model.graph.initializer):
        if init.name == "bias":
            bias = np.array([gap / 2, -gap / 2], np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(bias, "bias"))
    onnx.checker.check_model(model)
    return model


def publish(
    registry: ModelRegistry,
    folder: Path,
    task: str,
    *,
    decision_level: float | None = None,
    dataset: str | None = None,
    alias: str | None = None,
    verdict: dict[str, Any] | None = None,
) -> int:
    files = write_graphs(folder, task)
    if decision_level is not None:
        onnx.save(classifier_deciding_at(decision_level), str(files["predictor.onnx"]))
    manifest = fixture_manifest(NAME, task).model_copy(update={"dataset": dataset})
    if verdict is not None:
        manifest = manifest.model_copy(update={"metrics": {**manifest.metrics, "verdict": verdict}})
    return registry.publish(manifest, files, alias=alias).version


def upload(store: DatasetStore, folder: Path, holdout: list[tuple[int, int]], *, masks: bool = False) -> str:
    """A data set of constant frames (two train, two val, then `holdout`) stored like an upload; its id."""
    rows = [(90, 1, "train"), (30, 0, "train"), (90, 1, "val"), (30, 0, "val")]
    rows += [(level, label, "holdout") for level, label in holdout]
    (folder / "frames").mkdir(parents=True)
    columns = ["frame", "label", "subject", "split", *(["mask"] if masks else [])]
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i, (level, label, split) in enumerate(rows):
            name = f"frames/{i:02d}.png"
            assert cv2.imwrite(str(folder / name), np.full((FRAME_SIZE, FRAME_SIZE), level, np.uint8))
            row = [name, label, f"s{i}", split]
            if masks:
                mask = np.zeros((FRAME_SIZE, FRAME_SIZE), np.uint8)
                mask[: FRAME_SIZE // 2] = 255
                assert cv2.imwrite(str(folder / f"frames/{i:02d}_mask.png"), mask)
                row.append(f"frames/{i:02d}_mask.png")
            writer.writerow(row)
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent).as_posix())
    info, _ = store.add_archive(archive, folder.name)
    return info.id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "models", data_root=tmp_path / "data")


@pytest.fixture
def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.registry)


@pytest.fixture
def store(settings: Settings) -> DatasetStore:
    return DatasetStore(settings.data_root, max_unpacked_bytes=10**8, max_members=1000)


@pytest.fixture
def mixed(store: DatasetStore, tmp_path: Path) -> str:
    return upload(store, tmp_path / "upload" / "mixed", MIXED_HOLDOUT)


@pytest.fixture
def bright(store: DatasetStore, tmp_path: Path) -> str:
    return upload(store, tmp_path / "upload" / "bright", BRIGHT_HOLDOUT)


def test_without_a_champion_the_first_version_passes(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    version = publish(registry, tmp_path / "v1", "classify")
    decision = decide(settings, registry, NAME, version, mixed)
    assert decision.passed and "no champion yet" in decision.reason
    assert (decision.champion_version, decision.sets) == (None, [])


def test_a_challenger_as_good_as_the_champion_passes(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    publish(registry, tmp_path / "v1", "classify", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "classify")
    decision = decide(settings, registry, NAME, challenger, mixed, margin=0.0)
    assert decision.passed, decision.reason
    assert (decision.metric, decision.champion_version, decision.target_rejection) == ("accuracy", 1, 0.05)
    (only,) = decision.sets
    assert (only.name, only.dataset, only.frames, only.passed) == ("new data holdout", mixed, 6, True)
    assert (only.challenger, only.champion) == (1.0, 1.0)
    assert only.challenger_kept == only.champion_kept == pytest.approx(5 / 6)


def test_a_worse_challenger_passes_within_the_margin_and_fails_beyond_it(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    publish(registry, tmp_path / "v1", "classify", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "classify", decision_level=SLIGHTLY_WORSE_LEVEL)
    within = decide(settings, registry, NAME, challenger, mixed, margin=0.25)
    assert within.passed, within.reason
    assert (within.sets[0].challenger, within.sets[0].champion) == pytest.approx((0.8, 1.0))
    beyond = decide(settings, registry, NAME, challenger, mixed, margin=0.1)
    assert not beyond.passed and beyond.sets[0].passed is False
    assert "0.8000 is more than 0.1 below the champion's 1.0000" in beyond.reason


def test_the_champions_reference_set_can_fail_the_gate(
    settings: Settings, registry: ModelRegistry, mixed: str, bright: str, tmp_path: Path
) -> None:
    # The champion was trained on `mixed`; the challenger is as good on the new (bright) data only.
    publish(registry, tmp_path / "v1", "classify", dataset=mixed, alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "classify", decision_level=SLIGHTLY_WORSE_LEVEL)
    decision = decide(settings, registry, NAME, challenger, bright, margin=0.1)
    new, reference = decision.sets
    assert (new.name, new.dataset, new.passed) == ("new data holdout", bright, True)
    assert (reference.name, reference.dataset, reference.passed) == (
        "champion reference holdout",
        mixed,
        False,
    )
    assert not decision.passed and "champion reference holdout" in decision.reason


def test_a_reference_set_missing_from_the_data_root_is_skipped(
    settings: Settings, registry: ModelRegistry, bright: str, tmp_path: Path
) -> None:
    publish(registry, tmp_path / "v1", "classify", dataset="ds-0123456789abcdef", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "classify", decision_level=SLIGHTLY_WORSE_LEVEL)
    decision = decide(settings, registry, NAME, challenger, bright, margin=0.0)
    assert decision.passed, decision.reason
    assert [s.dataset for s in decision.sets] == [bright]


def test_no_comparable_set_fails_and_says_why(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    # Segmenters cannot be scored on a data set without masks: nothing to compare, promote by hand.
    publish(registry, tmp_path / "v1", "segment", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "segment")
    decision = decide(settings, registry, NAME, challenger, mixed)
    assert not decision.passed and "no evaluation set could score both versions" in decision.reason
    (only,) = decision.sets
    assert (only.passed, only.challenger, only.champion, only.frames) == (None, None, None, 0)
    assert only.note == "challenger: the data set has no masks; champion: the data set has no masks"
    assert decision.metric == "dice"


def test_segmenters_are_gated_on_dice(
    settings: Settings, registry: ModelRegistry, store: DatasetStore, tmp_path: Path
) -> None:
    # The fixture segmenter marks pixels brighter than mid-grey: on a constant bright frame the whole frame,
    # against a half-frame mask, Dice = 2 * 1/2 / (1 + 1/2) = 2/3.
    dataset = upload(store, tmp_path / "upload" / "masks", BRIGHT_HOLDOUT, masks=True)
    publish(registry, tmp_path / "v1", "segment", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "segment")
    decision = decide(settings, registry, NAME, challenger, dataset, margin=0.0)
    assert decision.passed, decision.reason
    assert (decision.sets[0].challenger, decision.sets[0].champion) == pytest.approx((2 / 3, 2 / 3))


def test_a_champion_of_another_task_is_not_compared(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    publish(registry, tmp_path / "v1", "segment", alias=CHAMPION)
    challenger = publish(registry, tmp_path / "v2", "classify")
    decision = decide(settings, registry, NAME, challenger, mixed)
    assert not decision.passed and "does another task" in decision.reason and decision.sets == []
    already = decide(settings, registry, NAME, 1, mixed)
    assert already.passed and "already champion" in already.reason


def failed_verdict() -> dict[str, Any]:
    reason = {"code": TRIVIAL_PREDICTOR, "message": "the predictor does not beat the trivial baseline"}
    return {"passed": False, "reasons": [reason], "forced": True}


def test_a_version_whose_verdict_failed_is_refused_unless_forced(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    version = publish(registry, tmp_path / "v1", "classify", verdict=failed_verdict())
    decision = decide(settings, registry, NAME, version, mixed)
    reasons = failed_verdict()["reasons"][0]["message"]
    assert not decision.passed
    assert decision.reason == MSG_REFUSED.format(what=f"promotion of v{version}", reasons=reasons)
    forced = decide(settings, registry, NAME, version, mixed, force=True)
    assert forced.passed and "no champion yet" in forced.reason
    passing = publish(registry, tmp_path / "v2", "classify", verdict={"passed": True, "reasons": []})
    assert decide(settings, registry, NAME, passing, mixed).passed


def test_a_version_whose_margin_is_within_its_sampling_error_is_refused(
    settings: Settings, registry: ModelRegistry, mixed: str, tmp_path: Path
) -> None:
    version = publish(registry, tmp_path / "v1", "classify", verdict=marginal_verdict().to_dict())
    decision = decide(settings, registry, NAME, version, mixed)
    assert not decision.passed and "margin +0.011 ± 0.018 (1 SE over 180 frames)" in decision.reason
