"""Faults the suite had not met (issue 28): a registry that trusts nothing it reads, promotions that cannot load,
uploads killed mid-way, a full disk during an upload, and a job its broker lost.

- Manifests naming a graph outside the version folder (relative `..`, absolute) or leaving it unhashed (an empty
  `files`), forced onto the champion alias: never served, the running version stays.
- A version whose files are intact and hashed but whose graphs are garbage: promoting it (API and CLI) is
  refused, the champion stays, and a service started afterwards serves.
- An API SIGKILLed while it unpacks an upload, then started again: no staging folder remains.
- An upload onto a full disk (a real tmpfs where mounting is allowed, else a write that fails): a JSON error.
- A queued job whose Redis restarts without persistence: queued again on GET /jobs/{id}, then failed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import signal
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.support.topology import TOKEN, Topology, free_port, zip_folder
from usqa.cli import main
from usqa.local_stack import start_redis
from usqa.service.datasets.uploads import INCOMING_PREFIX, TMP_PREFIX
from usqa.service.registry import CHAMPION, IntegrityError, ModelRegistry, ModelVersion
from usqa.service.registry.store import ALIASES_FILE, Aliases
from usqa.service.simulator import write_dataset

from ..service.conftest import MODEL_NAME, frame_of_level, png_bytes
from .conftest import AUTH, Figures, ServiceUnderTest, error_body_problem, service_under_test

SECTION = "faults"
PADDING_BYTES: Final = 300 * 1024 * 1024  # zeros: a small archive that takes a while to unpack
KILL_WAIT_S: Final = 60.0


def _force_champion(registry: ModelRegistry, version: int) -> None:
    """Point the champion alias at `version` behind the registry's back (as a bad day or an attacker would)."""
    aliases = registry.aliases(MODEL_NAME)
    current = {**aliases.current, CHAMPION: version}
    (registry.root / MODEL_NAME / ALIASES_FILE).write_text(Aliases(current, aliases.history).to_json())


def _copy_version(registry: ModelRegistry, champion: ModelVersion, **manifest_changes: object) -> int:
    """A new version folder copied from `champion`, its manifest edited: what a hand-made version looks like."""
    number = max(registry.versions(MODEL_NAME)) + 1
    folder = registry.root / MODEL_NAME / str(number)
    shutil.copytree(champion.path, folder)
    manifest = champion.manifest.model_copy(update={"version": number, **manifest_changes})
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return number


@pytest.fixture(scope="module")
def trusted(
    reliability_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceUnderTest]:
    with service_under_test(reliability_registry, tmp_path_factory.mktemp("trust")) as running:
        yield running


def _served(service: ServiceUnderTest) -> int:
    return int(httpx.get(f"{service.live.http}/readyz", timeout=10).json()["model"]["version"])


def test_untrusted_manifests_are_never_served(
    trusted: ServiceUnderTest, figures: Figures, tmp_path: Path
) -> None:
    registry = ModelRegistry(trusted.root / "models")
    served = _served(trusted)
    champion = registry.load(MODEL_NAME, CHAMPION)
    outside = tmp_path / "outside.onnx"
    shutil.copyfile(champion.graph_path("controller"), outside)
    aliases = registry.aliases(MODEL_NAME)
    cases = {
        "a relative graph path out of the folder": {
            "graphs": {**champion.manifest.graphs, "controller": "../../x"}
        },
        "an absolute graph path": {"graphs": {**champion.manifest.graphs, "controller": str(outside)}},
        "no hashes at all": {"files": {}},
    }
    try:
        for label, changes in cases.items():
            _force_champion(registry, _copy_version(registry, champion, **changes))
            answer = httpx.post(
                f"{trusted.live.http}/models/{MODEL_NAME}/promote",
                json={"ref": CHAMPION},
                headers=AUTH,
                timeout=30,
            )
            now = _served(trusted)
            with pytest.raises(IntegrityError):  # what a replica starting now would read
                registry.load(MODEL_NAME, CHAMPION)
            figures.count("registry.untrusted_manifests")
            figures.count("registry.untrusted_manifests_served", now != served)
            assert answer.status_code == 409 and answer.json()["code"] == "integrity_error", label
            assert now == served, label
    finally:
        (registry.root / MODEL_NAME / ALIASES_FILE).write_text(aliases.to_json())


