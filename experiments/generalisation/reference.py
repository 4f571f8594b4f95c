"""The supervised reference (issue 24): the benchmark's predictor trained the ordinary way, with no controller.

So that every page shows how far the product's predictor is from an ordinary one: the same network family and
batch size as the budget's runs, trained by `usqa.trainer.amenability.supervised_stage` (the trainer's own
supervised stage: AdamW, one-cycle learning rate, early stopping on the validation split, the best validation
check's weights) on every training frame, with the budget's recipe (for `benchmark`, the demo preset's: the
ultrasound augmentation, left-right flips, gain and contrast jitter, small affine, and plain batches, not
class-balanced). Its step budget is the budget's stage
(`methods.BENCHMARK_STAGE` for `benchmark`: 3,000 classification steps of 32 frames, about 60 epochs of the
simulator sets' 1,680 training frames, the ordinary CNN of issue 24, and 2,000 segmentation steps of 16; early
stopping may end it sooner). It is scored on the holdout split with the evaluation's per-frame metric, on the
frames the evaluation uses, so its number sits beside the non-selective predictor's at 0 % rejection.

It is also the product's first stage: `train()` runs exactly this stage before the non-selective baseline and
Algorithm 1 continue from it. The reference keeps its predictor as `supervised.pt`, and every method's run of the
same (data set, task, seed) continues from that file (`train(shared_stage=...)`, which checks that the stage
settings agree) instead of training the same stage five more times. So the learning table's last column is what
the continuation does to an ordinary predictor, and a method's training time excludes the shared stage.

A job trains and scores in one go (minutes): `supervised.pt` and `result.json` first, then `train.json`, which
marks it done.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from experiments.generalisation.methods import METHODS, SUPERVISED_REFERENCE, method_config
from usqa.contracts.training import TrainConfig
from usqa.trainer.amenability.engine import frame_metric, infer
from usqa.trainer.amenability.run import with_data_priors
from usqa.trainer.amenability.run_folder import SUPERVISED_FILE
from usqa.trainer.amenability.supervised_stage import save_stage, supervised_stage
from usqa.trainer.data import load_task_data


def reference_config(*, budget: str, task: str, seed: int, frame_size: int) -> TrainConfig:
    """The budget's network, batch size, frame size and supervised stage (as every method's run), alone."""
    base = method_config(
        METHODS[0], budget=budget, task=task, seed=seed, frame_size=frame_size, train_baseline=False
    )
    return replace(base, name=f"{budget}-{SUPERVISED_REFERENCE}")


def train_reference(job: dict[str, Any], train_file: str, result_file: str) -> dict[str, Any]:
    """Train the reference of one (data set, task, seed), score it on the holdout, write both files."""
    torch.set_num_threads(1)
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / result_file).unlink(missing_ok=True)
    started = time.perf_counter()
    config = TrainConfig.from_dict(job["config"])
    data = load_task_data(job["data_dir"], config)
    config = with_data_priors(replace(config, num_classes=data.num_classes), data)
    stage = supervised_stage(config, data.train, data.val)
    save_stage(config, stage, run_dir / SUPERVISED_FILE)
    logits = infer(stage.predictor, data.holdout.frames, torch.device("cpu"))
    metric = float(frame_metric(config.task, logits, data.holdout.targets).mean())
    record = {"config": job["config"], "seconds": {"supervised": stage.seconds}}
    result = {
        **{k: job[k] for k in ("dataset", "task", "method", "seed")},
        **record,
        "train_wall": time.perf_counter() - started,
        "holdout": {"metric": metric, "frames": len(data.holdout)},
        "stage": {k: v for k, v in stage.summary().items() if k != "history"},
    }
    (run_dir / result_file).write_text(json.dumps(result, indent=1) + "\n")
    (run_dir / train_file).write_text(json.dumps({**record, "wall": result["train_wall"]}, indent=1) + "\n")
    return result
