"""`usqa adapt --from NAME[:VERSION|@ALIAS] --data DIR --labels N --out RUN [--mode ...] [--seed S]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from usqa.contracts.adaptation import ADAPT_MODES
from usqa.contracts.cli import UsageError
from usqa.contracts.training import TASKS
from usqa.service.registry import open_registry
from usqa.service.settings import get_settings
from usqa.trainer.adaptation.adapt import AdaptError, AdaptOptions, adapt
from usqa.trainer.amenability.run_folder import ADAPT_FILE, MODEL_FILE
from usqa.trainer.engine.device import DeviceError, resolve_device

MSG_NO_DATA = "data folder {path} does not exist"
MSG_NOT_EMPTY = "{path} already holds a run; choose another --out"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "adapt", help="adapt a published version to a new site with N labelled frames"
    )
    parser.add_argument(
        "--from", dest="source", required=True, help="NAME, NAME:VERSION or NAME@ALIAS (bare NAME: champion)"
    )
    parser.add_argument("--data", type=Path, required=True, help="the site's labelled data-set folder")
    parser.add_argument("--labels", type=int, required=True, help="N: labelled train frames to use")
    parser.add_argument("--out", type=Path, required=True, help="run folder (publish it with usqa export)")
    parser.add_argument("--mode", choices=ADAPT_MODES, default="finetune")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelled draw and the training")
    parser.add_argument("--task", choices=TASKS, help="refuse a version of another task")
    parser.add_argument("--steps", type=int, default=100, help="supervised predictor steps")
    parser.add_argument(
        "--episodes", type=int, help="Algorithm 1 episodes (controller; default: the version's)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (an absent CUDA is an error)")
    parser.add_argument("--registry", type=Path, help="registry folder (default: USQA_REGISTRY or models/)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        raise UsageError(MSG_NO_DATA.format(path=args.data))
    if (args.out / MODEL_FILE).exists():
        raise UsageError(MSG_NOT_EMPTY.format(path=args.out))
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        raise UsageError(str(exc)) from exc
    settings = get_settings()
    if args.registry is not None:
        settings = settings.model_copy(update={"registry": args.registry})
    options = AdaptOptions(
        mode=args.mode,
        labels=args.labels,
        seed=args.seed,
        steps=args.steps,
        episodes=args.episodes,
        task=args.task,
        device=args.device,
    )
    try:
        result = adapt(args.source, open_registry(settings), args.data, args.out, options)
    except AdaptError as exc:
        raise UsageError(str(exc)) from exc
    m = result.metrics
    print(
        f"adapted {args.source} ({args.mode}, {args.labels} labels) on {device} in "
        f"{result.seconds:.1f} s -> {args.out}"
    )
    print(f"  holdout {m['metric']} {m['mean']:.4f}, controller kappa {m['kappa']:.3f}")
    print(f"  report: {args.out / ADAPT_FILE}; publish with: usqa export --run {args.out}")
    return 0