def test_a_version_that_cannot_load_is_never_promoted(
    trusted: ServiceUnderTest, reliability_registry: Path, figures: Figures, tmp_path: Path
) -> None:
    registry = ModelRegistry(trusted.root / "models")
    champion_before = registry.resolve(MODEL_NAME, CHAMPION)
    champion = registry.load(MODEL_NAME, CHAMPION)
    garbage = {}
    for name in champion.manifest.files:
        garbage[name] = tmp_path / name
        garbage[name].write_bytes(b"\x08\x01" * 4096)
    broken = registry.publish(
        champion.manifest.model_copy(update={"version": 0, "files": {}}), garbage
    ).version
    answer = httpx.post(
        f"{trusted.live.http}/models/{MODEL_NAME}/promote",
        json={"ref": str(broken)},
        headers=AUTH,
        timeout=60,
    )
    cli = main(["models", "--registry", str(registry.root), "promote", MODEL_NAME, str(broken)])
    figures.count("registry.unservable_promotions", 2)
    figures.count("registry.unservable_promotions_accepted", (answer.status_code != 409) + (cli != 2))
    assert answer.status_code == 409 and answer.json()["code"] == "unservable_version"
    assert cli == 2
    assert registry.resolve(MODEL_NAME, CHAMPION) == champion_before
    # The next replica to start serves (before, it found a champion it could not load: readyz 503).
    with service_under_test(reliability_registry, trusted.root) as fresh:
        ready = httpx.get(f"{fresh.live.http}/readyz", timeout=10)
    figures.count("registry.replicas_unready_after_refused_promotion", ready.status_code != 200)
    assert ready.status_code == 200


