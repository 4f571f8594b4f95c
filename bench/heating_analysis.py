"""The heated-backbone analysis (seed 000) on simulated data: `python -m bench.heating_analysis`.

(a) the analogue of the paper's Table 1: normal model, heated model on clean and on masked frames, fine-tuned
heated model; (b) of Table 2: baseline vs heated + fine-tuned vs CutMix vs RandAugment, same step budget;
(c) the amenability pair of the RL trainer (seed 004) from scratch, from the heated backbone and from the
normal model's backbone, same budget, at the paper's operating point; (d) a figure like the paper's Figure 6.

Writes docs/heating.md (the block between the generated markers; the prose around it is kept),
docs/img/heating_masks.png and docs/img/heating_training.png. Runs and data go to runs/heating.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from contracts.frames import FrameSpec
from service.datasets import load_dataset
from service.simulator import write_dataset
from trainer.engine.callbacks import History
from trainer.heating.config import (
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
from trainer.heating.data import ClassData, load_class_data
from trainer.heating.evaluate import evaluate_classifier
from trainer.heating.finetune import finetune
from trainer.heating.heat import HeatingEngine, heat, masking_transform, policy_masks
from trainer.heating.masks import NoiseMaskSampler, apply_mask

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger("bench.heating_analysis")

# The heterogeneous pre-training set: all three presets, 60 subjects; seed 1 so that no frame is one of the
# prostate set's (seed 0, the RL benchmark's data: bench/results.py DATA_SETTINGS).
HEAT_DATA: dict[str, Any] = {"frames": 3000, "subjects": 60, "seed": 1, "size": 128, "preset": "all"}
TASK_DATA: dict[str, Any] = {
    "frames": 3000,
    "subjects": 60,
    "seed": 0,
    "size": 128,
    "preset": "transrectal_prostate",
}
# The scale of the RL benchmark (bench/results.py BENCH_OVERRIDES): the `default` networks on 64 px frames,
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
MARK_BEGIN, MARK_END = "<!-- heating-analysis:begin -->", "<!-- heating-analysis:end -->"


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
                backbone=out / t / "backbone.pt",
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
    from contracts.training import TrainConfig, preset
    from trainer.data import load_task_data
    from trainer.evaluate import evaluate
    from trainer.run import train

    base = preset("default", "classify", reward, algo)  # type: ignore[arg-type]
    base = replace(
        TrainConfig.from_dict({**base.to_dict(), **RL_OVERRIDES, "episodes": episodes}),
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
        report = evaluate(run_dir, task_dir, run_dir / "eval", baseline_run=first, seed=seed, plots=False)
        results[name] = {"report": report, "seconds": time.perf_counter() - started}
        cache.write_text(json.dumps(results[name]) + "\n")
        log.info("amenability pair from %s backbone in %.0f s", name, results[name]["seconds"])
    return results


def mask_figure(
    data: ClassData, clean: set[str], heated: HeatingEngine, config: HeatConfig, path: Path
) -> None:
    """(d) Figure 6: a holdout frame per preset with its noise mask and masked frame, and their histograms."""
    presets = sorted({n.split("/")[0] for n in data.class_names})
    picks: list[int] = []
    for prefix in presets:
        wanted = data.class_names.index(f"{prefix}/label 1")
        candidates = [
            i for i in np.flatnonzero(data.holdout.labels.numpy() == wanted) if data.holdout.names[i] in clean
        ]
        picks.append(int(candidates[len(candidates) // 2]))
    frames = data.holdout.frames[picks]
    sampler = NoiseMaskSampler(config.mask, config.frame.size, seed=7)
    mask = policy_masks(heated.policy, sampler, frames)
    masked = apply_mask(frames, mask, config.mask.space, config.backbone.pixel_mean)
    fan = frames > 0
    fig, axes = plt.subplots(4, len(picks), figsize=(3.2 * len(picks), 11.5))
    for j, name in enumerate(presets):
        original, m, out = frames[j, 0].float(), mask[j, 0], masked[j, 0]
        for row, (image, title, vmax) in enumerate(
            ((original, name.replace("_", " "), 255.0), (m, "noise mask", 1.0), (out, "masked frame", 255.0))
        ):
            axes[row, j].imshow(image.numpy(), cmap="gray", vmin=0, vmax=vmax)
            axes[row, j].set_title(title, fontsize=9)
            axes[row, j].axis("off")
        inside = fan[j, 0]
        ax = axes[3, j]
        bins = np.linspace(0, 1, 41)
        ax.hist(original[inside].numpy() / 255, bins, alpha=0.55, color="tab:blue", label="original / 255")
        ax.hist(out[inside].numpy() / 255, bins, alpha=0.55, color="tab:red", label="masked / 255")
        ax.hist(m[inside].numpy(), bins, alpha=0.55, color="tab:green", label="noise mask")
        ax.set_xlabel("intensity (inside the field of view)", fontsize=8)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Policy noise masks on holdout frames (heated model, seed 0)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_figure(
    histories: dict[str, list[dict[str, float]]], concentrations: dict[str, np.ndarray], path: Path
) -> None:
    """Heating curves of both losses, and the final dataset-level Beta concentration of every grid cell."""
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    labels = {"heated": "eq. 8 (paper)", "heated_baseline": "eq. 8 + moving-average baseline"}
    for (tag, logs), colour in zip(histories.items(), ("tab:blue", "tab:orange"), strict=False):
        window = max(1, min(25, len(logs)))
        ce = np.convolve([h["cross_entropy"] for h in logs], np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window, len(logs) + 1), ce, color=colour, label=labels[tag])
        steps = [h["step"] for h in logs]
        axes[1].plot(steps, [h["mask_mean"] for h in logs], color=colour, label=f"{labels[tag]}: mean")
        axes[1].plot(steps, [h["mask_std"] for h in logs], "--", color=colour, label=f"{labels[tag]}: std")
    for (tag, values), colour in zip(concentrations.items(), ("tab:blue", "tab:orange"), strict=False):
        bins = np.logspace(np.log10(max(values.min(), 1e-2)), np.log10(values.max() + 1), 50)
        axes[2].hist(values, bins, color=colour, alpha=0.6, label=labels[tag])
    axes[0].set_title("heating: cross-entropy on masked frames (25-step mean)", fontsize=9)
    axes[1].set_title("noise mask: mean and std over pixels", fontsize=9)
    axes[2].set_title("after heating: exp(alpha_d) + exp(beta_d) per grid cell", fontsize=9)
    axes[2].set_xscale("log")
    axes[0].set_xlabel("step", fontsize=8)
    axes[1].set_xlabel("step", fontsize=8)
    axes[2].set_xlabel(
        "Beta concentration (2 = uniform Beta(1, 1); large = nearly deterministic)", fontsize=8
    )
    for ax in axes:
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dataset_concentration(run: Path) -> np.ndarray:
    """exp(alpha_d) + exp(beta_d) per cell of a heating run's final dataset-level parameters."""
    from trainer.heating.heat import CHECKPOINT_FILE, load_heat_checkpoint

    policy = load_heat_checkpoint(run / CHECKPOINT_FILE)["engine"]["networks"]["policy"]
    return (policy["dataset_alpha"].exp() + policy["dataset_beta"].exp()).numpy()


