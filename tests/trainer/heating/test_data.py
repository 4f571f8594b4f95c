from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usqa.trainer.heating.config import heat_preset
from usqa.trainer.heating.data import ClassData, HeatDataError, evaluation_subset, load_class_data

DEBUG = heat_preset("debug")


@pytest.fixture(scope="module")
def data(multipreset_data: Path) -> ClassData:
    return load_class_data([multipreset_data], DEBUG.frame, "auto")


def test_classes_come_from_the_preset_column_or_the_label(multipreset_data: Path, data: ClassData) -> None:
    assert data.source == "preset_label"
    assert len(data.class_names) == 6 and data.class_names[0] == "curved_c/label 0"
    assert data.train.frames.dtype == torch.uint8 and data.train.frames.shape[1:] == (1, 32, 32)
    presets = load_class_data([multipreset_data], DEBUG.frame, "preset")
    assert presets.class_names == ("curved_c", "linear_b", "sector_a")
    merged = load_class_data([multipreset_data, multipreset_data], DEBUG.frame, "label")
    assert merged.class_names == ("0:multi:label 0", "0:multi:label 1", "1:multi:label 0", "1:multi:label 1")
    assert len(merged.train) == 2 * len(data.train)


def test_preset_classes_need_a_preset_column(tmp_path: Path, multipreset_data: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    lines = (multipreset_data / "labels.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "preset"]
    (plain / "labels.csv").write_text(
        "\n".join(",".join(row.split(",")[i] for i in keep) for row in lines) + "\n"
    )
    (plain / "frames").symlink_to(multipreset_data / "frames")
    assert load_class_data([plain], DEBUG.frame, "auto").source == "label"
    with pytest.raises(HeatDataError, match="preset"):
        load_class_data([plain], DEBUG.frame, "preset")


def test_evaluation_subset_is_seeded_and_keeps_order(data: ClassData) -> None:
    subset = evaluation_subset(data.holdout, 5, seed=0)
    assert len(subset) == 5 and subset.names == evaluation_subset(data.holdout, 5, seed=0).names
    index = [data.holdout.names.index(n) for n in subset.names]
    assert index == sorted(index)
    assert torch.equal(subset.labels, data.holdout.labels[index])
    assert evaluation_subset(data.holdout, 10_000, seed=0) is data.holdout
