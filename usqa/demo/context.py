"""What the demo's stages share: its folders, settings, the services it started, and what each stage found."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usqa import local_stack
from usqa.client import Dataset, Job
from usqa.contracts.cli import UsageError
from usqa.demo.view import StreamView
from usqa.service.datasets.uploads import DatasetInfo, DatasetStore
from usqa.service.settings import Settings, get_settings

PRESET = "transrectal_prostate"
MODEL = "usqa-demo"
CLASS_NAMES = ("no_gland", "gland")
SUBJECTS = 24
# Loggers that speak at INFO or WARNING about their own internals while the demo runs (ONNX export passes,
# torch's exporter registry, HTTP requests); the demo says what happened in its own lines instead.
QUIET_LOGGERS = ("torch", "onnxscript", "onnx_ir", "httpx", "usqa")


@dataclass
class Facts:
    """What the stages found, for the summary."""

    first: DatasetInfo | None = None
    heat_steps: int = 0
    train_seconds: float = 0.0
    verdict: dict[str, Any] | None = None  # v1's acceptance check (verdict.json)
    holdout: dict[str, Any] = field(default_factory=dict)  # v1 on the holdout split (eval/report.json)
    version: int = 0
    broker: str = ""
    second: Dataset | None = None
    job: Job | None = None


@dataclass
class Demo:
    args: argparse.Namespace
    out: Path
    verbose: bool
    settings: Settings
    store: DatasetStore
    started: float = field(default_factory=time.perf_counter)
    facts: Facts = field(default_factory=Facts)
    view: StreamView = field(default_factory=StreamView)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    base: str = ""
    processes: list[local_stack.ManagedProcess] = field(default_factory=list)

    @classmethod
    def create(cls, args: argparse.Namespace, *, verbose: bool) -> Demo:
        out: Path = args.out.resolve()
        if out.exists():
            # The demo owns its output folder: a re-run starts clean, so nothing mixes two runs.
            shutil.rmtree(out)
        settings = Settings(
            registry=out / "models", data_root=out / "data", jobs_root=out / "jobs", work_root=out / "work"
        )
        store = DatasetStore(
            settings.data_root,
            max_unpacked_bytes=settings.max_unpacked_bytes,
            max_members=settings.max_archive_members,
        )
        return cls(args, out, verbose, settings, store)

    @property
    def progress(self) -> bool:
        """Progress bars on a terminal, or when asked for; never as lines in a pipe."""
        return self.verbose or sys.stderr.isatty()

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def quiet_libraries(self) -> None:
        """Libraries log at ERROR only, unless --verbose (call after importing them: torch sets its own)."""
        if not self.verbose:
            for name in ("", *QUIET_LOGGERS):
                logging.getLogger(name).setLevel(logging.ERROR)

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, *_: object) -> None:
        self.view.finish()
        for proc in reversed(self.processes):
            proc.stop()

    def service_env(self, broker: local_stack.Broker) -> dict[str, str]:
        """The API's and the worker's environment: the demo's folders, its model, token and broker."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("USQA_")},
            **broker.env(),
            "USQA_REGISTRY": str(self.settings.registry),
            "USQA_DATA_ROOT": str(self.settings.data_root),
            "USQA_JOBS_ROOT": str(self.settings.jobs_root),
            "USQA_WORK_ROOT": str(self.settings.work_root),
            "USQA_MODEL_NAME": MODEL,
            "USQA_API_TOKEN": self.token,
            "USQA_REGISTRY_POLL_S": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def choose_broker(self) -> local_stack.Broker:
        """The configured Redis, else a local redis-server the demo starts, else the embedded broker."""
        mode, settings = self.args.broker, get_settings()
        if mode in ("auto", "redis") and settings.redis_url:
            return local_stack.Broker(
                settings.redis_url, None, None, f"configured Redis {settings.redis_url}"
            )
        if mode in ("auto", "redis") and shutil.which("redis-server"):
            port = local_stack.free_port()
            self.processes.append(local_stack.start_redis(port, self.out / "redis"))
            return local_stack.Broker(
                f"redis://127.0.0.1:{port}/0", None, None, f"local redis-server on port {port}"
            )
        if mode == "redis":
            raise UsageError("--broker redis: USQA_REDIS_URL is not set and redis-server is not installed")
        return local_stack.embedded_broker(self.out / "broker")