def _cell(values: list[float]) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _metric_rows(
    seeds: list[dict[str, Any]], rows: list[tuple[str, str]], metrics: tuple[str, ...]
) -> list[str]:
    header = "| model | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |"
    lines = [header, "|" + " --- |" * (len(metrics) + 1)]
    for key, title in rows:
        if key not in seeds[0]["rows"]:
            continue
        cells = [_cell([s["rows"][key][m] for s in seeds]) for m in metrics]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


METRIC_TITLES = {
    "entropy": "Entropy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "auroc": "AUROC",
    "balanced_accuracy": "B. Acc.",
}
TABLE_A = (
    ("normal", "(Normal) clean frames"),
    ("cutmix", "(CutMix) clean frames"),
    ("heated/clean", "(Heated) clean frames"),
    ("heated/masked", "(Heated) masked frames, policy masks"),
    ("heated/masked_dataset", "(Heated) masked frames, dataset-level masks"),
    ("heated/finetuned", "(Fine-tuned heated) clean frames"),
)
TABLE_B = (
    ("normal", "Baseline (no augmentation)"),
    ("heated/finetuned", "Heated (eq. 8) → fine-tuned"),
    ("heated_baseline/finetuned", "Heated (eq. 8 + moving-average baseline) → fine-tuned"),
    ("cutmix", "CutMix"),
    ("randaugment", "RandAugment (2 ops, magnitude 9)"),
)


