"""The runs of the heated-backbone analysis: data, the models of tables (a)/(b) per seed, the pairs of (c)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from usqa.contracts.frames import FrameSpec
from usqa.service.simulator import write_dataset
from usqa.trainer.engine.callbacks import History
from usqa.trainer.heating.config import (
    Augment,
    ClassSource,
    FinetuneConfig,
    HeatConfig,
    HeatLoss,
    MaskConfig,
    finetune_preset,
    heat_preset,
    scaled_blur,
)
from usqa.trainer.heating.data import ClassData
from usqa.trainer.heating.evaluate import evaluate_classifier
from usqa.trainer.heating.finetune import finetune
from usqa.trainer.heating.heat import HeatingEngine, heat, masking_transform
from usqa.trainer.heating.run_folder import BACKBONE_FILE

log = logging.getLogger("experiments.heating_analysis")


# The heterogeneous pre-training set: all three presets, 60 subjects; seed 1 so that no frame is one of the
# prostate set's (seed 0, the RL benchmark's data: experiments/results/benchmark.py DATA_SETTINGS).
HEAT_DATA: dict[str, Any] = {"frames": 3000, "subjects": 60, "seed": 1, "size": 128, "preset": "all"}
TASK_DATA: dict[str, Any] = {
    "frames": 3000,
    "subjects": 60,
    "seed": 0,
    "size": 128,
    "preset": "transrectal_prostate",
}

# The scale of the RL benchmark (experiments/results/benchmark.py BENCH_OVERRIDES): the `default` networks on 64 px frames,
# 600 predictor steps (60 episodes x 10 mini-batches of 32), reward on 128 validation frames.
FRAME_SIZE = 64
RL_OVERRIDES: dict[str, Any] = {
    "frame": {"size": FRAME_SIZE},
    "episodes": 60,
    "steps_per_episode": 10,
    "reward_frames": 128,
}

# The classes of the pre-training set: preset x organ-visible label (6). Presets alone are told apart by the
# field-of-view geometry within a few dozen steps (measured: see the doc), leaving nothing to pre-train.
CLASSES: ClassSource = "preset_label"
HEAT_SHARE = 0.75  # heating steps / (heating + fine-tuning) steps, against the same total for every row


def simulate(out: Path, settings: dict[str, Any]) -> Path:
    """A simulated data set, made once and reused while its settings match."""
    stamp = out / "heating_settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return out
    write_dataset(out, workers=2, force=True, **settings)
    stamp.write_text(json.dumps(settings, indent=2) + "\n")
    return out


def heat_config(steps: int, seed: int, loss: HeatLoss = "paper") -> HeatConfig:
    kernel, sigma = scaled_blur(FRAME_SIZE)
    mask = MaskConfig(grid=FRAME_SIZE // 2, blur_kernel=kernel, blur_sigma=sigma)
    base = heat_preset("default")
    return replace(
        base,
        name="analysis",
        frame=FrameSpec(size=FRAME_SIZE),
        steps=steps,
        seed=seed,
        mask=mask,
        classes=CLASSES,
        loss=loss,
    )


def supervised_config(steps: int, seed: int, augment: Augment = "none") -> FinetuneConfig:
    base = finetune_preset("default")
    return replace(
        base,
        name="analysis",
        frame=FrameSpec(size=FRAME_SIZE),
        steps=steps,
        seed=seed,
        classes=CLASSES,
        augment=augment,
    )


def evaluate_split(model: torch.nn.Module, data: ClassData, transform: Any = None) -> dict[str, float]:
    return evaluate_classifier(model, data.holdout.frames, data.holdout.labels, transform)


def run_seed(data: ClassData, out: Path, steps: int, seed: int, variant: bool, quiet: bool) -> dict[str, Any]:
    """Every model of tables (a) and (b) for one seed; returns metrics and the heating histories."""
    heat_steps = round(steps * HEAT_SHARE)
    rows: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    histories: dict[str, list[dict[str, float]]] = {}

    def timed(name: str, fn: Any) -> Any:
        started = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - started
        log.info("seed %d: %s in %.0f s", seed, name, seconds[name])
        return result

    for augment, name in (("none", "normal"), ("cutmix", "cutmix"), ("randaugment", "randaugment")):
        engine = timed(
            name,
            lambda a=augment, n=name: finetune(
                supervised_config(steps, seed, a), data, out / n, progress=not quiet
            ),
        )
        rows[name] = evaluate_split(engine.classifier, data)
    for loss in ("paper", "baseline") if variant else ("paper",):
        tag = "heated" if loss == "paper" else "heated_baseline"
        history = History()
        config = heat_config(heat_steps, seed, loss)
        heated: HeatingEngine = timed(
            tag, lambda c=config, t=tag, h=history: heat(c, data, out / t, progress=not quiet, callbacks=[h])
        )
        histories[tag] = history.logs
        rows[f"{tag}/clean"] = evaluate_split(heated.classifier, data)
        rows[f"{tag}/masked"] = evaluate_split(
            heated.classifier, data, masking_transform(heated, config, seed + 100)
        )
        rows[f"{tag}/masked_dataset"] = evaluate_split(
            heated.classifier, data, masking_transform(heated, config, seed + 100, level="dataset")
        )
        tuned = timed(
            f"{tag}_ft",
            lambda t=tag: finetune(
                supervised_config(steps - heat_steps, seed),
                data,
                out / f"{t}_ft",
                backbone=out / t / BACKBONE_FILE,
                progress=not quiet,
            ),
        )
        rows[f"{tag}/finetuned"] = evaluate_split(tuned.classifier, data)
    return {"seed": seed, "rows": rows, "seconds": seconds, "histories": histories}


def run_amenability(
    out: Path,
    episodes: int,
    task_dir: Path,
    backbones: dict[str, Path | None],
    reward: str,
    algo: str,
    seed: int,
    quiet: bool,
    reuse: bool = False,
) -> dict[str, Any]:
    """Table (c): the RL trainer's pair with each initial backbone, same budget, evaluated at the operating point."""
    from usqa.contracts.training import apply_overrides
    from usqa.trainer.amenability.evaluate import evaluate
    from usqa.trainer.amenability.run import train
    from usqa.trainer.amenability.run_folder import EVAL_DIR
    from usqa.trainer.data import load_task_data
    from usqa.trainer.recipe.presets import preset

    base = preset("default", "classify", reward, algo)  # type: ignore[arg-type]
    base = replace(
        apply_overrides(base, {**RL_OVERRIDES, "episodes": episodes}),
        name="heating-bench",
        seed=seed,
    )
    task_data = load_task_data(task_dir, base)
    results: dict[str, Any] = {}
    first: Path | None = None
    for name, backbone in backbones.items():
        config = replace(
            base,
            backbone_checkpoint=None if backbone is None else str(backbone),
            train_baseline=first is None,
        )
        run_dir = out / f"{name}-{reward}-{algo}-{episodes}"
        cache = run_dir / "cell.json"
        if reuse and cache.is_file():
            results[name] = json.loads(cache.read_text())
            first = first or run_dir
            continue
        started = time.perf_counter()
        train(config, task_dir, run_dir, data=task_data, progress=not quiet)
        first = first or run_dir
        report = evaluate(run_dir, task_dir, run_dir / EVAL_DIR, baseline_run=first, seed=seed, plots=False)
        results[name] = {"report": report, "seconds": time.perf_counter() - started}
        cache.write_text(json.dumps(results[name]) + "\n")
        log.info("amenability pair from %s backbone in %.0f s", name, results[name]["seconds"])
    return results


def dataset_concentration(run: Path) -> np.ndarray:
    """exp(alpha_d) + exp(beta_d) per cell of a heating run's final dataset-level parameters."""
    from usqa.trainer.heating.heat import load_heat_checkpoint
    from usqa.trainer.heating.run_folder import CHECKPOINT_FILE

    policy = load_heat_checkpoint(run / CHECKPOINT_FILE)["engine"]["networks"]["policy"]
    return (policy["dataset_alpha"].exp() + policy["dataset_beta"].exp()).numpy()
