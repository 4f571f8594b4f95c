"""`usqa simulate`: write a simulated, labelled ultrasound data set (frames, masks, amenability)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from usqa.contracts.cli import UsageError
from usqa.service.simulator.benchmarks import SETTING_NAMES, get_setting
from usqa.service.simulator.cine import DEFAULT_DEGRADED_FRACTION
from usqa.service.simulator.dataset import SimulationError, write_dataset
from usqa.service.simulator.mixes import MIX_NAMES, STANDARD
from usqa.service.simulator.presets import ALL_PRESETS, PRESET_NAMES, PRESETS

MSG_SETTING_AND_OPTION = "--setting {setting} fixes --{option}; leave --{option} out or drop --setting"
# Options a benchmark setting fixes, with the default each takes without a setting.
SETTING_FIXES: dict[str, object] = {
    "preset": PRESET_NAMES[0],
    "mix": STANDARD.name,
    "degraded_fraction": DEFAULT_DEGRADED_FRACTION,
    "seed": 0,
    "frames": 1000,
    "subjects": 20,
    "size": 128,
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a simulated B-mode data set with masks and amenability labels",
        description=(
            "Simulate ultrasound sweeps (speckle, attenuation, scan conversion) with degradations, and "
            "write them as a data-set folder (docs/data.md). Same arguments, same bytes."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="data-set folder to create")
    # Defaults are None so that a --setting can tell an option given from one left out.
    parser.add_argument("--frames", type=int, help="frames in total (default 1000)")
    parser.add_argument("--subjects", type=int, help="subjects, one sweep each (default 20)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--size", type=int, help="frame width and height in pixels (default 128)")
    parser.add_argument(
        "--preset",
        choices=(*PRESETS, ALL_PRESETS),
        help=f"probe and organ; '{ALL_PRESETS}' gives each subject one development preset, evenly "
        f"(default {PRESET_NAMES[0]})",
    )
    parser.add_argument(
        "--mix",
        choices=MIX_NAMES,
        help=f"degradation mix: which kinds, how often, how severe (default {STANDARD.name})",
    )
    parser.add_argument(
        "--degraded-fraction",
        type=float,
        help=f"expected share of degraded frames (default {DEFAULT_DEGRADED_FRACTION})",
    )
    parser.add_argument(
        "--setting",
        choices=SETTING_NAMES,
        help="a named benchmark setting (docs/simulator.md): fixes preset, mix, fraction, seed and size",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)"
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(handler=run)


def resolve_options(args: argparse.Namespace) -> dict[str, object]:
    """The simulation's options: those given, else the setting's, else the defaults."""
    chosen = {name: getattr(args, name) for name in SETTING_FIXES}
    if args.setting is None:
        return {
            name: default if chosen[name] is None else chosen[name] for name, default in SETTING_FIXES.items()
        }
    setting = get_setting(args.setting)
    resolved: dict[str, object] = {}
    for name in SETTING_FIXES:
        fixed = getattr(setting, name)
        # Frames and subjects may be scaled down (a quick look); everything else defines the setting.
        if chosen[name] is not None and name not in ("frames", "subjects"):
            raise UsageError(
                MSG_SETTING_AND_OPTION.format(setting=args.setting, option=name.replace("_", "-"))
            )
        resolved[name] = fixed if chosen[name] is None else chosen[name]
    return resolved


def run(args: argparse.Namespace) -> int:
    options = resolve_options(args)
    try:
        summary = write_dataset(
            args.out,
            workers=args.workers,
            force=args.force,
            **options,  # type: ignore[arg-type]
        )
    except SimulationError as exc:
        raise UsageError(str(exc)) from exc
    print(summary.line())
    return 0