def amenability_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| initial backbone of predictor and controller | acc., all frames | acc., controller rejects 5 % "
        "| acc., random 5 % rejected | kappa (controller vs human label) | t-test vs non-selective baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    titles = {
        "scratch": "none (random init)",
        "heated": "heated backbone",
        "normal": "normally pre-trained backbone",
    }
    baseline_acc = None
    for name, result in results.items():
        r = result["report"]
        op = r["rejection_ratios"].index(r["operating_point"])
        controller, random = r["curves"]["controller"], r["curves"]["random"]
        if "baseline" in r["curves"]:
            baseline_acc = r["curves"]["baseline"]["point"][0]
        t = r["ttest"]
        ttest = "n/a" if t is None else f"Δ {t['mean_difference']:+.4f}, p = {t['p']:.3g}"
        lines.append(
            f"| {titles.get(name, name)} | {controller['point'][0]:.4f} | {controller['point'][op]:.4f} "
            f"(bootstrap {controller['mean'][op]:.4f} ± {controller['std'][op]:.4f}) | {random['point'][op]:.4f} "
            f"| {r['kappa']['controller']:.3f} | {ttest} |"
        )
    if baseline_acc is not None:
        lines.append(
            f"| *non-selective baseline predictor (random init, no controller)* | {baseline_acc:.4f} | | | | |"
        )
    return lines


