"""The RL trainer's run folder: `train(config, data_dir, out_dir, callbacks) -> RunResult` and `load_run(run_dir)`.

It writes the run folder that usqa.trainer.amenability.run_folder declares: the resolved config, the latest
checkpoint of Algorithm 1 (config, networks, optimisers, generators, reward baseline, replay buffer; written
atomically, `train(..., resume=True)` continues from it), one metrics line per episode and stage (`EpisodeLog`),
the final controller and predictor with their config, the non-selective baseline, and the honest verdict on the
validation split (usqa.trainer.amenability.acceptance), which export and the promotion gate refuse when failed
unless forced.

With `config.supervised.steps`, a supervised stage first trains the predictor on every training frame to convergence
(usqa.trainer.amenability.supervised_stage, kept in supervised.pt); the baseline and Algorithm 1 start from it.
With `config.recipe.best_on_validation`, each later stage keeps the predictor of its best validation episode
(`BestModel`, after the warm-up in the amenability stage) and may stop early; its state is in checkpoint.pt.

A heated backbone (`config.backbone_checkpoint`) is read through `usqa.trainer.heating.backbone_io` only: its own
config sets the architecture, and a frame spec other than the run's is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import TrainConfig
from usqa.trainer.amenability.acceptance import Verdict, compute_verdict
from usqa.trainer.amenability.credit import CreditLearner
from usqa.trainer.amenability.ddpg import DDPG
from usqa.trainer.amenability.engine import AmenabilityEngine
from usqa.trainer.amenability.reinforce import ControllerLearner, Reinforce
from usqa.trainer.amenability.run_folder import (
    BASELINE_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    record_data_dir,
    write_verdict,
)
from usqa.trainer.amenability.supervised_stage import StageMismatch, stage_in_run_folder
from usqa.trainer.data import TaskData, load_task_data, reward_indices
from usqa.trainer.engine.base import Callback, Engine
from usqa.trainer.engine.callbacks import BestModel, Checkpointer, MetricsLog, ProgressBar, atomic_torch_save
from usqa.trainer.engine.device import resolve_device
from usqa.trainer.heating.backbone_io import (
    BackboneFileError,
    load_backbone,
    read_backbone_meta,
    save_backbone,
)
from usqa.trainer.networks import Controller, FrameClassifier, build_controller, build_predictor, seeded_init
from usqa.trainer.networks import load_backbone as init_backbone
from usqa.trainer.recipe.config_files import write_config

log = logging.getLogger(__name__)

MSG_NOT_A_RUN = "{run} is not a training run folder (no {file})"
MSG_RESUME_CONFIG = "cannot resume {run}: its checkpoint was made with a different config ({keys} differ)"
MSG_BACKBONE_FRAME_SPEC = (
    "backbone {path} was trained on {saved} frames but this run prepares {wanted}; train with the backbone's "
    "frame spec or heat a backbone for this one"
)
MSG_NO_PREDICTOR_BACKBONE = "run {run} is a {task} run: its predictor has no backbone to start from"
CHECKPOINT_FORMAT = 1


class RunError(ValueError):
    """A run folder or option that cannot be used (a user mistake: the CLI exits 2)."""


@dataclass
class RunResult:
    run_dir: Path
    config: TrainConfig
    controller: Controller
    predictor: nn.Module
    baseline: nn.Module | None
    seconds: dict[str, float]  # wall time per stage
    verdict: Verdict | None = None


def adopt_backbone_config(config: TrainConfig) -> TrainConfig:
    """With `backbone_checkpoint` set, take the architecture stored with the backbone (its format's reader).

    The classifier's and the controller's backbones become that architecture, so the heated weights fit;
    a backbone whose recorded frame spec differs from the run's is refused (`RunError` naming both).
    """
    if not config.backbone_checkpoint:
        return config
    path = config.backbone_checkpoint
    try:
        _, backbone = load_backbone(path)
        spec = read_backbone_meta(path).get("frame_spec")
        saved = None if spec is None else FrameSpec.from_dict(spec)
    except (BackboneFileError, TypeError, ValueError) as exc:
        raise RunError(f"{path}: unusable backbone checkpoint ({exc})") from exc
    if saved is not None and saved != config.frame:
        raise RunError(MSG_BACKBONE_FRAME_SPEC.format(path=path, saved=saved, wanted=config.frame))
    return replace(
        config,
        backbone=backbone if config.task == "classify" else config.backbone,
        controller=replace(config.controller, backbone=backbone),
    )


def with_data_priors(config: TrainConfig, data: TaskData) -> TrainConfig:
    """With `recipe.output_prior`, the U-Net's initial foreground probability: the training masks' fraction."""
    if config.task != "segment" or not config.recipe.output_prior:
        return config
    fraction = round(float(data.train.targets.float().mean()), 4)
    return replace(config, unet=replace(config.unet, foreground_prior=fraction))


def build_networks(config: TrainConfig) -> tuple[nn.Module, Controller]:
    """Predictor and controller with seeded initial weights (and the heated backbone when configured)."""
    with seeded_init(config.seed):
        predictor = build_predictor(config)
    with seeded_init(config.seed + 1):
        controller = build_controller(config)
    if config.backbone_checkpoint:
        try:
            state, _ = load_backbone(config.backbone_checkpoint)
        except BackboneFileError as exc:
            raise RunError(str(exc)) from exc
        targets: list[nn.Module] = [controller] + ([predictor] if config.task == "classify" else [])
        for network in targets:
            try:
                missing = init_backbone(network, state)
            except ValueError as exc:
                raise RunError(f"{config.backbone_checkpoint}: {exc}") from exc
            log.info(
                "%s backbone from %s (%d tensors not in it)",
                type(network).__name__,
                config.backbone_checkpoint,
                len(missing),
            )
    return predictor, controller


def build_learner(config: TrainConfig, controller: Controller) -> ControllerLearner:
    if config.algo == "reinforce":
        return Reinforce(controller, config.reinforce, config.constraint)
    if config.algo == "credit":
        return CreditLearner(controller, config.credit, config.constraint, config.task)
    with seeded_init(config.seed + 3):
        return DDPG(controller, config.ddpg, config.constraint, config.batch_size, seed=config.seed + 3)


def _optimiser(config: TrainConfig, network: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        network.parameters(), lr=config.predictor_learning_rate, weight_decay=config.weight_decay
    )


def checkpoint_payload(
    config: TrainConfig, best: BestModel | None = None
) -> Callable[[Engine], dict[str, Any]]:
    """What `checkpoint.pt` holds: the format, the resolved config, the engine's full state, the best so far."""

    def payload(engine: Engine) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "engine": engine.state_dict(),
            "best": None if best is None else best.state_dict(),
        }

    return payload


