"""The `usqa` command: one entry point whose subcommands live beside the code they drive.

Each subcommand module exposes `register(subparsers)`, which adds a parser whose `handler` default takes the
parsed arguments and returns an exit code. Modules are imported only when listed here, and trainer
subcommands are imported lazily so the runtime image (no torch) still gets a working `usqa` with a clear
message for the commands it cannot run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import select
import sys
from collections.abc import Sequence

from usqa.contracts.cli import UsageError
from usqa.contracts.version import __version__

# Subcommand modules in the runtime (`service`, numpy/OpenCV/onnxruntime only).
RUNTIME_COMMANDS: tuple[str, ...] = (
    "usqa.service.simulator.cli",
    "usqa.service.datasets.cli",
    "usqa.service.registry.cli",
    "usqa.service.api.cli",
    "usqa.service.inference.cli",
    "usqa.client.cli",
    "usqa.client.session_cli",
    "usqa.client.listen_cli",
    "usqa.demo",
)
# Subcommands that need the `train` extra (torch), by command name: their module is imported only when that
# command runs, so `usqa serve` never loads torch and the runtime image (no torch) still lists them.
TRAINER_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("usqa.trainer.amenability.cli", "train the controller/predictor pair (seed 004)"),
    "evaluate": ("usqa.trainer.amenability.cli", "holdout rejection curves, kappa and t-test of a run"),
    "export": ("usqa.trainer.release.cli", "export a run to ONNX, check it and publish it to the registry"),
    "adapt": (
        "usqa.trainer.adaptation.cli",
        "adapt a published version to a new site with N labelled frames",
    ),
    "heat": ("usqa.trainer.heating.cli", "pre-train a heated backbone with noise masks (seed 000)"),
    "finetune": ("usqa.trainer.heating.cli", "fine-tune a heated backbone on a task without masks"),
    "worker": ("usqa.trainer.jobs.cli", "run a retraining worker (Celery, queue 'retrain')"),
}
# Runtime commands that still train on the way (the demo trains its first version): same message without torch.
RUNTIME_COMMANDS_NEEDING_TORCH: frozenset[str] = frozenset({"demo"})
MSG_NO_TORCH = "`usqa {command}` needs the train extra (torch): pip install 'usqa[train]'"
# What a coreutils program killed by SIGPIPE reports (128 + 13) when its reader is gone (`usqa ... | head`).
EXIT_READER_GONE = 128 + 13


def _requested_command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def require_train_extra(command: str) -> None:
    """Refuse `command` with MSG_NO_TORCH unless torch is installed (found, not imported: that is slow)."""
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-imported torch
        found = False
    if not found:
        raise UsageError(MSG_NO_TORCH.format(command=command))


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usqa", description="Ultrasound frame quality by task amenability (train, export, serve)."
    )
    parser.add_argument("--version", action="version", version=f"usqa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in RUNTIME_COMMANDS:
        importlib.import_module(name).register(subparsers)
    requested = _requested_command(argv)
    registered: set[str] = set()
    if requested in RUNTIME_COMMANDS_NEEDING_TORCH:
        require_train_extra(requested)
    if requested in TRAINER_COMMANDS:
        require_train_extra(requested)  # before the import: some (the worker) import torch only when they run
        module_name = TRAINER_COMMANDS[requested][0]
        module = importlib.import_module(module_name)
        module.register(subparsers)
        registered = {c for c, (m, _) in TRAINER_COMMANDS.items() if m == module_name}
    for command, (_, help_text) in TRAINER_COMMANDS.items():
        if command not in registered:
            # Listed in `usqa --help` without importing torch; choosing it imports the real parser above.
            subparsers.add_parser(command, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # Flush here, inside the guard: a pipe's reader may be gone (`usqa models show | head -1`), and
            # the interpreter's own flush at exit would print a BrokenPipeError it cannot handle.
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a socket or a subprocess, not our reader: a real error
        # Python ignores SIGPIPE (sockets need that); end quietly as `cat` would, with nothing left to flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_READER_GONE


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe or socket whose reading end is closed (poll reports an error on it)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture object (tests)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(argv)
    except UsageError as exc:
        print(f"usqa: {exc}", file=sys.stderr)
        return 2
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
