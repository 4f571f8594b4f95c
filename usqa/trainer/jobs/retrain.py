"""One retraining job, start to finish, as a plain function (the Celery task is a thin wrapper).

train (resuming from the job's checkpoint after a redelivery) -> export and publish (at most one version per
job id) -> `challenger` alias -> promotion gate -> `champion` when it passes and auto-promotion is on. Every
step is safe to repeat: a job redelivered after its worker died continues where the checkpoint and the
registry say it was, and never publishes twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from usqa.service.datasets.uploads import DatasetStore, UnknownDataset
from usqa.service.jobs.records import JobRecords
from usqa.service.jobs.spec import BACKBONES_DIR, JobSpec, SpecError, resolve_config
from usqa.service.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError, open_registry
from usqa.service.registry.announce import announcer_from_url
from usqa.service.settings import Settings
from usqa.trainer.adaptation.adapt import AdaptError
from usqa.trainer.amenability.acceptance import refusal
from usqa.trainer.amenability.run import RunError, train, write_predictor_backbone
from usqa.trainer.amenability.run_folder import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE, read_verdict
from usqa.trainer.engine.base import Callback, Engine, Logs
from usqa.trainer.engine.callbacks import ProgressHook
from usqa.trainer.jobs.adapt_job import run_adaptation
from usqa.trainer.jobs.adapt_job import summary as adaptation_summary
from usqa.trainer.jobs.promotion import decide
from usqa.trainer.recipe.config_files import read_config
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run

log = logging.getLogger(__name__)

# The job's work folder: the run folder (usqa.trainer.amenability.run_folder), the job's own report, its lock.
RUN_DIR = "run"
JOB_REPORT_FILE = "report.json"
LOCK_FILE = ".lock"
BASE_BACKBONE_FILE = "base_backbone.pt"

Report = Callable[[dict[str, Any]], None]


class JobCancelled(Exception):
    """The job's cancellation mark was seen; its work folder is removed."""


class JobBusy(Exception):
    """Another delivery of the same job holds its work folder (a transient state: retry later)."""


class JobRefused(ValueError):
    """The spec or its inputs cannot be trained (a permanent failure: no retry)."""


class CancelCheck(Callback):
    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self.cancelled = cancelled

    def on_iteration_end(self, engine: Engine, logs: Logs) -> None:
        if self.cancelled():
            raise JobCancelled("cancelled while training")


