"""The heated-backbone analysis (seed 000) on simulated data: `python -m experiments.heating_analysis`.

(a) the analogue of the paper's Table 1: normal model, heated model on clean and on masked frames, fine-tuned
heated model; (b) of Table 2: baseline vs heated + fine-tuned vs CutMix vs RandAugment, same step budget;
(c) the amenability pair of the RL trainer (seed 004) from scratch, from the heated backbone and from the
normal model's backbone, same budget, at the paper's operating point; (d) a figure like the paper's Figure 6.

Writes docs/heating.md (its generated block `heating`; the prose around it is kept),
docs/img/heating_masks.png and docs/img/heating_training.png. Runs and data go to runs/heating.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from docs_gen.blocks import check_block
from experiments.heating_analysis.figures import mask_figure, training_figure
from experiments.heating_analysis.runs import (
    CLASSES,
    HEAT_DATA,
    HEAT_SHARE,
    RL_OVERRIDES,
    TASK_DATA,
    dataset_concentration,
    heat_config,
    run_amenability,
    run_seed,
    simulate,
)
from experiments.heating_analysis.tables import BLOCK, write_docs
from usqa.service.datasets import load_dataset
from usqa.trainer.heating.data import load_class_data
from usqa.trainer.heating.run_folder import BACKBONE_FILE

log = logging.getLogger("experiments.heating_analysis")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.heating_analysis", description=__doc__)
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
    check_block(args.docs / "heating.md", BLOCK)
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
    from usqa.trainer.heating.heat import build_heating_engine, load_heat_checkpoint
    from usqa.trainer.heating.run_folder import CHECKPOINT_FILE

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
            "heated": seed0 / "heated" / BACKBONE_FILE,
            "normal": seed0 / "normal" / BACKBONE_FILE,
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
