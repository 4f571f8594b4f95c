"""Trainer subcommands: `usqa train` (Algorithm 1 + baseline) and `usqa evaluate` (sections 3-4)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from usqa.contracts.cli import UsageError
from usqa.contracts.frames import FrameSpec
from usqa.contracts.training import (
    ALGOS,
    PRESETS,
    REWARDS,
    TASKS,
    OverrideError,
    TrainConfig,
    apply_overrides,
)
from usqa.trainer.data import DataError
from usqa.trainer.recipe.presets import preset

if TYPE_CHECKING:
    from usqa.trainer.amenability.rejection_report import CertificationTarget

log = logging.getLogger(__name__)

MSG_NO_DATA = "data folder {path} does not exist"
MSG_NOT_EMPTY = "{path} already holds a run; pass --resume to continue it or choose another --out"
MSG_NO_OUT = "usqa train needs --out RUN (the run folder) unless --plan-only"
MSG_NO_BACKBONE = "backbone checkpoint {path} does not exist"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = subparsers.add_parser(
        "train", help="train the controller/predictor pair by reinforcement learning (and the baseline)"
    )
    train.add_argument("--data", type=Path, required=True, help="labelled data-set folder (labels.csv)")
    train.add_argument("--task", choices=TASKS, default="classify")
    train.add_argument("--reward", choices=REWARDS, default="weighted", help="R_avg, R_w or R_sel")
    train.add_argument(
        "--algo",
        choices=ALGOS,
        default="credit",
        help="the controller's learner (default: credit, per-frame credit + PPO, the best measured in "
        "docs/results.md; reinforce is the paper's)",
    )
    train.add_argument(
        "--config", choices=PRESETS, default="default", help="budget: how long (the plan decides the shapes)"
    )
    train.add_argument("--out", type=Path, help="run folder (required unless --plan-only)")
    train.add_argument("--device", default="cpu", help="cpu or cuda (an absent CUDA is an error)")
    train.add_argument("--backbone", type=Path, help="backbone state_dict to initialise the networks")
    train.add_argument("--seed", type=int, help="override the preset's seed")
    train.add_argument("--episodes", type=int, help="override the preset's number of episodes")
    train.add_argument("--no-baseline", action="store_true", help="skip the non-selective baseline")
    train.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--plan",
        action="append",
        metavar="KEY=VALUE",
        help="override one field of the plan (repeatable), e.g. --plan input_size=64",
    )
    train.add_argument("--plan-only", action="store_true", help="print the plan for --data and exit")
    train.add_argument(
        "--no-trial", action="store_true", help="decide the input size by rule, without the size trial"
    )
    train.add_argument("--trial", action="store_true", help="with --plan-only: run the size trial too")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser("evaluate", help="holdout rejection curves, kappa and t-test of a run")
    evaluate.add_argument("--run", type=Path, required=True, help="run folder from `usqa train`")
    evaluate.add_argument("--data", type=Path, required=True, help="labelled data-set folder")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for report.json and PNGs")
    evaluate.add_argument("--baseline", type=Path, help="another run whose baseline.pt to compare with")
    evaluate.add_argument("--resamples", type=int, default=200, help="subject-level bootstrap resamples")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="cpu")
    add_certification_arguments(evaluate)
    evaluate.set_defaults(handler=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from usqa.trainer.amenability.run_folder import CHECKPOINT_FILE

    if not args.data.is_dir():
        raise UsageError(MSG_NO_DATA.format(path=args.data))
    if args.backbone is not None and not args.backbone.is_file():
        raise UsageError(MSG_NO_BACKBONE.format(path=args.backbone))
    if args.out is None and not args.plan_only:
        raise UsageError(MSG_NO_OUT)
    if not args.plan_only and not args.resume and (args.out / CHECKPOINT_FILE).exists():
        raise UsageError(MSG_NOT_EMPTY.format(path=args.out))
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    flags = {"device": args.device, "seed": args.seed}
    try:
        config = apply_overrides(
            preset(args.config, args.task, args.reward, args.algo),
            {key: value for key, value in flags.items() if value is not None},
        )
        config = planned_config(args, config)
        if args.plan_only:
            return 0
        if args.episodes is not None:
            config = apply_overrides(config, {"episodes": args.episodes})
    except (OverrideError, DataError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    # imported after the plan: torch's and MONAI's imports take seconds, and --plan-only needs neither
    from usqa.trainer.amenability.run import RunError, train
    from usqa.trainer.engine.device import DeviceError

    config = replace(
        config,
        train_baseline=config.train_baseline and not args.no_baseline,
        backbone_checkpoint=None if args.backbone is None else str(args.backbone),
    )
    try:
        result = train(config, args.data, args.out, resume=args.resume, progress=not args.quiet)
    except (DataError, RunError, DeviceError) as exc:
        raise UsageError(str(exc)) from exc
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"run {result.run_dir}: {seconds}")
    if result.verdict is not None:
        print(result.verdict.summary())
    return 0


def planned_config(args: argparse.Namespace, config: TrainConfig) -> TrainConfig:
    """The preset with the run's plan: read from RUN/plan.json on a resume, else made, printed and written."""
    from usqa.trainer.amenability.run_folder import CONFIG_FILE, read_plan, write_plan
    from usqa.trainer.recipe.config_files import read_config
    from usqa.trainer.recipe.planning import PlanRecord, make_plan, parse_overrides

    saved = read_plan(args.out) if args.resume and not args.plan_only else None
    if saved is not None:
        record = PlanRecord.from_dict(saved)
        print(record.summary())
        return record.config(config)
    if args.resume and (args.out / CONFIG_FILE).is_file():  # a run from before plans: its config rebuilds it
        return replace(read_config(args.out / CONFIG_FILE), device=config.device)
    overrides = parse_overrides(args.plan)
    if args.backbone is not None and "input_size" not in overrides:
        size = backbone_frame_size(args.backbone)
        overrides.update({} if size is None else {"input_size": size})
    trial = (args.trial or not args.plan_only) and not args.no_trial
    record = make_plan(args.data, args.task, args.config, config, overrides, trial=trial)
    print(record.summary(), flush=True)
    if not args.plan_only:
        write_plan(record.to_dict(), args.out)
    return record.config(config)