@contextlib.contextmanager
def job_lock(work: Path) -> Iterator[None]:
    work.mkdir(parents=True, exist_ok=True)
    with (work / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusy(f"job folder {work} is in use by another delivery") from None
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _initial_weights(spec: JobSpec, settings: Settings, work: Path) -> Path | None:
    """The backbone file the job starts from: a heated one, or the one of a base job's predictor."""
    if spec.backbone is not None:
        path = settings.data_root / BACKBONES_DIR / spec.backbone
        if not path.is_file():
            raise JobRefused(f"backbone {spec.backbone!r} is not in {settings.data_root / BACKBONES_DIR}")
        return path
    if spec.base_job is not None:
        base_run = settings.work_root / spec.base_job / RUN_DIR
        if not (base_run / MODEL_FILE).is_file():
            raise JobRefused(f"base job {spec.base_job} has no finished run on this worker's work root")
        # the RL trainer reads initial weights only as a backbone file: write the base predictor's
        try:
            return write_predictor_backbone(base_run, work / BASE_BACKBONE_FILE)
        except RunError as exc:
            raise JobRefused(str(exc)) from exc
    return None


def run_job(job_id: str, spec: JobSpec, settings: Settings, report: Report) -> dict[str, Any]:
    """Run job `job_id` (see the module docstring); returns the final report (also written as report.json)."""
    records = JobRecords(settings.jobs_root)
    work = settings.work_root / job_id

    def cancelled() -> bool:
        return records.cancel_requested(job_id)

    started = time.time()
    try:
        with job_lock(work):
            if cancelled():
                raise JobCancelled("cancelled before it started")
            result = _run_locked(job_id, spec, settings, work, report, cancelled)
    except JobCancelled:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result["seconds"] = round(time.time() - started, 1)
    (work / JOB_REPORT_FILE).write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


def _run_locked(
    job_id: str, spec: JobSpec, settings: Settings, work: Path, report: Report, cancelled: Callable[[], bool]
) -> dict[str, Any]:
    store = DatasetStore(
        settings.data_root,
        max_unpacked_bytes=settings.max_unpacked_bytes,
        max_members=settings.max_archive_members,
    )
    try:
        data_dir = store.path(spec.dataset)
        base = preset(spec.config, spec.task, spec.reward, spec.algo)
        config = resolve_config(spec, base, backbone_path=_initial_weights(spec, settings, work))
    except (UnknownDataset, SpecError) as exc:
        raise JobRefused(str(exc)) from exc
    name = spec.model or settings.model_name
    registry = open_registry(settings, announcer_from_url(settings.redis_url))
    run_dir = work / RUN_DIR
    adaptation: dict[str, Any] = {}

    version = registry.find_job(name, job_id)
    if version is None:
        if spec.adapt_from is not None:
            report({"stage": "adapting", "message": f"from {spec.adapt_from} with {spec.labels} labels"})
            try:
                adaptation = run_adaptation(
                    spec, registry, data_dir, run_dir, [ProgressHook(report), CancelCheck(cancelled)]
                )
            except AdaptError as exc:
                raise JobRefused(str(exc)) from exc
        else:
            resume = (run_dir / CHECKPOINT_FILE).is_file()
            report({"stage": "training", "message": "resuming from checkpoint" if resume else "starting"})
            train(
                config,
                data_dir,
                run_dir,
                callbacks=[ProgressHook(report), CancelCheck(cancelled)],
                resume=resume,
                progress=False,
            )
        if cancelled():
            raise JobCancelled("cancelled after training")
        report({"stage": "exporting"})
        classes = read_config(run_dir / CONFIG_FILE).num_classes
        class_names = spec.class_names or _champion_class_names(registry, name, classes)
        if class_names is not None and len(class_names) != classes:
            raise JobRefused(
                f"class_names has {len(class_names)} names but the data set has {classes} classes"
            )
        verdict = read_verdict(run_dir)
        refused = None if verdict is None else refusal(verdict, "export", job=True)
        if refused is not None and not spec.force:
            # The job report says why nothing was published; the job itself fails (no retry).
            refused_report: dict[str, Any] = {
                "job_id": job_id,
                "model": name,
                "version": None,
                "promoted": False,
            }
            refused_report |= {"verdict": verdict, "refused": refused}
            (work / JOB_REPORT_FILE).write_text(json.dumps(refused_report, indent=2, sort_keys=True))
            raise JobRefused(refused)
        published = export_run(
            run_dir,
            registry,
            ExportOptions(
                name=name,
                class_names=tuple(class_names) if class_names else None,
                job_id=job_id,
                dataset=spec.dataset,
                force=spec.force,
            ),
            data_dir=data_dir,
        )
        version = published.version
    else:
        log.info("job %s already published %s v%d; finishing its promotion", job_id, name, version)
        if spec.adapt_from is not None:
            adaptation = adaptation_summary(run_dir)

    registry.promote(name, version, alias=CHALLENGER)
    report({"stage": "gating", "message": f"comparing v{version} with the champion"})
    decision = decide(settings, registry, name, version, spec.dataset, force=spec.force, job=True)
    promoted = False
    if decision.passed and settings.auto_promote:
        registry.promote(name, version, alias=CHAMPION)
        promoted = True
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # model.pt stays: a later job may start from it
    log.info(
        "job %s: %s v%d %s (%s)",
        job_id,
        name,
        version,
        "promoted" if promoted else "not promoted",
        decision.reason,
    )
    result = {
        "job_id": job_id,
        "model": name,
        "version": version,
        "promoted": promoted,
        "auto_promote": settings.auto_promote,
        "gate": decision.to_dict(),
        "verdict": read_verdict(run_dir),
    }
    if spec.adapt_from is not None:
        result["adaptation"] = adaptation
    return result


def _champion_class_names(registry: ModelRegistry, name: str, classes: int) -> list[str] | None:
    """The champion's class names when it has as many classes (the same labels, most likely)."""
    try:
        names = list(registry.load(name, CHAMPION).manifest.class_names)
    except RegistryError:  # no champion yet, or one that does not load: the exporter numbers the classes
        return None
    return names if len(names) == classes else None
