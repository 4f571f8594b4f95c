"""Supervised training without masks: fine-tuning a heated backbone (the policy dropped), or, without a backbone,
the normal model; optionally with CutMix or RandAugment (the comparisons of Table 2).

The run folder (usqa.trainer.heating.run_folder) holds the config, the checkpoint (resume state and the classifier
with its config and class names), the log, the fine-tuned backbone (itself usable as `--backbone`) and the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from usqa.contracts.frames import FrameSpec
from usqa.trainer.engine.base import Callback, Engine
from usqa.trainer.engine.callbacks import Checkpointer, MetricsLog, ProgressBar, load_checkpoint_of_kind
from usqa.trainer.engine.device import resolve_device
from usqa.trainer.heating.augment import CutMix, RandAugment
from usqa.trainer.heating.backbone_io import (
    load_backbone,
    load_head,
    read_backbone_meta,
    save_backbone,
)
from usqa.trainer.heating.config import FinetuneConfig
from usqa.trainer.heating.data import ClassData, evaluation_subset
from usqa.trainer.heating.evaluate import evaluate_classifier
from usqa.trainer.heating.heat import check_resumable
from usqa.trainer.heating.run_folder import (
    BACKBONE_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    write_metrics,
)
from usqa.trainer.heating.steps import BatchStream, cosine_schedule
from usqa.trainer.heating.supervised import SupervisedEngine
from usqa.trainer.networks import FrameClassifier, seeded_init
from usqa.trainer.networks import load_backbone as init_backbone
from usqa.trainer.recipe.config_files import write_config

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "usqa-finetune/1"
MSG_NOT_FINETUNE_CHECKPOINT = "{path} is not a fine-tuning checkpoint"
MSG_FRAME_SPEC = (
    "the backbone was trained on {saved} frames but this config prepares {wanted}; "
    "fine-tune with the backbone's preset (--config) or re-heat"
)
SEED_BATCHES, SEED_AUGMENT = 2, 5


def config_for_backbone(config: FinetuneConfig, path: Path | str) -> FinetuneConfig:
    """The backbone decides the architecture; its frame spec must match the config's."""
    _, backbone_config = load_backbone(path)
    spec = read_backbone_meta(path).get("frame_spec")
    if spec is not None:
        saved, wanted = FrameSpec.from_dict(spec), config.frame
        if saved != wanted:
            raise ValueError(MSG_FRAME_SPEC.format(saved=saved, wanted=wanted))
    return replace(config, backbone=backbone_config)


def build_finetune_engine(
    config: FinetuneConfig,
    data: ClassData,
    device: torch.device,
    backbone: Path | str | None = None,
    callbacks: Sequence[Callback] = (),
) -> SupervisedEngine:
    """A classifier (from the heated backbone when given, and its head when the classes are the same)."""
    with seeded_init(config.seed):
        classifier = FrameClassifier(config.backbone, data.num_classes)
    if backbone is not None:
        state, _ = load_backbone(backbone)
        missing = init_backbone(classifier, state)
        if missing:
            log.warning(
                "backbone %s left %d tensors at their initial values: %s", backbone, len(missing), missing
            )
        head = load_head(backbone)
        if head is not None and read_backbone_meta(backbone).get("class_names") == list(data.class_names):
            classifier.head.load_state_dict(head)
    classifier.to(device)
    optimiser = torch.optim.AdamW(
        classifier.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, cosine_schedule(config.steps, config.warmup_steps)
    )
    augment: CutMix | RandAugment | None = None
    if config.augment == "cutmix":
        augment = CutMix(config.cutmix_alpha, seed=config.seed + SEED_AUGMENT)
    elif config.augment == "randaugment":
        augment = RandAugment(
            config.randaugment_ops,
            config.randaugment_magnitude,
            config.frame.size,
            seed=config.seed + SEED_AUGMENT,
        )
    return SupervisedEngine(
        classifier=classifier,
        optimiser=optimiser,
        schedulers={"classifier": scheduler},
        data=BatchStream(data.train, config.batch_size, config.seed + SEED_BATCHES, device),
        total_steps=config.steps,
        augment=augment,
        callbacks=callbacks,
        stage="train" if backbone is None else "finetune",
    )


def finetune_checkpoint_payload(config: FinetuneConfig, data: ClassData, backbone: str | None) -> Any:
    def payload(engine: Engine) -> dict[str, Any]:
        return {
            "kind": CHECKPOINT_KIND,
            "config": config.to_dict(),
            "class_names": list(data.class_names),
            "class_source": data.source,
            "backbone_path": backbone,
            "engine": engine.state_dict(),
        }

    return payload


def load_finetune_checkpoint(path: Path) -> dict[str, Any]:
    return load_checkpoint_of_kind(path, CHECKPOINT_KIND, MSG_NOT_FINETUNE_CHECKPOINT)


def finetune(
    config: FinetuneConfig,
    data: ClassData,
    out: Path | None = None,
    *,
    backbone: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> SupervisedEngine:
    """Train a classifier on clean frames of `data.train` (from `backbone` when given); write the run folder."""
    device = resolve_device(config.device)
    if backbone is not None:
        config = config_for_backbone(config, backbone)
    state = None
    if resume and out is not None and (out / CHECKPOINT_FILE).is_file():
        state = load_finetune_checkpoint(out / CHECKPOINT_FILE)
        check_resumable(out, config.to_dict(), state["config"])
    all_callbacks: list[Callback] = [ProgressBar(enabled=progress)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_config(config, out / CONFIG_FILE)
        all_callbacks.append(MetricsLog(out / LOG_FILE, every=max(1, config.steps // 100)))
        payload = finetune_checkpoint_payload(config, data, None if backbone is None else str(backbone))
        all_callbacks.append(Checkpointer(out / CHECKPOINT_FILE, config.checkpoint_every, payload))
    all_callbacks += callbacks
    engine = build_finetune_engine(config, data, device, backbone, all_callbacks)
    if state is not None:
        engine.load_state_dict(state["engine"])
        log.info("resumed %s at step %d of %d", out, engine.step, engine.total_steps)
    engine.run()
    if out is not None:
        meta = {
            "source": "finetune",
            "steps": engine.step,
            "seed": config.seed,
            "frame_spec": config.frame.to_dict(),
            "class_names": list(data.class_names),
            "class_source": data.source,
            "initial_backbone": None if backbone is None else str(backbone),
        }
        save_backbone(
            out / BACKBONE_FILE,
            engine.classifier.backbone.state_dict(),
            config.backbone,
            meta,
            head_state=engine.classifier.head.state_dict(),
        )
        split = data.holdout if len(data.holdout) else data.val
        evaluation = evaluation_subset(split, config.eval_frames, config.seed)
        metrics = {}
        if len(evaluation):
            metrics = evaluate_classifier(
                engine.classifier, evaluation.frames, evaluation.labels, device=device
            )
        summary = {"steps": engine.step, "class_names": list(data.class_names), "metrics": metrics}
        write_metrics(summary, out)
    return engine