def write_docs(summary: dict[str, Any], docs: Path) -> Path:
    seeds = summary["seeds"]
    n = len(seeds)
    spread = f"mean ± std over {n} seeds" if n > 1 else "one seed"
    block = [
        MARK_BEGIN,
        "<!-- generated by `python -m bench.heating_analysis`; edits inside this block are overwritten -->",
        "",
        f"Measured on {summary['date']}: {summary['compute_seconds'] / 60:.1f} min of training and evaluation "
        f"on 2 shared CPU cores "
        f"(torch {torch.__version__}, 1 thread, `nice`). Data: {summary['heat_data']}. Budget per row of "
        f"(a)/(b): {summary['steps']} optimiser steps of 32 frames ({round(summary['steps'] * HEAT_SHARE)} heating "
        f"+ {summary['steps'] - round(summary['steps'] * HEAT_SHARE)} fine-tuning for the heated rows); the `default` "
        f"backbone on {FRAME_SIZE} px frames; {len(summary['class_names'])} classes "
        f"(preset × organ label); holdout: {summary['holdout_frames']} frames of "
        f"{summary['holdout_subjects']} subjects; {spread}.",
        "",
        "### (a) Entropy and performance of normal, heated and fine-tuned heated models (Table 1)",
        "",
        *_metric_rows(seeds, list(TABLE_A), tuple(METRIC_TITLES)),
        "",
        "### (b) Heated + fine-tuned against augmentations, same budget (Table 2)",
        "",
        *_metric_rows(seeds, list(TABLE_B), tuple(m for m in METRIC_TITLES if m != "entropy")),
        "",
    ]
    if summary.get("amenability"):
        a = summary["amenability"]
        block += [
            f"### (c) The amenability pair (seed 004) with and without the heated backbone, {a['reward']} reward, "
            f"{a['algo']}",
            "",
            f"Data: {a['data']}. Budget of every row: the RL benchmark's (bench/results.py): {a['budget']}. "
            "The heated and the normal backbone are the seed-0 models of (a)/(b); they initialise both the "
            "predictor and the controller. Accuracy on the holdout split at the paper's operating point "
            "(5 % of frames rejected by the controller); bootstrap over subjects (200 resamples).",
            "",
            *amenability_table(a["results"]),
            "",
        ]
    else:
        block += ["### (c) The amenability pair", "", "Not run (`--skip-amenability`).", ""]
    block += [
        "### (d) Noise masks and intensity histograms (Figure 6)",
        "",
        "![masks](img/heating_masks.png)",
        "",
        "![training](img/heating_training.png)",
        "",
        "Seconds per run (seed 0): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seeds[0]["seconds"].items())
        + ".",
        "",
        MARK_END,
    ]
    path = docs / "heating.md"
    text = (
        path.read_text(encoding="utf-8")
        if path.is_file()
        else f"# The heated backbone\n\n{MARK_BEGIN}\n{MARK_END}\n"
    )
    head, _, rest = text.partition(MARK_BEGIN)
    _, _, tail = rest.partition(MARK_END)
    path.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heating_analysis", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/heating"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps of every row of (a)/(b)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--no-variant", action="store_true", help="skip the moving-average baseline variant")
    parser.add_argument("--skip-amenability", action="store_true", help="skip table (c)")
    parser.add_argument("--reward", default="weighted", help="reward of the amenability pair in (c)")
    parser.add_argument("--algo", default="reinforce", help="controller learner in (c)")
    parser.add_argument("--rl-episodes", type=int, default=RL_OVERRIDES["episodes"], help="episodes in (c)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep finished seeds and runs of an earlier call"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    heat_dir = simulate(args.out / "data" / "multi_preset", HEAT_DATA)
    data = load_class_data([heat_dir], heat_config(1, 0).frame, CLASSES)
    seeds = []
    for seed in args.seeds:
        cache = args.out / f"seed{seed}" / "seed.json"
        key = {"steps": args.steps, "variant": not args.no_variant}
        if args.reuse and cache.is_file() and json.loads(cache.read_text())["key"] == key:
            seeds.append(json.loads(cache.read_text())["result"])
            continue
        seeds.append(
            run_seed(data, args.out / f"seed{seed}", args.steps, seed, not args.no_variant, args.quiet)
        )
        cache.write_text(json.dumps({"key": key, "result": seeds[-1]}) + "\n")
    seed0 = args.out / f"seed{args.seeds[0]}"
    from trainer.heating.heat import CHECKPOINT_FILE, build_heating_engine, load_heat_checkpoint

    config = heat_config(round(args.steps * HEAT_SHARE), args.seeds[0])
    heated = build_heating_engine(config, data.num_classes, data.train, torch.device("cpu"))
    heated.load_state_dict(load_heat_checkpoint(seed0 / "heated" / CHECKPOINT_FILE)["engine"])
    records = load_dataset(heat_dir, check_images=False).records
    clean = {r.frame for r in records if r.extra.get("degradation") == "none"}
    mask_figure(data, clean, heated, config, args.docs / "img" / "heating_masks.png")
    concentrations = {tag: dataset_concentration(seed0 / tag) for tag in seeds[0]["histories"]}
    training_figure(seeds[0]["histories"], concentrations, args.docs / "img" / "heating_training.png")
    amenability = None
    if not args.skip_amenability:
        task_dir = simulate(args.out / "data" / "prostate", TASK_DATA)
        backbones: dict[str, Path | None] = {
            "scratch": None,
            "heated": seed0 / "heated" / "backbone.pt",
            "normal": seed0 / "normal" / "backbone.pt",
        }
        results = run_amenability(
            args.out / "amenability",
            args.rl_episodes,
            task_dir,
            backbones,
            args.reward,
            args.algo,
            0,
            args.quiet,
            args.reuse,
        )
        amenability = {
            "reward": args.reward,
            "algo": args.algo,
            "data": ", ".join(f"{k} {v}" for k, v in TASK_DATA.items()),
            "budget": ", ".join(f"{k} {v}" for k, v in {**RL_OVERRIDES, "episodes": args.rl_episodes}.items())
            + ", `default` networks",
            "results": results,
        }
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.perf_counter() - started,
        # the runs' own wall time, also when --reuse took them from an earlier call
        "compute_seconds": sum(sum(seed["seconds"].values()) for seed in seeds)
        + sum(r["seconds"] for r in (amenability or {}).get("results", {}).values()),
        "steps": args.steps,
        "heat_data": ", ".join(f"{k} {v}" for k, v in HEAT_DATA.items()),
        "class_names": list(data.class_names),
        "holdout_frames": len(data.holdout),
        "holdout_subjects": len(set(data.holdout.subjects)),
        "seeds": [{k: v for k, v in s.items() if k != "histories"} for s in seeds],
        "amenability": amenability,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    path = write_docs({**summary, "seeds": seeds}, args.docs)
    log.info("done in %.1f min: %s", summary["seconds"] / 60, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