def best_model(config: TrainConfig, start: int = 0) -> BestModel | None:
    """The recipe's best-on-validation callback for one stage (the predictor only), or None."""
    recipe = config.recipe
    if not recipe.best_on_validation:
        return None
    return BestModel("metric", patience=recipe.early_stopping_patience, keep=("predictor",), start=start)


def _check_resumable(run_dir: Path, config: TrainConfig, saved: dict[str, Any]) -> None:
    ignore = {"device"}
    now, then = config.to_dict(), saved
    differ = sorted(k for k in set(now) | set(then) if k not in ignore and now.get(k) != then.get(k))
    if differ:
        raise RunError(MSG_RESUME_CONFIG.format(run=run_dir, keys=", ".join(differ)))


def train(
    config: TrainConfig,
    data_dir: Path | str,
    out_dir: Path | str,
    callbacks: Sequence[Callback] = (),
    *,
    resume: bool = False,
    progress: bool = True,
    data: TaskData | None = None,
    shared_stage: Path | None = None,
) -> RunResult:
    """Train the baseline predictor and the controller/predictor pair (Algorithm 1) into `out_dir`.

    `callbacks` get every episode's logs (an `EpisodeLog` as a dict: stage, episode, reward, metric, ETA) in
    both stages; `resume=True` continues from `out_dir/checkpoint.pt` with the same config. `shared_stage`: a
    supervised.pt another run trained with the same stage settings, used instead of training the stage (the
    benchmark's supervised reference). Raises `DataError`/`RunError`/`DeviceError` for unusable input.
    """
    run_dir = Path(out_dir)
    device = resolve_device(config.device)
    data = data or load_task_data(data_dir, config)
    config = with_data_priors(replace(adopt_backbone_config(config), num_classes=data.num_classes), data)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    saved: dict[str, Any] | None = None
    if resume and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        _check_resumable(run_dir, config, saved["config"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(config, run_dir / CONFIG_FILE)
    if data_dir:
        record_data_dir(run_dir, Path(data_dir))
    reward_index = reward_indices(data.val, config, data_dir)
    metrics_path = run_dir / METRICS_FILE
    if not resume:
        metrics_path.unlink(missing_ok=True)
    seconds: dict[str, float] = {}
    # Both stages below continue from the supervised stage's predictor (when it is on), so they compare fairly.
    start: dict[str, torch.Tensor] | None = None
    if config.supervised.steps > 0:
        try:
            start = stage_in_run_folder(
                config,
                data,
                run_dir,
                build_networks(config)[0],
                callbacks,
                resume,
                progress,
                device,
                seconds,
                shared=shared_stage,
            )
        except StageMismatch as exc:
            raise RunError(str(exc)) from exc

    baseline: nn.Module | None = None
    if config.train_baseline:
        baseline_path = run_dir / BASELINE_FILE
        if resume and baseline_path.is_file():
            baseline = load_network(baseline_path, "predictor")
        else:
            with seeded_init(config.seed):
                baseline = build_predictor(config).to(device)
            if start is not None:
                baseline.load_state_dict(start)
            started = time.perf_counter()
            baseline_best = best_model(config)
            engine = AmenabilityEngine(
                config,
                baseline,
                _optimiser(config, baseline),
                data,
                reward_index,
                None,
                [
                    *filter(None, [baseline_best]),
                    ProgressBar(enabled=progress),
                    MetricsLog(metrics_path),
                    *callbacks,
                ],
                device,
            )
            if start is not None and baseline_best is not None:
                value, margin = engine.start_candidate()
                baseline_best.offer_start(value, engine, margin)
            engine.run()
            seconds["baseline"] = time.perf_counter() - started
            atomic_torch_save({"config": config.to_dict(), "predictor": baseline.state_dict()}, baseline_path)

    predictor, controller = build_networks(config)
    if start is not None:
        predictor.load_state_dict(start)
    predictor, controller = predictor.to(device), controller.to(device)
    learner = build_learner(config, controller)
    # BestModel before the checkpointer, so a checkpoint holds the best including its own episode.
    best = best_model(config, start=config.recipe.warmup_episodes)
    payload = checkpoint_payload(config, best)
    checkpointer = Checkpointer(checkpoint_path, config.checkpoint_every, payload)
    engine = AmenabilityEngine(
        config,
        predictor,
        _optimiser(config, predictor),
        data,
        reward_index,
        learner,
        [
            *filter(None, [best]),
            ProgressBar(enabled=progress),
            MetricsLog(metrics_path),
            checkpointer,
            *callbacks,
        ],
        device,
    )
    if saved is not None:
        engine.load_state_dict(saved["engine"])
        if best is not None and saved.get("best") is not None:
            best.load_state_dict(saved["best"])
        log.info("resumed %s at episode %d", run_dir, engine.episode)
    elif start is not None and best is not None:
        # The converged stage is the first candidate: Algorithm 1 keeps a predictor only if it beats it beyond
        # the validation check's sampling error.
        value, margin = engine.start_candidate()
        best.offer_start(value, engine, margin)
    started = time.perf_counter()
    engine.run()
    seconds["amenability"] = time.perf_counter() - started
    atomic_torch_save(
        {
            "config": config.to_dict(),
            "controller": controller.state_dict(),
            "predictor": predictor.state_dict(),
        },
        run_dir / MODEL_FILE,
    )
    verdict = compute_verdict(config, controller, predictor, baseline, data.train, data.val, device)
    write_verdict(verdict.to_dict(), run_dir)
    log.info("%s", verdict.summary())
    return RunResult(
        run_dir,
        config,
        controller.cpu(),
        predictor.cpu(),
        None if baseline is None else baseline.cpu(),
        seconds,
        verdict,
    )


def load_network(path: Path, key: str) -> nn.Module:
    """Rebuild the `key` network ("predictor" or "controller") of a model/baseline file from its own config."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    config = TrainConfig.from_dict(blob["config"])
    network: nn.Module = build_predictor(config) if key == "predictor" else build_controller(config)
    network.load_state_dict(blob[key])
    return network.eval()


def load_run(run_dir: Path | str) -> tuple[TrainConfig, Controller, nn.Module, nn.Module | None]:
    """(config, controller, predictor, baseline or None) of a finished run folder."""
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file():
        raise RunError(MSG_NOT_A_RUN.format(run=run_dir, file=MODEL_FILE))
    blob = torch.load(model_path, map_location="cpu", weights_only=False)
    config = TrainConfig.from_dict(blob["config"])
    controller = build_controller(config)
    controller.load_state_dict(blob["controller"])
    predictor = build_predictor(config)
    predictor.load_state_dict(blob["predictor"])
    baseline_path = run_dir / BASELINE_FILE
    baseline = load_network(baseline_path, "predictor") if baseline_path.is_file() else None
    return config, controller.eval(), predictor.eval(), baseline


def write_predictor_backbone(run_dir: Path | str, path: Path | str) -> Path:
    """The backbone of a finished run's classifier as a backbone file (so a later run starts from it).

    The RL trainer reads initial weights only as backbone files; this is how a finished run becomes one.
    """
    run_dir = Path(run_dir)
    config, _, predictor, _ = load_run(run_dir)
    if not isinstance(predictor, FrameClassifier):
        raise RunError(MSG_NO_PREDICTOR_BACKBONE.format(run=run_dir, task=config.task))
    meta = {"source": "run", "run": str(run_dir), "seed": config.seed, "frame_spec": config.frame.to_dict()}
    return save_backbone(path, predictor.backbone.state_dict(), config.backbone, meta)
