"""An adaptation through the retraining job (the plain function, no Celery): N = 64, exported and gated."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from usqa.service.datasets.uploads import DatasetStore
from usqa.service.jobs.records import new_job_id
from usqa.service.jobs.spec import JobSpec
from usqa.service.registry import CHAMPION, ModelRegistry
from usqa.service.simulator import write_dataset
from usqa.trainer.amenability.run import train
from usqa.trainer.jobs.retrain import JobRefused, run_job
from usqa.trainer.recipe.presets import preset
from usqa.trainer.release.export import ExportOptions, export_run

from ...service.conftest import make_settings

NAME = "usqa"


def _upload(store: DatasetStore, folder: Path) -> str:
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent).as_posix())
    info, _ = store.add_archive(archive, folder.name)
    return info.id


@pytest.fixture
def site(tmp_path: Path, tiny_data: Path) -> dict[str, Any]:
    """Settings, a champion with weights (trained on the fixture data), and the site's uploaded data set."""
    settings = make_settings(
        tmp_path / "models",
        data_root=tmp_path / "data",
        jobs_root=tmp_path / "jobs",
        work_root=tmp_path / "work",
        model_name=NAME,
    )
    run = tmp_path / "source-run"
    train(replace(preset("debug"), train_baseline=False), tiny_data, run, progress=False)
    registry = ModelRegistry(settings.registry)
    export_run(run, registry, ExportOptions(name=NAME, alias=CHAMPION, force=True), data_dir=tiny_data)
    folder = tmp_path / "upload" / "abdomen"
    write_dataset(folder, frames=120, subjects=8, seed=9, size=64, preset="curvilinear_abdomen", workers=1)
    store = DatasetStore(settings.data_root, max_unpacked_bytes=10**8, max_members=1000)
    return {"settings": settings, "dataset": _upload(store, folder), "registry": registry}


def test_an_adaptation_with_64_labels_reaches_a_gate_decision(site: dict[str, Any]) -> None:
    spec = JobSpec(
        dataset=site["dataset"],
        task="classify",
        adapt_from=f"{NAME}@{CHAMPION}",
        labels=64,
        adapt_mode="finetune",
        overrides={"steps": 5, "seed": 1},
        force=True,  # a 5-step debug adaptation does not beat the trivial predictor; the gate still runs
    )
    events: list[dict[str, Any]] = []
    report = run_job(new_job_id(), spec, site["settings"], events.append)
    assert report["version"] == 2 and report["adaptation"]["source"] == f"{NAME}:1"
    assert report["adaptation"]["options"]["labels"] == 64
    gate = report["gate"]
    assert gate["champion_version"] == 1 and gate["challenger_version"] == 2
    assert gate["sets"][0]["name"] == "new data holdout" and gate["sets"][0]["dataset"] == site["dataset"]
    assert report["promoted"] == gate["passed"]  # auto-promotion is on in these settings
    assert any(e.get("stage") == "adapting" for e in events)
    assert "weights.npz" in site["registry"].manifest(NAME, 2).files


def test_an_adaptation_of_a_missing_version_is_refused(site: dict[str, Any]) -> None:
    spec = JobSpec(dataset=site["dataset"], task="classify", adapt_from=f"{NAME}:9", labels=8)
    with pytest.raises(JobRefused, match="has no version '9'"):
        run_job(new_job_id(), spec, site["settings"], lambda _: None)
