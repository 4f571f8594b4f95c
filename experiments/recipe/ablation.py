"""The predictor recipe, one choice at a time, on a development data set (docs/recipe.md has the numbers).

Each variant trains a preset with some recipe choices switched on and reports the verdict's validation figures
(predictor metric vs the trivial one, the controller's spread and kappa) and the wall time. Decisions are made
on the validation split only; the holdout split is left to `usqa evaluate`.

    python -m experiments.recipe.ablation --data /tmp/dev --task classify --config demo --out /tmp/ablation \\
        --variants plain,warmup,augment,balanced,best,recipe --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import RecipeConfig, Task, TrainConfig
from usqa.trainer.amenability.run import train
from usqa.trainer.recipe.presets import preset

PLAIN = RecipeConfig()


def variant(config: TrainConfig, name: str) -> TrainConfig:
    """`config` with variant `name`: "plain", one recipe choice, "recipe" (the preset's), "size:N" or "loss:L"."""
    warmup = max(1, config.episodes // 4)
    one = {
        "plain": PLAIN,
        "warmup": replace(PLAIN, warmup_episodes=warmup),
        "augment": replace(PLAIN, augment="ultrasound"),
        "balanced": replace(PLAIN, balanced_sampling=True),
        "best": replace(PLAIN, best_on_validation=True),
        "prior": replace(PLAIN, output_prior=True),
    }
    if name in one:
        return replace(config, recipe=one[name])
    if name == "recipe":
        return config
    if name == "recipe-augment":  # the preset's recipe without augmentation
        return replace(config, recipe=replace(config.recipe, augment="none"))
    if name == "recipe-balanced":
        return replace(config, recipe=replace(config.recipe, balanced_sampling=False))
    if name.startswith("loss:"):
        return replace(config, predictor_loss=name.split(":")[1])  # type: ignore[arg-type]
    if name.startswith("size:"):
        return replace(config, frame=replace(config.frame, size=int(name.split(":")[1])))
    raise ValueError(f"unknown variant {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--task", choices=["classify", "segment"], default="classify")
    parser.add_argument("--config", default="demo")
    parser.add_argument("--variants", default="plain,warmup,augment,balanced,best,recipe")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--size", type=int, help="frame size for every variant (default: the preset's)")
    parser.add_argument("--episodes", type=int, help="episodes for every variant (default: the preset's)")
    parser.add_argument("--baseline", action="store_true", help="also train the non-selective baseline")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    task: Task = args.task
    rows: list[dict[str, Any]] = []
    for name in args.variants.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            config = replace(preset(args.config, task), seed=seed, train_baseline=args.baseline)
            if args.episodes:
                config = replace(
                    config,
                    episodes=args.episodes,
                    recipe=replace(config.recipe, warmup_episodes=args.episodes // 4),
                )
            if args.size:
                config = replace(config, frame=FrameSpec(size=args.size))
            config = variant(config, name)
            started = time.perf_counter()
            result = train(config, args.data, args.out / f"{name.replace(':', '')}-s{seed}", progress=False)
            assert result.verdict is not None
            v = result.verdict.to_dict()
            row = {
                "variant": name,
                "seed": seed,
                "size": config.frame.size,
                "val_metric": round(v["predictor"]["metric"], 4),
                "trivial": round(v["predictor"]["trivial"], 4),
                "baseline": v["baseline_predictor"],
                "kappa": v["controller"]["kappa"],
                "spread": round(v["controller"]["score_spread"], 4),
                "passed": v["passed"],
                "seconds": round(time.perf_counter() - started, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
