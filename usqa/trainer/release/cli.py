"""`usqa export --run RUN --registry DIR`: publish a training run as a checked registry version."""

from __future__ import annotations

import argparse
from pathlib import Path

from usqa.contracts.cli import UsageError
from usqa.service.datasets import DatasetError
from usqa.service.registry import RegistryError, explain, open_registry
from usqa.service.registry.announce import announcer_from_url
from usqa.service.settings import get_settings
from usqa.trainer.amenability.cli import add_certification_arguments, certification_target
from usqa.trainer.amenability.run import RunError
from usqa.trainer.data import DataError
from usqa.trainer.release.export import ExportError, ExportOptions, export_run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export", help="export a run to ONNX, check it and publish it to the registry"
    )
    parser.add_argument("--run", type=Path, required=True, help="training run folder (usqa train --out)")
    parser.add_argument("--registry", type=Path, help="registry folder (default: USQA_REGISTRY or models/)")
    parser.add_argument(
        "--data", type=Path, help="data set the run was trained on (default: as recorded in RUN)"
    )
    parser.add_argument("--name", default="usqa", help="model name in the registry")
    parser.add_argument("--quantize", choices=["int8"], help="static int8 (QDQ) quantisation")
    parser.add_argument(
        "--quantization-tolerance", type=float, default=0.02, help="largest allowed metric drop"
    )
    parser.add_argument("--class-names", help="comma-separated class names (default: 0,1,...)")
    parser.add_argument("--alias", help="point this alias (e.g. champion) at the new version")
    parser.add_argument(
        "--force",
        action="store_true",
        help="publish even when the run's verdict failed (predictor no better than trivial, controller "
        "without spread or with kappa <= 0 on validation or holdout); recorded in the manifest",
    )
    add_certification_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.registry is not None:
        settings = settings.model_copy(update={"registry": args.registry})
    # Publishes go to the writable registry; a first version of the shipped model's name continues its numbers.
    registry = open_registry(settings, announcer_from_url(settings.redis_url))
    options = ExportOptions(
        name=args.name,
        quantize=args.quantize,
        quantization_tolerance=args.quantization_tolerance,
        class_names=tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None,
        alias=args.alias,
        force=args.force,
        target=certification_target(args),
    )
    try:
        version = export_run(args.run, registry, options, data_dir=args.data)
    except RegistryError as exc:
        raise UsageError(explain(exc)) from exc
    except (ExportError, RunError, DatasetError, DataError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    checks = version.manifest.metrics
    print(f"published {version.name} version {version.version} at {version.path}")
    print(f"  parity (max abs diff): {checks['parity_max_abs_diff']}")
    print(f"  thresholds: {version.manifest.thresholds}")
    if version.manifest.rejector is not None and version.manifest.certification is not None:
        print(f"  served rejector: {version.manifest.rejector.name} ({version.manifest.rejector.reason})")
        print(f"  pass line: {version.manifest.certification.reason}")
    if version.manifest.ood is not None:
        ood = version.manifest.ood
        print(f"  out of scope above distance {ood.threshold:.3f} ({ood.false_alarm_rate:.0%} of validation)")
    if checks["verdict"].get("forced"):
        print("  verdict: FAILED, published because of --force")
    for role, verdict in checks["opencv_dnn"].items():
        print(f"  second runtime, {role}: {verdict}")
    return 0