def backbone_frame_size(path: Path) -> int | None:
    """A heated backbone's frame size (the run's input size must be it), or None if it records none."""
    from usqa.trainer.heating.backbone_io import BackboneFileError, read_backbone_meta

    try:
        spec = read_backbone_meta(path).get("frame_spec")
    except BackboneFileError as exc:
        raise UsageError(f"{path}: unusable backbone checkpoint ({exc})") from exc
    return None if not spec else FrameSpec.from_dict(spec).size


def add_certification_arguments(parser: argparse.ArgumentParser) -> None:
    """The pass line's promise and the served rejector (issue #25), for evaluate and export."""
    from usqa.contracts.graphs import REJECTORS
    from usqa.trainer.amenability.certification import DEFAULT_ALPHA, DEFAULT_DELTA

    parser.add_argument(
        "--alpha",
        type=float,
        help="the certified line's risk: the task model fails on at most this share of frames called good "
        f"(default by task: {', '.join(f'{task} {alpha}' for task, alpha in DEFAULT_ALPHA.items())})",
    )
    parser.add_argument(
        "--delta",
        type=float,
        default=DEFAULT_DELTA,
        help=f"the chance that the promise does not hold (default {DEFAULT_DELTA})",
    )
    parser.add_argument(
        "--rejector",
        choices=REJECTORS,
        help="serve this rejector (default: the lowest validation AURC; controller is the paper's score)",
    )


def certification_target(args: argparse.Namespace) -> CertificationTarget:
    """The CertificationTarget of the flags above; a usage error outside (0, 1)."""
    from usqa.trainer.amenability.rejection_report import CertificationTarget

    for name in ("alpha", "delta"):
        value = getattr(args, name)
        if value is not None and not 0 < value < 1:
            raise UsageError(f"--{name} must be between 0 and 1 (exclusive), got {value}")
    return CertificationTarget(alpha=args.alpha, delta=args.delta, rejector=args.rejector)


def run_evaluate(args: argparse.Namespace) -> int:
    from usqa.trainer.amenability.evaluate import evaluate
    from usqa.trainer.amenability.run import RunError
    from usqa.trainer.amenability.run_folder import REPORT_FILE
    from usqa.trainer.engine.device import DeviceError

    if not args.data.is_dir():
        raise UsageError(MSG_NO_DATA.format(path=args.data))
    try:
        report = evaluate(
            args.run,
            args.data,
            args.out,
            baseline_run=args.baseline,
            resamples=args.resamples,
            seed=args.seed,
            device=args.device,
            target=certification_target(args),
        )
    except (DataError, RunError, DeviceError) as exc:
        raise UsageError(str(exc)) from exc
    op = report["rejection_ratios"].index(report["operating_point"])
    summary = {name: round(curve["mean"][op], 4) for name, curve in report["curves"].items()}
    print(f"{report['metric']} at {report['operating_point']:.0%} rejection: {json.dumps(summary)}")
    print(f"kappa (controller vs non-amenable): {report['kappa']['controller']:.3f}")
    print(f"served rejector: {report['served_rejector']['name']} ({report['served_rejector']['reason']})")
    print(f"pass line: {report['certification']['reason']}")
    print(f"report: {Path(args.out) / REPORT_FILE}")
    return 0
