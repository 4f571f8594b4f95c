"""The generalisation benchmark's data sets: built once per content key, with prevalence and trivial baselines.

Five data sets, each with a role (issue #13 item 4, issue 24, docs/data.md): two development simulator settings
(`prostate_evidence_loss`; `breast_held_out`, held out when built and development since its numbers were read),
two fresh held-out simulator settings built on 6 Dec 2026 and evaluated only by the final benchmark
(`thyroid_held_out`, `abdomen_held_out`), and the real-frame set. A folder is named by a hash of everything that defines its
bytes, so a changed setting (or `--quick`) never reuses another setting's frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from usqa.contracts.training import TrainConfig
from usqa.service.datasets import load_dataset
from usqa.service.datasets.real_frames import build as build_real_frames
from usqa.service.simulator import write_dataset
from usqa.service.simulator.benchmarks import (
    ABDOMEN_HELD_OUT,
    BREAST_HELD_OUT,
    PROSTATE_EVIDENCE_LOSS,
    THYROID_HELD_OUT,
    BenchmarkSetting,
)
from usqa.trainer.amenability.rewards import frame_accuracy, frame_dice
from usqa.trainer.data import amenability, load_task_data

log = logging.getLogger(__name__)

Role = Literal["development", "held_out", "real"]
DATA_FILE = "benchmark.json"
# --quick: a few subjects per simulator setting, enough for three non-empty splits with both classes.
QUICK_SIMULATED = {"frames": 160, "subjects": 12}
# Held-out and real sets whose rows were read before a recipe decision (docs/results.md's status says which
# decisions): from that date they have informed the recipe, whatever their role says, and the page says so.
READ_BEFORE_A_DECISION: dict[str, str] = {
    "thyroid_held_out": "2026-12-06",
    "abdomen_held_out": "2026-12-06",
    "real_frames": "2026-12-06",
}
ROLE_NOTES: dict[str, str] = {
    "development": "development: used for every decision",
    "held_out": "held out: reported only, not used for any decision",
    "real": "real frames: reported only, not used for any decision",
}


@dataclass(frozen=True)
class BenchmarkData:
    """One data set of the benchmark: how to build it, its role, its tasks and the frame size it is read at."""

    name: str
    role: Role
    kind: Literal["simulated", "real_frames"]
    settings: dict[str, Any]
    tasks: tuple[str, ...]
    frame_size: int
    # When the set was built and first evaluated (benchmarks.BenchmarkSetting); not part of the content key.
    built: str | None = None
    first_evaluated: str | None = None

    def key(self) -> str:
        """A content key of everything that defines the folder's bytes."""
        text = json.dumps({"kind": self.kind, "settings": self.settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def command(self) -> str:
        """The equivalent command line (for the page)."""
        if self.kind == "real_frames":
            return f"python -m usqa.service.datasets.real_frames --out DIR --seed {self.settings['seed']}"
        s = self.settings
        return (
            f"usqa simulate --out DIR --preset {s['preset']} --mix {s['mix']} --degraded-fraction "
            f"{s['degraded_fraction']} --seed {s['seed']} --frames {s['frames']} --subjects {s['subjects']} "
            f"--size {s['size']}"
        )


def _simulated(setting: BenchmarkSetting, quick: bool) -> BenchmarkData:
    settings: dict[str, Any] = {
        "preset": setting.preset,
        "mix": setting.mix,
        "degraded_fraction": setting.degraded_fraction,
        "seed": setting.seed,
        "frames": setting.frames,
        "subjects": setting.subjects,
        "size": setting.size,
    }
    if quick:
        settings |= QUICK_SIMULATED
    # Simulator frames are read at 64 px (the demo preset's input; 32 px, the debug preset's, when quick);
    # they have masks, so both tasks run.
    size = 32 if quick else 64
    return BenchmarkData(
        setting.name,
        setting.role,
        "simulated",
        settings,
        ("classify", "segment"),
        size,
        built=setting.built,
        first_evaluated=setting.first_evaluated,
    )


def benchmark_data(quick: bool = False) -> list[BenchmarkData]:
    """The five data sets; `quick` shrinks the simulated ones (the real set is small already)."""
    return [
        *(
            _simulated(s, quick)
            for s in (PROSTATE_EVIDENCE_LOSS, BREAST_HELD_OUT, THYROID_HELD_OUT, ABDOMEN_HELD_OUT)
        ),
        # 32 px patches without masks: classification only, read at their own size.
        BenchmarkData("real_frames", "real", "real_frames", {"seed": 0}, ("classify",), 32),
    ]


def dataset_names(quick: bool = False) -> list[str]:
    """The data sets a run covers unless told: all; a quick run (a code check) leaves out the held-out ones, since
    its small sets are a few subjects of theirs and only the final benchmark may train on those."""
    return [d.name for d in benchmark_data() if not quick or d.role != "held_out"]


def build(data: BenchmarkData, root: Path) -> Path:
    """The data set's folder under `root`, built unless a folder with the same content key is complete."""
    out = root / f"{data.name}-{data.key()}"
    record = out / DATA_FILE
    if record.is_file():
        return out
    log.info("building %s into %s", data.name, out)
    if data.kind == "real_frames":
        build_real_frames(out, seed=data.settings["seed"], force=True)
    else:
        write_dataset(out, workers=1, force=True, **data.settings)
    # Written last: a folder without it is an interrupted build and is rebuilt.
    record.write_text(json.dumps({"name": data.name, "kind": data.kind, "settings": data.settings}) + "\n")
    return out


def prevalence(data_dir: Path, task: str) -> dict[str, float]:
    """Share of non-amenable frames among frames with a known label, overall and per split, for `task`."""
    dataset = load_dataset(data_dir)
    out: dict[str, float] = {}
    values_all: list[int] = []
    for split in ("train", "val", "holdout"):
        values = [amenability(r, task) for r in dataset.split(split)]
        known = [v for v in values if v >= 0]
        values_all += known
        out[split] = float(np.mean(np.equal(known, 0))) if known else float("nan")
    out["all"] = float(np.mean(np.equal(values_all, 0))) if values_all else float("nan")
    return out


def trivial_baseline(data_dir: Path, task: str, frame_size: int) -> dict[str, Any]:
    """Classification: the training split's majority class, scored on holdout. Segmentation: the empty mask.

    Both are scored with the evaluation's own per-frame metric (usqa/trainer/amenability/rewards.py: Dice 1 for empty-vs-empty), on the holdout frames the
    evaluation uses (segmentation keeps frames that show the structure), so the bar compares like with like.
    """
    config = replace(TrainConfig(task=task), frame=replace(TrainConfig().frame, size=frame_size))  # type: ignore[arg-type]
    split = load_task_data(data_dir, config)
    holdout = split.holdout
    if task == "classify":
        counts = torch.bincount(split.train.targets, minlength=split.num_classes)
        majority = int(torch.argmax(counts))
        logits = torch.zeros(len(holdout), split.num_classes)
        logits[:, majority] = 1.0
        name = f"majority class ({majority})"
        extra: dict[str, Any] = {
            "majority_class": majority,
            "train_share": float(counts.max() / counts.sum()),
        }
    else:
        # Background wins the arg-max everywhere: an empty predicted mask.
        logits = torch.zeros(len(holdout), 2, *holdout.targets.shape[1:])
        logits[:, 0] = 1.0
        name = "empty mask"
        extra = {}
    metric = (frame_accuracy if task == "classify" else frame_dice)(logits, holdout.targets)
    return {"name": name, "metric": float(metric.mean()), "holdout_frames": len(holdout), **extra}


def describe(data: BenchmarkData, data_dir: Path, tasks: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Everything the page says about a data set: role, command, size, prevalence and trivial baselines."""
    dataset = load_dataset(data_dir)
    records = dataset.records
    return {
        "name": data.name,
        "role": data.role,
        "role_note": ROLE_NOTES[data.role],
        "built": data.built,
        "first_evaluated": data.first_evaluated,
        "command": data.command(),
        "key": data.key(),
        "dir": str(data_dir),
        "frames": len(records),
        "subjects": len({r.subject for r in records}),
        "frame_size": data.frame_size,
        "tasks": {
            task: {
                "prevalence": prevalence(data_dir, task),
                "trivial": trivial_baseline(data_dir, task, data.frame_size),
            }
            for task in data.tasks
            if task in tasks
        },
    }
