"""`usqa heat` (pre-train a heated backbone with policy-gradient noise masks) and `usqa finetune` (train a
classifier on clean frames, from a heated backbone or from scratch)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TypeVar

from usqa.contracts.cli import UsageError
from usqa.contracts.training import PRESETS, OverrideError, apply_overrides
from usqa.trainer.heating.config import (
    AUGMENTS,
    CLASS_SOURCES,
    LOSSES,
    MASK_SPACES,
    NOISE_MODELS,
    UPSAMPLING,
    finetune_preset,
    heat_preset,
)
from usqa.trainer.heating.run_folder import BACKBONE_FILE, CHECKPOINT_FILE, CONFIG_FILE, read_metrics

log = logging.getLogger(__name__)
C = TypeVar("C")

MSG_NO_DATA = "data folder {path} does not exist"
MSG_NOT_EMPTY = "{path} already holds a run; pass --resume to continue it or choose another --out"
MSG_BAD_BLUR = "--blur-kernel must be odd (or 0 for no blur), got {kernel}"
MSG_BAD_GRID = "--grid must be between 1 and the frame size {size}, got {grid}"
MSG_BAD_TAU = "{name} must be in [0, 1), got {value}"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    heat = subparsers.add_parser(
        "heat", help="pre-train a heated backbone with policy-gradient noise masks (seed 000)"
    )
    heat.add_argument(
        "--data", type=Path, action="append", required=True, help="data-set folder; repeat to merge several"
    )
    heat.add_argument("--config", choices=PRESETS, default="default", help="budget preset")
    heat.add_argument("--out", type=Path, required=True, help="run folder")
    heat.add_argument(
        "--classes",
        choices=CLASS_SOURCES,
        help="class of a frame (auto: preset x label when there is a preset column, else label)",
    )
    heat.add_argument("--noise", choices=NOISE_MODELS, help="noise model (Table 4); default beta")
    heat.add_argument("--grid", type=int, help="noise matrix G x G; the frame size gives pure noise")
    heat.add_argument("--upsample", choices=UPSAMPLING, help="grid -> frame interpolation")
    heat.add_argument(
        "--mask-space", choices=MASK_SPACES, help="mask multiplies pixels (eq. 5) or normalised input"
    )
    heat.add_argument("--blur-kernel", type=int, help="Gaussian blur kernel K (odd; 0 switches blur off)")
    heat.add_argument("--blur-sigma", type=float, help="Gaussian blur sigma S")
    heat.add_argument(
        "--loss", choices=LOSSES, help="paper: eq. 8; baseline: eq. 8 with a moving-average baseline"
    )
    heat.add_argument("--tau-image", type=float, help="tau_i of eqs. 10-11")
    heat.add_argument("--tau-dataset", type=float, help="tau_d of eqs. 12-13")
    _common(heat)
    heat.set_defaults(handler=run_heat)

    finetune = subparsers.add_parser(
        "finetune",
        help="train a classifier on clean frames, from a heated backbone (--backbone) or from scratch",
    )
    finetune.add_argument("--data", type=Path, action="append", required=True, help="data-set folder(s)")
    finetune.add_argument("--config", choices=PRESETS, default="default", help="budget preset")
    finetune.add_argument("--out", type=Path, required=True, help="run folder")
    finetune.add_argument("--backbone", type=Path, help="backbone.pt (or a run folder) from `usqa heat`")
    finetune.add_argument(
        "--classes",
        choices=CLASS_SOURCES,
        help="class of a frame (auto: preset x label when there is a preset column, else label)",
    )
    finetune.add_argument("--augment", choices=AUGMENTS, help="none, cutmix or randaugment")
    _common(finetune)
    finetune.set_defaults(handler=run_finetune)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (an absent CUDA is an error)")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--steps", type=int, help="override the preset's number of optimiser steps")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_paths(args: argparse.Namespace) -> None:
    for path in args.data:
        if not path.is_dir():
            raise UsageError(MSG_NO_DATA.format(path=path))
    if not args.resume and (args.out / CHECKPOINT_FILE).exists():
        raise UsageError(MSG_NOT_EMPTY.format(path=args.out))


def _overridden(config: C, flags: dict[str, object]) -> C:
    """`config` with the flags that were given (not None), checked by the one override function."""
    try:
        return apply_overrides(config, {key: value for key, value in flags.items() if value is not None})
    except OverrideError as exc:
        raise UsageError(str(exc)) from exc


def run_heat(args: argparse.Namespace) -> int:
    from usqa.trainer.engine.device import DeviceError
    from usqa.trainer.heating.config import HeatConfig
    from usqa.trainer.heating.data import HeatDataError, load_class_data
    from usqa.trainer.heating.heat import heat
    from usqa.trainer.recipe.config_files import read_config_dict

    _check_paths(args)
    if args.resume and (args.out / CONFIG_FILE).is_file():
        config = HeatConfig.from_dict(read_config_dict(args.out / CONFIG_FILE))
    else:
        config = heat_preset(args.config)
    config = _overridden(
        config,
        {
            "mask.noise": args.noise,
            "mask.grid": args.grid,
            "mask.upsample": args.upsample,
            "mask.space": args.mask_space,
            "mask.blur_kernel": args.blur_kernel,
            "mask.blur_sigma": args.blur_sigma,
            "policy.tau_image": args.tau_image,
            "policy.tau_dataset": args.tau_dataset,
            "device": args.device,
            "seed": args.seed,
            "steps": args.steps,
            "classes": args.classes,
            "loss": args.loss,
        },
    )
    mask, policy = config.mask, config.policy
    if mask.blur_kernel > 1 and mask.blur_kernel % 2 == 0:
        raise UsageError(MSG_BAD_BLUR.format(kernel=mask.blur_kernel))
    if not 1 <= mask.grid <= config.frame.size:
        raise UsageError(MSG_BAD_GRID.format(size=config.frame.size, grid=mask.grid))
    for name, value in (("--tau-image", policy.tau_image), ("--tau-dataset", policy.tau_dataset)):
        if not 0 <= value < 1:
            raise UsageError(MSG_BAD_TAU.format(name=name, value=value))
    try:
        data = load_class_data(args.data, config.frame, config.classes)
        engine = heat(config, data, args.out, resume=args.resume, progress=not args.quiet)
    except (HeatDataError, DeviceError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    metrics = read_metrics(args.out)["metrics"]
    summary = {k: round(v["balanced_accuracy"], 4) for k, v in metrics.items()}
    print(
        f"heated backbone: {args.out / BACKBONE_FILE} after {engine.step} steps; {len(data.class_names)} classes"
    )
    print(f"holdout balanced accuracy: {json.dumps(summary)}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from usqa.trainer.engine.device import DeviceError
    from usqa.trainer.heating.backbone_io import BackboneFileError, resolve_backbone_path
    from usqa.trainer.heating.config import FinetuneConfig
    from usqa.trainer.heating.data import HeatDataError, load_class_data
    from usqa.trainer.heating.finetune import finetune
    from usqa.trainer.recipe.config_files import read_config_dict

    _check_paths(args)
    if args.resume and (args.out / CONFIG_FILE).is_file():
        config = FinetuneConfig.from_dict(read_config_dict(args.out / CONFIG_FILE))
    else:
        config = finetune_preset(args.config)
    config = _overridden(
        config,
        {
            "device": args.device,
            "seed": args.seed,
            "steps": args.steps,
            "classes": args.classes,
            "augment": args.augment,
        },
    )
    try:
        backbone = None if args.backbone is None else resolve_backbone_path(args.backbone)
        data = load_class_data(args.data, config.frame, config.classes)
        engine = finetune(
            config, data, args.out, backbone=backbone, resume=args.resume, progress=not args.quiet
        )
    except (BackboneFileError, HeatDataError, DeviceError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    metrics = read_metrics(args.out)["metrics"]
    start = f"from {backbone}" if backbone else "from scratch"
    print(f"classifier {start}: {args.out / CHECKPOINT_FILE} after {engine.step} steps")
    if metrics:
        print("holdout: " + json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return 0
