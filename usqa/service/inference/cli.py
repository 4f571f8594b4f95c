"""`usqa score FILE_OR_DIR --out OUT`: offline scoring to a per-frame CSV and a plot of score over time."""

from __future__ import annotations

import argparse
from pathlib import Path

from usqa.contracts.cli import UsageError
from usqa.service.frames import FrameError
from usqa.service.inference.model import ModelLoadError
from usqa.service.inference.offline import score_source
from usqa.service.inference.providers import ProviderError
from usqa.service.registry import RegistryError, explain
from usqa.service.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "score", help="score a DICOM cine, video or image folder offline: per-frame CSV and a score plot"
    )
    parser.add_argument("source", type=Path, metavar="FILE_OR_DIR")
    parser.add_argument("--out", type=Path, required=True, help="folder for scores.csv and scores.png")
    parser.add_argument(
        "--registry", type=Path, help="model registry folder (default: USQA_REGISTRY or models/)"
    )
    parser.add_argument("--model", help="model name (default: USQA_MODEL_NAME)")
    parser.add_argument("--ref", default="champion", help="version number, alias or 'latest'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.registry is not None:
        settings = settings.model_copy(update={"registry": args.registry})
    if not args.source.exists():
        raise UsageError(f"{args.source} does not exist")
    try:
        report = score_source(
            args.source, args.out, settings, name=args.model or settings.model_name, ref=args.ref
        )
    except RegistryError as exc:
        raise UsageError(explain(exc)) from exc
    except (FrameError, ModelLoadError, ProviderError) as exc:
        raise UsageError(str(exc)) from exc
    print(
        f"scored {report.frames} frames with {report.model} version {report.version}: "
        f"{report.amenable_fraction:.1%} amenable"
    )
    print("verdicts: " + ", ".join(f"{key} {count}" for key, count in report.verdicts.items()))
    print(f"pass line: {report.pass_line}")
    print(f"per-frame scores: {report.csv_path}")
    print(f"score plot: {report.plot_path}")
    return 0
