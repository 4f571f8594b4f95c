"""The `usqa` command: one entry point whose subcommands live beside the code they drive.

Each subcommand module exposes `register(subparsers)`, which adds a parser whose `handler` default takes the
parsed arguments and returns an exit code. Modules are imported only when listed here, and trainer
subcommands are imported lazily so the runtime image (no torch) still gets a working `usqa` with a clear
message for the commands it cannot run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from usqa import __version__

# Subcommand modules in the runtime (`service`, numpy/OpenCV/onnxruntime only).
RUNTIME_COMMANDS: tuple[str, ...] = (
    "service.simulator.cli",
    "service.datasets.cli",
    "service.registry.cli",
    "usqa.demo",
)
# Subcommand modules that need the `train` extra (torch). Listed by name so the runtime never imports them.
TRAINER_COMMANDS: tuple[str, ...] = ("trainer.cli",)


class UsageError(Exception):
    """A user mistake on the command line: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usqa", description="Ultrasound frame quality by task amenability (train, export, serve)."
    )
    parser.add_argument("--version", action="version", version=f"usqa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in RUNTIME_COMMANDS:
        importlib.import_module(name).register(subparsers)
    for name in TRAINER_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            continue  # the runtime image: trainer commands are absent, `usqa --help` says what is there
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"usqa {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
