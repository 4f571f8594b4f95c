"""`usqa worker`: a Celery worker for retraining jobs (queue `retrain`, one job at a time)."""

from __future__ import annotations

import argparse
import socket

from usqa.service.jobs.queue import RETRAIN_QUEUE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("worker", help="run a retraining worker (Celery, queue 'retrain')")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="jobs at once (default 1: a job uses every core; run more workers on more machines)",
    )
    parser.add_argument("--hostname", default=f"usqa@{socket.gethostname()}", help="Celery node name")
    parser.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from usqa.contracts.cli import UsageError
    from usqa.service.jobs.queue import MSG_NOT_CONFIGURED
    from usqa.service.settings import get_settings

    if get_settings().broker is None:
        raise UsageError(MSG_NOT_CONFIGURED)
    from usqa.trainer.jobs.app import app

    app.worker_main(
        [
            "worker",
            "--queues",
            RETRAIN_QUEUE,
            "--concurrency",
            str(args.concurrency),
            "--pool",
            "prefork",
            "--hostname",
            args.hostname,
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0