def _padded_archive(path: Path) -> Path:
    folder = path.parent / "set"
    write_dataset(folder, frames=12, subjects=4, seed=0, size=32, preset="transrectal_prostate")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "set/" + str(p.relative_to(folder)))
        with zf.open("set/padding.bin", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(PADDING_BYTES >> 20):
                member.write(chunk)
    return path


def _upload_ignoring_errors(url: str, archive: Path) -> None:
    with contextlib.suppress(httpx.HTTPError), archive.open("rb") as file:
        httpx.post(
            f"{url}/datasets",
            files={"file": ("set.zip", file)},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=KILL_WAIT_S,
        )


def _staging(data: Path) -> list[str]:
    if not data.is_dir():
        return []
    return sorted(p.name for p in data.iterdir() if p.name.startswith((TMP_PREFIX, INCOMING_PREFIX)))


def test_an_upload_killed_mid_way_leaves_no_staging_after_a_restart(
    reliability_registry: Path, tmp_path: Path, figures: Figures
) -> None:
    archive = _padded_archive(tmp_path / "archive" / "set.zip")
    topology = Topology(tmp_path / "stack", redis_port=free_port())
    shutil.copytree(reliability_registry, topology.registry)
    topology.model_name = MODEL_NAME
    topology.extra_env = {"USQA_MAX_UPLOAD_BYTES": str(64 << 20), "USQA_MAX_UNPACKED_BYTES": str(1 << 31)}
    data = topology.root / "data"
    try:
        url = topology.start_api()
        proc, _ = topology.apis[0]
        sender = threading.Thread(target=_upload_ignoring_errors, args=(url, archive), daemon=True)
        sender.start()
        deadline = time.monotonic() + KILL_WAIT_S
        while not any(name.startswith(TMP_PREFIX) for name in _staging(data)) and time.monotonic() < deadline:
            time.sleep(0.002)
        left_by_kill = _staging(data)
        proc.kill_group(signal.SIGKILL)
        sender.join(timeout=30)
        figures.count("uploads.killed_mid_way")
        assert left_by_kill, "the upload never reached its staging folder"
        topology.apis.clear()
        topology.start_api()
        left = _staging(data)
        figures.count("uploads.staging_left_after_restart", len(left))
        assert not left, f"left after a restart: {left}"
    finally:
        topology.stop()


@contextlib.contextmanager
def _small_disk(path: Path, size_kb: int) -> Iterator[bool]:
    path.mkdir(parents=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
            check=False,
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_during_an_upload_is_a_json_error(
    reliability_registry: Path, tmp_path: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _padded_archive(tmp_path / "archive" / "set.zip")
    with _small_disk(tmp_path / "disk", 8 * 1024) as mounted:
        if not mounted:  # no mount permission: a write that fails as a full disk does
            from usqa.service.api.routes import datasets

            def full(*_: object, **__: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(datasets.shutil, "copyfileobj", full)
        with (
            service_under_test(
                reliability_registry,
                tmp_path / "root",
                data_root=tmp_path / "disk" / "data",
                max_upload_bytes=64 << 20,
                max_unpacked_bytes=1 << 31,
            ) as running,
            archive.open("rb") as file,
        ):
            answer = httpx.post(
                f"{running.live.http}/datasets", files={"file": ("set.zip", file)}, headers=AUTH, timeout=120
            )
            frame = png_bytes(frame_of_level(90, seed=4))
            scored = httpx.post(
                f"{running.live.http}/assess",
                content=frame,
                headers={"Content-Type": "image/png"},
                timeout=30,
            )
        left = _staging(tmp_path / "disk" / "data")
    problem = error_body_problem(answer.status_code, answer.headers.get("content-type"), answer.content)
    figures.count("uploads.full_disk_cases")
    figures.count("uploads.full_disk_not_json", problem is not None or answer.status_code != 507)
    figures.count("uploads.full_disk_leftovers", len(left))
    figures.note(
        "full disk during an upload: a real ENOSPC on an 8 MiB tmpfs"
        if mounted
        else "full disk during an upload: ENOSPC raised by the copy (mounting a tmpfs is not permitted here)"
    )
    assert answer.status_code == 507 and problem is None, answer.text[:300]
    assert scored.status_code == 200 and not left


def test_a_job_the_broker_lost_is_queued_again_then_failed(tmp_path: Path, figures: Figures) -> None:
    topology = Topology(tmp_path / "stack", redis_port=free_port())
    topology.extra_env = {"USQA_JOB_MAX_RETRIES": "1"}
    try:
        # No persistence: a restart loses every queued message, as a Redis without AOF or RDB does.
        topology.redis = start_redis(topology.redis_port, topology.root / "redis", appendonly=False)
        topology.start_api()
        write_dataset(
            topology.root / "set", frames=24, subjects=4, seed=0, size=32, preset="transrectal_prostate"
        )
        uploaded = topology.upload(zip_folder(topology.root / "set", topology.root / "set.zip"))
        assert uploaded.status_code == 201, uploaded.text
        spec = {"dataset": uploaded.json()["id"], "task": "classify", "config": "debug", "force": True}
        job_id = topology.retrain(spec).json()["id"]  # no worker: it stays queued
        states = []
        for _ in range(2):
            topology.redis.stop()
            topology.redis = start_redis(topology.redis_port, topology.root / "redis", appendonly=False)
            _age_record(topology.root / "jobs" / f"{job_id}.json")
            states.append(topology.job(job_id))
        requeued, lost = states
        figures.count("jobs.lost_by_broker", 2)
        figures.count(
            "jobs.lost_left_pending",
            (requeued["state"] == "PENDING" and not requeued["note"]) + (lost["state"] != "FAILURE"),
        )
        assert requeued["state"] == "PENDING" and "queued again (1 of 1)" in requeued["note"]
        assert lost["state"] == "FAILURE" and "never ran" in lost["error"]
    finally:
        topology.stop()


def _age_record(path: Path) -> None:
    """The job looks a minute old: younger jobs are left alone (the broker may not show them yet)."""
    record = json.loads(path.read_text())
    record["created"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    path.write_text(json.dumps(record))
