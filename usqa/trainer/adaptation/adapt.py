"""Adapting a published version to a new probe or site with N labelled frames (`usqa adapt`, issue #17).

A version published with `weights.npz` (usqa.trainer.release.weights_file) rebuilds its predictor and controller from the
manifest's `training_config`; the site's train split gives N frames drawn by a seeded, class-stratified draw
(`stratified_draw`). Three modes:

- `probe`: a new, seeded head on the predictor's frozen features (batch-norm statistics frozen too);
- `finetune`: the whole predictor, from the published weights;
- `controller`: `finetune`, then Algorithm 1 continued from the published controller and the adapted
  predictor on the N frames (the reward on the site's validation split, as in every run), so the
  amenability score follows the new data.

The output is an ordinary run folder (config.json, model.pt, data.json) that `usqa export` publishes, plus
`adapt.json` (source, mode, labelled frames, wall time, holdout metrics).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from usqa.contracts.adaptation import AdaptMode, ModelRef, parse_model_ref
from usqa.contracts.training import TrainConfig
from usqa.service.registry import ModelRegistry, RegistryError, explain
from usqa.trainer.adaptation.metrics import holdout_metrics
from usqa.trainer.amenability.engine import AmenabilityEngine, predictor_loss
from usqa.trainer.amenability.run import build_learner
from usqa.trainer.amenability.run_folder import (
    ADAPT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    record_data_dir,
)
from usqa.trainer.data import BatchSampler, DataError, SplitTensors, TaskData, load_task_data, reward_indices
from usqa.trainer.engine.base import Callback
from usqa.trainer.engine.callbacks import MetricsLog, atomic_torch_save
from usqa.trainer.engine.device import resolve_device
from usqa.trainer.networks import (
    Controller,
    FrameClassifier,
    UNet,
    build_controller,
    build_predictor,
    seeded_init,
)
from usqa.trainer.recipe.config_files import write_config
from usqa.trainer.release.weights_file import WEIGHTS_FILE, load_weights, read_weights

MSG_NO_WEIGHTS = (
    "{ref} has no {file} (it was published before versions carried their torch weights): re-export its "
    "training run with `usqa export` and adapt the new version"
)
MSG_TOO_MANY_LABELS = "{n} labelled frames asked for, but the train split of {data} has only {available}"
MSG_FEW_LABELS = "the label budget must be at least 1 frame, got {n}"
MSG_TASK = "{ref} is a {have} model; it cannot be adapted to task {want!r}"
MSG_CLASSES = "the data set has {found} classes but {ref} predicts {have}"


class AdaptError(ValueError):
    """A source version, data set or budget that cannot be adapted (a user mistake: the CLI exits 2)."""


@dataclass(frozen=True)
class AdaptOptions:
    mode: AdaptMode = "finetune"
    labels: int = 64
    seed: int = 0
    # Supervised predictor steps (probe, finetune, and the first half of controller).
    steps: int = 100
    batch_size: int = 32
    # None: 1e-2 for a probe (a linear head learns fast), 1e-3 when the whole predictor moves.
    learning_rate: float | None = None
    # Algorithm 1 episodes in `controller` mode; None: the source version's own number.
    episodes: int | None = None
    # The task the caller expects; None accepts the version's.
    task: str | None = None
    # Where the adaptation trains: "cpu", "cuda[:N]" or "auto" (usqa.trainer.engine.device; an absent CUDA is an
    # error, never a silent fall-back). The networks come back on the CPU either way.
    device: str = "cpu"


@dataclass
class Start:
    """Where an adaptation starts: a config and the networks it built (a published version, or a study's)."""

    config: TrainConfig
    predictor: nn.Module
    controller: Controller
    source: str


@dataclass
class AdaptResult:
    config: TrainConfig
    predictor: nn.Module
    controller: Controller
    labelled: np.ndarray  # indices into the train split
    seconds: float
    metrics: dict[str, Any]


def stratified_draw(strata: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` frames, spread as evenly over the strata as their sizes allow (seeded)."""
    if n < 1:
        raise AdaptError(MSG_FEW_LABELS.format(n=n))
    if n > len(strata):
        raise AdaptError(MSG_TOO_MANY_LABELS.format(n=n, data="the data set", available=len(strata)))
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(np.flatnonzero(strata == value)) for value in np.unique(strata)]
    take = [0] * len(groups)
    remaining = n
    while remaining:
        open_ = [i for i, g in enumerate(groups) if take[i] < len(g)]
        share = remaining // len(open_)
        if share == 0:  # fewer frames left than open strata: a seeded choice of which strata get one more
            for i in rng.permutation(open_)[:remaining]:
                take[int(i)] += 1
            break
        for i in open_:
            extra = min(share, len(groups[i]) - take[i])
            take[i] += extra
            remaining -= extra
    return np.sort(np.concatenate([g[:k] for g, k in zip(groups, take, strict=True)]))


def strata_of(split: SplitTensors, task: str) -> np.ndarray:
    """What the draw balances: the class for classification, the amenability label for segmentation."""
    return split.targets.numpy() if task == "classify" else split.amenable.astype(np.int64)


def subset(split: SplitTensors, index: np.ndarray) -> SplitTensors:
    rows = torch.from_numpy(np.asarray(index, np.int64))
    return SplitTensors(
        frames=split.frames[rows],
        targets=split.targets[rows],
        amenable=split.amenable[index],
        subjects=[split.subjects[i] for i in index],
        names=[split.names[i] for i in index],
    )


def load_version_start(registry: ModelRegistry, ref: ModelRef) -> Start:
    """The published version's config and networks, rebuilt from `weights.npz` (no ONNX involved)."""
    try:
        version = registry.load(ref.name, ref.ref)  # verifies every file's sha256, the weights included
    except RegistryError as exc:
        raise AdaptError(explain(exc)) from exc
    source = f"{ref.name}:{version.version}"
    if WEIGHTS_FILE not in version.manifest.files:
        raise AdaptError(MSG_NO_WEIGHTS.format(ref=source, file=WEIGHTS_FILE))
    try:
        config = TrainConfig.from_dict(version.manifest.training_config)
        states = read_weights(version.path / WEIGHTS_FILE)
        predictor = load_weights(build_predictor(config), states["predictor"])
        controller = load_weights(build_controller(config), states["controller"])
    except (ValueError, TypeError) as exc:  # WeightsFileError is a ValueError
        raise AdaptError(f"{source}: {exc}") from exc
    assert isinstance(controller, Controller)
    # The weights already hold whatever backbone the source started from; its file need not exist here.
    return Start(replace(config, backbone_checkpoint=None), predictor, controller, source)


def new_head(predictor: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """Replace the predictor's output layer by a freshly initialised one (seeded); returns it."""
    with seeded_init(seed):
        if isinstance(predictor, FrameClassifier):
            predictor.head = nn.Linear(predictor.backbone.out_features, num_classes)
            return predictor.head
        if isinstance(predictor, UNet):
            predictor.out = nn.Conv2d(predictor.config.widths[0], num_classes, 1)
            return predictor.out
    raise AdaptError(f"{type(predictor).__name__} has no head to probe")


def fit_predictor(
    predictor: nn.Module,
    train: SplitTensors,
    config: TrainConfig,
    options: AdaptOptions,
    probe: bool,
    device: torch.device,
) -> None:
    """Supervised steps on the labelled frames: the head only (frozen features) or the whole predictor."""
    parameters: list[nn.Parameter]
    if probe:
        head = new_head(predictor, config.num_classes, options.seed + 11)
        for p in predictor.parameters():
            p.requires_grad_(False)
        parameters = list(head.parameters())
        for p in parameters:
            p.requires_grad_(True)
    else:
        parameters = list(predictor.parameters())
    predictor.to(device)
    frames, targets = train.frames.to(device), train.targets.to(device)  # N frames: a few MB at most
    lr = options.learning_rate or (1e-2 if probe else 1e-3)
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, options.steps))
    sampler = BatchSampler(len(train), options.batch_size, seed=options.seed + 12)
    # Frozen features are a fixed function: batch-norm keeps the source's statistics (eval mode).
    predictor.eval() if probe else predictor.train()
    for _ in range(options.steps):
        batch = sampler.next()
        loss = predictor_loss(predictor(frames[batch]), targets[batch], config.predictor_loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    for p in predictor.parameters():
        p.requires_grad_(True)
    predictor.eval()


def adapt_networks(
    start: Start,
    data: TaskData,
    options: AdaptOptions,
    callbacks: Sequence[Callback] = (),
    labelled: np.ndarray | None = None,
) -> AdaptResult:
    """The adaptation itself on loaded data (the study calls this with its own starting points)."""
    config = replace(start.config, seed=options.seed, device=options.device)
    device = resolve_device(options.device)
    if options.episodes is not None:
        config = replace(config, episodes=options.episodes)
    if labelled is None:
        labelled = stratified_draw(strata_of(data.train, config.task), options.labels, options.seed)
    train = subset(data.train, labelled)
    predictor, controller = copy.deepcopy(start.predictor), copy.deepcopy(start.controller)
    started = time.perf_counter()
    fit_predictor(predictor, train, config, options, probe=options.mode == "probe", device=device)
    if options.mode == "controller":
        few = TaskData(train, data.val, data.holdout, data.num_classes)
        optimiser = torch.optim.AdamW(
            predictor.parameters(), lr=config.predictor_learning_rate, weight_decay=config.weight_decay
        )
        engine = AmenabilityEngine(
            config,
            predictor,
            optimiser,
            few,
            reward_indices(data.val, config),
            build_learner(config, controller),
            callbacks,
            device,
        )
        engine.run()
    predictor.cpu(), controller.cpu()
    seconds = time.perf_counter() - started
    predictor.eval(), controller.eval()
    metrics = holdout_metrics(config.task, predictor, controller, data.holdout)
    return AdaptResult(config, predictor, controller, labelled, seconds, metrics)


def load_site_data(start: Start, data_dir: Path | str, options: AdaptOptions) -> TaskData:
    """The site's data at the version's frame spec, refused when the task or the classes do not fit."""
    config = start.config
    if options.task is not None and options.task != config.task:
        raise AdaptError(MSG_TASK.format(ref=start.source, have=config.task, want=options.task))
    try:
        data = load_task_data(data_dir, config)
    except DataError as exc:
        raise AdaptError(f"{start.source} on {data_dir}: {exc}") from exc
    if config.task == "classify" and data.num_classes > config.num_classes:
        raise AdaptError(
            MSG_CLASSES.format(found=data.num_classes, ref=start.source, have=config.num_classes)
        )
    if options.labels > len(data.train):
        raise AdaptError(
            MSG_TOO_MANY_LABELS.format(n=options.labels, data=data_dir, available=len(data.train))
        )
    return data


def adapt(
    source: str,
    registry: ModelRegistry,
    data_dir: Path | str,
    out_dir: Path | str,
    options: AdaptOptions = AdaptOptions(),
    callbacks: Sequence[Callback] = (),
) -> AdaptResult:
    """Adapt the published version `source` (NAME[:VERSION|@ALIAS]) to `data_dir`; write a run to `out_dir`.

    Raises `AdaptError` for an unknown version, one without weights, a task or class mismatch, or a label
    budget the train split cannot give.
    """
    try:
        ref = parse_model_ref(source)
    except ValueError as exc:
        raise AdaptError(str(exc)) from exc
    start = load_version_start(registry, ref)
    data = load_site_data(start, data_dir, options)
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_log: list[Callback] = [MetricsLog(run_dir / METRICS_FILE)] if options.mode == "controller" else []
    result = adapt_networks(start, data, options, [*metrics_log, *callbacks])
    write_config(result.config, run_dir / CONFIG_FILE)
    record_data_dir(run_dir, Path(data_dir))
    atomic_torch_save(
        {
            "config": result.config.to_dict(),
            "controller": result.controller.state_dict(),
            "predictor": result.predictor.state_dict(),
        },
        run_dir / MODEL_FILE,
    )
    record = {
        "source": start.source,
        "options": asdict(options),
        "labelled_frames": [data.train.names[i] for i in result.labelled],
        "seconds": round(result.seconds, 3),
        "holdout": result.metrics,
    }
    (run_dir / ADAPT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return result
