"""A retraining job whose run fails its verdict: refused before export unless the spec forces it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from usqa.service.datasets.uploads import DatasetStore
from usqa.service.jobs.spec import JobSpec
from usqa.service.registry import ModelRegistry
from usqa.trainer.amenability.acceptance import MSG_REFUSED_JOB
from usqa.trainer.jobs.retrain import JOB_REPORT_FILE, JobRefused, run_job

from ...service.conftest import MODEL_NAME, make_settings

FIRST, SECOND = "1" * 32, "2" * 32


def upload(store: DatasetStore, folder: Path, tmp_path: Path) -> str:
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent).as_posix())
    info, _ = store.add_archive(archive, archive.name)
    return info.id


def test_a_job_whose_run_fails_its_verdict_is_refused_unless_forced(tiny_data: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "models",
        data_root=tmp_path / "data",
        jobs_root=tmp_path / "jobs",
        work_root=tmp_path / "work",
    )
    store = DatasetStore(settings.data_root, max_unpacked_bytes=10**8, max_members=10_000)
    dataset = upload(store, tiny_data, tmp_path)
    spec = JobSpec(
        dataset=dataset, task="classify", config="debug"
    )  # a debug run never beats the trivial one
    with pytest.raises(JobRefused) as refused:
        run_job(FIRST, spec, settings, lambda event: None)
    assert str(refused.value).startswith(MSG_REFUSED_JOB.split("{reasons}")[0].format(what="export"))
    report = json.loads((settings.work_root / FIRST / JOB_REPORT_FILE).read_text())
    assert (
        report["version"] is None
        and not report["verdict"]["passed"]
        and report["refused"] == str(refused.value)
    )
    assert ModelRegistry(settings.registry).names() == []
    forced = run_job(SECOND, spec.model_copy(update={"force": True}), settings, lambda event: None)
    assert forced["version"] == 1 and not forced["verdict"]["passed"]
    assert forced["gate"]["passed"]  # forced through the gate too: the first version becomes champion
    manifest = ModelRegistry(settings.registry).load(MODEL_NAME, 1).manifest
    assert manifest.metrics["verdict"]["forced"]
