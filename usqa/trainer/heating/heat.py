"""Heating (seed 000): train a classifier on policy-masked frames of a heterogeneous multi-class set, together
with the policy (Algorithm 1), and keep its backbone as the heated backbone.

The run folder (usqa.trainer.heating.run_folder) holds the resolved config, the checkpoint (everything `--resume`
needs: both networks, the dataset-level alpha/beta, optimisers, schedulers, generators), the log, the heated
backbone (see `backbone_io`) and the holdout metrics on clean and on masked frames.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from usqa.trainer.engine.base import Callback, Engine
from usqa.trainer.engine.callbacks import Checkpointer, MetricsLog, ProgressBar, load_checkpoint_of_kind
from usqa.trainer.engine.device import resolve_device
from usqa.trainer.heating.backbone_io import save_backbone
from usqa.trainer.heating.config import HeatConfig
from usqa.trainer.heating.data import ClassData, ClassSplit, evaluation_subset
from usqa.trainer.heating.engine import HeatingEngine
from usqa.trainer.heating.evaluate import FrameTransform, evaluate_classifier
from usqa.trainer.heating.masks import NoiseMaskSampler, apply_mask
from usqa.trainer.heating.policy import NoisePolicy
from usqa.trainer.heating.run_folder import (
    BACKBONE_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    write_metrics,
)
from usqa.trainer.heating.steps import BatchStream, cosine_schedule
from usqa.trainer.networks import FrameClassifier, seeded_init
from usqa.trainer.recipe.config_files import write_config

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "usqa-heat/1"
MSG_NOT_HEAT_CHECKPOINT = "{path} is not a heating checkpoint"
MSG_RESUME_CLASSES = "the data's classes {found} differ from the checkpoint's {saved}"
MSG_RESUME_CONFIG = "cannot resume {run}: its checkpoint was made with a different config ({keys} differ)"
# What a resumed run may change: how long it runs and where, not what it trains.
RESUMABLE_CHANGES = frozenset({"device", "steps", "checkpoint_every", "eval_frames"})
# Offsets that give each random stream of a run its own seed.
SEED_POLICY, SEED_BATCHES, SEED_MASKS, SEED_EVAL_MASKS = 1, 2, 3, 4


def build_heating_engine(
    config: HeatConfig,
    num_classes: int,
    train: ClassSplit,
    device: torch.device,
    callbacks: Sequence[Callback] = (),
) -> HeatingEngine:
    """The classifier, the policy, their optimisers (AdamW, cosine decay) and the mask sampler, seeded."""
    with seeded_init(config.seed):
        classifier = FrameClassifier(config.backbone, num_classes).to(device)
    with seeded_init(config.seed + SEED_POLICY):
        policy = NoisePolicy(config.policy, config.mask.grid).to(device)
    optimiser = torch.optim.AdamW(
        classifier.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    policy_optimiser = torch.optim.AdamW(
        policy.parameters(), lr=config.policy.learning_rate, weight_decay=config.policy.weight_decay
    )
    schedule = cosine_schedule(config.steps)
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {
        "classifier": torch.optim.lr_scheduler.LambdaLR(optimiser, schedule),
        "policy": torch.optim.lr_scheduler.LambdaLR(policy_optimiser, schedule),
    }
    return HeatingEngine(
        classifier=classifier,
        policy=policy,
        optimiser=optimiser,
        policy_optimiser=policy_optimiser,
        schedulers=schedulers,
        data=BatchStream(train, config.batch_size, config.seed + SEED_BATCHES, device),
        mask_sampler=NoiseMaskSampler(config.mask, config.frame.size, config.seed + SEED_MASKS, device),
        total_steps=config.steps,
        loss=config.loss,
        baseline_momentum=config.baseline_momentum,
        mask_space=config.mask.space,
        pixel_mean=config.backbone.pixel_mean,
        callbacks=callbacks,
    )


@torch.no_grad()
def policy_masks(
    policy: NoisePolicy, sampler: NoiseMaskSampler, frames: torch.Tensor, level: str = "image"
) -> torch.Tensor:
    """Noise masks [N, 1, S, S] for frames without touching the policy's state (eval mode, no EMA update).

    level "image": the policy's per-frame parameters (eqs. 10-11, 3). level "dataset": the dataset-level
    Beta alone, one distribution for every frame, as the reference implementation evaluates.
    """
    if level == "dataset":
        alpha_d, beta_d = policy.dataset_parameters()
        alpha, beta = alpha_d.expand(frames.shape[0], -1), beta_d.expand(frames.shape[0], -1)
    else:
        was_training = policy.training
        policy.eval()
        action = policy(frames)
        policy.train(was_training)
        alpha, beta = action.alpha, action.beta
    return sampler(alpha, beta).mask


def masking_transform(
    engine: HeatingEngine, config: HeatConfig, seed: int, level: str = "image"
) -> FrameTransform:
    """Frames -> masked frames for evaluation, from a fresh sampler (training's generators stay untouched)."""
    device = next(engine.classifier.parameters()).device
    sampler = NoiseMaskSampler(config.mask, config.frame.size, seed, device)

    def transform(frames: torch.Tensor) -> torch.Tensor:
        mask = policy_masks(engine.policy, sampler, frames, level)
        return apply_mask(frames, mask, config.mask.space, config.backbone.pixel_mean)

    return transform


def check_resumable(run: Path, now: dict[str, Any], then: dict[str, Any]) -> None:
    """A resumed run may change how long it runs and where, not what it trains."""
    differ = sorted(
        k for k in set(now) | set(then) if k not in RESUMABLE_CHANGES and now.get(k) != then.get(k)
    )
    if differ:
        raise ValueError(MSG_RESUME_CONFIG.format(run=run, keys=", ".join(differ)))


def heat_checkpoint_payload(config: HeatConfig, data: ClassData) -> Any:
    def payload(engine: Engine) -> dict[str, Any]:
        return {
            "kind": CHECKPOINT_KIND,
            "config": config.to_dict(),
            "class_names": list(data.class_names),
            "class_source": data.source,
            "engine": engine.state_dict(),
        }

    return payload


def load_heat_checkpoint(path: Path) -> dict[str, Any]:
    return load_checkpoint_of_kind(path, CHECKPOINT_KIND, MSG_NOT_HEAT_CHECKPOINT)


def backbone_meta(config: HeatConfig, data: ClassData, steps: int) -> dict[str, Any]:
    return {
        "source": "heat",
        "steps": steps,
        "seed": config.seed,
        "frame_spec": config.frame.to_dict(),
        "class_names": list(data.class_names),
        "class_source": data.source,
        "mask": dataclasses.asdict(config.mask),
        "loss": config.loss,
    }


def heat(
    config: HeatConfig,
    data: ClassData,
    out: Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> HeatingEngine:
    """Run heating on `data.train`; with `out`, write the run folder (and continue it when `resume`)."""
    device = resolve_device(config.device)
    state = None
    if resume and out is not None and (out / CHECKPOINT_FILE).is_file():
        state = load_heat_checkpoint(out / CHECKPOINT_FILE)
        check_resumable(out, config.to_dict(), state["config"])
        if list(state["class_names"]) != list(data.class_names):
            raise ValueError(
                MSG_RESUME_CLASSES.format(found=list(data.class_names), saved=state["class_names"])
            )
    # the run's own files first: a caller's callback that stops the run sees the checkpoint written
    all_callbacks: list[Callback] = [ProgressBar(enabled=progress)]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_config(config, out / CONFIG_FILE)
        all_callbacks.append(MetricsLog(out / LOG_FILE, every=max(1, config.steps // 100)))
        all_callbacks.append(
            Checkpointer(
                out / CHECKPOINT_FILE, config.checkpoint_every, heat_checkpoint_payload(config, data)
            )
        )
    all_callbacks += callbacks
    engine = build_heating_engine(config, data.num_classes, data.train, device, all_callbacks)
    if state is not None:
        engine.load_state_dict(state["engine"])
        log.info("resumed %s at step %d of %d", out, engine.step, engine.total_steps)
    engine.run()
    if out is not None:
        save_backbone(
            out / BACKBONE_FILE,
            engine.classifier.backbone.state_dict(),
            config.backbone,
            backbone_meta(config, data, engine.step),
            head_state=engine.classifier.head.state_dict(),
        )
        split = data.holdout if len(data.holdout) else data.val
        evaluation = evaluation_subset(split, config.eval_frames, config.seed)
        metrics = {}
        if len(evaluation):
            frames, labels = evaluation.frames, evaluation.labels
            metrics = {
                "clean": evaluate_classifier(engine.classifier, frames, labels, device=device),
                "masked": evaluate_classifier(
                    engine.classifier,
                    frames,
                    labels,
                    masking_transform(engine, config, config.seed + SEED_EVAL_MASKS),
                    device=device,
                ),
            }
        summary = {"steps": engine.step, "class_names": list(data.class_names), "metrics": metrics}
        write_metrics(summary, out)
    return engine
