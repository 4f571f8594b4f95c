"""Faults: workers SIGKILLed mid-job, Redis stopped and restarted, tampered versions, the API killed, a full disk.

The job faults run on the deployment's topology without Docker (tests.support.topology: a private
redis-server, an API process, a worker process); the registry faults on the registry and an in-process server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.topology import Topology, free_port, wait_for
from usqa.client.archives import zip_folder
from usqa.service.registry import CHAMPION, IntegrityError, ModelRegistry, RegistryError
from usqa.service.registry.store import ALIASES_FILE, Aliases
from usqa.service.simulator import write_dataset

from ..service.conftest import MODEL_NAME, frame_of_level, png_bytes
from .conftest import Figures, cases, service_under_test

SECTION = "faults"

OVERRIDES = {"train_baseline": False, "episodes": 30, "steps_per_episode": 5, "batch_size": 16}
SHIPPED = Path(__file__).resolve().parents[2] / "models"


# The tests on this fixture inject their faults into a running stack whose worker trains: marked `torch`.
@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topo = Topology(tmp_path_factory.mktemp("faults"), redis_port=free_port(), model_name="usqa-faults")
    try:
        topo.start_redis()
        topo.start_api()
        topo.start_worker()
        source = write_dataset(
            topo.root / "source", frames=200, subjects=10, seed=4, size=64, preset="transrectal_prostate"
        )
        del source
        response = topo.upload(zip_folder(topo.root / "source", topo.root / "set.zip"))
        assert response.status_code == 201, response.text
        topo.extra_env["dataset"] = response.json()["id"]
        yield topo
    finally:
        topo.stop()


def _spec(topology: Topology, **overrides: int) -> dict[str, object]:
    return {
        "dataset": topology.extra_env["dataset"],
        "task": "classify",
        "config": "debug",
        "overrides": {**OVERRIDES, **overrides},
        "force": True,  # a debug run cannot beat the trivial predictor; these tests are about the jobs
    }


def _episode(topology: Topology, job_id: str) -> int:
    return int((topology.job(job_id).get("progress") or {}).get("episode") or 0)


class VersionWatch:
    """Loads every visible version (sha256-verified) in a loop: any failure is a partial version seen."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        self.registry, self.name = registry, name
        self.problems: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(RegistryError):
                for version in self.registry.versions(self.name):
                    try:
                        self.registry.load(self.name, version)
                    except RegistryError as exc:
                        self.problems.append(str(exc))
            self.checks += 1
            time.sleep(0.05)

    def __enter__(self) -> VersionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _pool_children(worker: psutil.Process) -> list[psutil.Process]:
    return [p for p in worker.children(recursive=True) if p.is_running()]


@pytest.mark.torch
# Whole-worker kills wait for the broker's visibility timeout (55 s here) before the job is redelivered.
@pytest.mark.timeout(cases(300, 1500))
def test_worker_killed_mid_job_every_job_finishes_once(topology: Topology, figures: Figures) -> None:
    """Odd trials kill the pool process running the job (what the OOM killer does); even trials of the full
    run kill the whole worker with its children (a machine dying) and start a new one."""
    trials = cases(1, 10)
    registry = ModelRegistry(topology.registry)
    with VersionWatch(registry, topology.model_name) as watch:
        for trial in range(trials):
            whole_worker = trial % 2 == 1
            job_id = topology.retrain(_spec(topology)).json()["id"]
            wait_for(lambda job_id=job_id: _episode(topology, job_id) >= 2, 90, "the job to be training")
            worker = topology.workers[-1]
            assert worker.popen is not None
            if whole_worker:
                worker.kill_group()
                topology.start_worker()
            else:
                for child in _pool_children(psutil.Process(worker.popen.pid)):
                    child.send_signal(signal.SIGKILL)
            figures.count("worker_kills_whole" if whole_worker else "worker_kills_pool_process")
            started = time.monotonic()
            job = topology.wait_job(job_id, timeout=180)
            figures.peak("slowest_recovery_s", round(time.monotonic() - started, 1))
            figures.count("kill_trials")
            figures.count("jobs_finished_after_kill", job["state"] == "SUCCESS")
            published = [
                v
                for v in registry.versions(topology.model_name)
                if registry.manifest(topology.model_name, v).job_id == job_id
            ]
            figures.count("jobs_published_more_than_once", len(published) > 1)
            assert job["state"] == "SUCCESS", job
            assert published == [job["report"]["version"]]
    figures.count("partial_versions_seen", len(watch.problems))
    figures.count("registry_checks_during_kills", watch.checks)
    assert watch.problems == [] and watch.checks > 0


def _png() -> bytes:
    return png_bytes(frame_of_level(90, shape=(64, 64), seed=2))


@pytest.mark.torch
def test_redis_stopped_and_restarted(topology: Topology, figures: Figures) -> None:
    stop = threading.Event()
    outcomes: list[int] = []

    def score() -> None:
        with httpx.Client(base_url=topology.apis[0][1], timeout=10) as client:
            while not stop.is_set():
                try:
                    outcomes.append(
                        client.post(
                            "/assess", content=_png(), headers={"Content-Type": "image/png"}
                        ).status_code
                    )
                except httpx.HTTPError:
                    outcomes.append(0)
                time.sleep(1 / 30)

    scorer = threading.Thread(target=score)
    scorer.start()
    try:
        time.sleep(1)
        topology.stop_redis()
        down = [topology.retrain(_spec(topology)) for _ in range(3)]
        with topology.client() as client:
            down.append(client.get("/jobs"))
        figures.count("retrain_calls_while_redis_down", len(down))
        figures.count("retrain_calls_not_503_while_redis_down", sum(r.status_code != 503 for r in down))
        time.sleep(2)
        topology.start_redis()
        restarted = time.monotonic()
        wait_for(
            lambda: topology.retrain(_spec(topology, episodes=2)).status_code == 202,
            60,
            "retraining to recover",
        )
        figures.peak("retrain_recovery_after_redis_restart_s", round(time.monotonic() - restarted, 2))
        time.sleep(1)
    finally:
        stop.set()
        scorer.join()
    figures.count("frames_scored_during_outage", len(outcomes))
    figures.count("scoring_errors_during_outage", sum(code != 200 for code in outcomes))
    assert all(r.status_code == 503 for r in down)
    assert outcomes and all(code == 200 for code in outcomes)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.torch
def test_api_killed_and_restarted(topology: Topology, figures: Figures) -> None:
    before = _tree_hashes(topology.registry)
    proc, url = topology.apis[0]
    proc.kill_group()
    started = time.monotonic()
    new_url = topology.start_api()
    wait_for(lambda: httpx.get(f"{new_url}/readyz", timeout=2).status_code == 200, 60, "the restarted API")
    figures.peak("api_ready_after_kill_s", round(time.monotonic() - started, 2))
    after = _tree_hashes(topology.registry)
    figures.count("registry_files_changed_by_kill", sum(before.get(k) != v for k, v in after.items()))
    assert before == after
    topology.apis[0] = topology.apis.pop()
    del url


def test_tampered_or_corrupt_versions_are_refused(
    reliability_registry: Path, tmp_path: Path, figures: Figures
) -> None:
    root = tmp_path / "service"
    with service_under_test(reliability_registry, root, registry_poll_s=0.5) as running:
        registry = ModelRegistry(root / "models")
        served = registry.resolve(MODEL_NAME, CHAMPION)
        good = registry.load(MODEL_NAME, served)
        sources = {n: good.path / n for n in good.manifest.files}
        for damage in ("flip a byte", "truncate", "corrupt the manifest"):
            version = registry.publish(good.manifest, sources)
            target = version.path / (
                "manifest.json" if damage == "corrupt the manifest" else "predictor.onnx"
            )
            data = bytearray(target.read_bytes())
            if damage == "flip a byte":
                data[len(data) // 2] ^= 0xFF
            else:
                data = data[: len(data) // 2]
            target.write_bytes(bytes(data))
            with pytest.raises(IntegrityError):
                registry.promote(MODEL_NAME, version.version)
            # A disk or hand edit pointing the alias at it anyway: the service must refuse it too.
            aliases = registry.aliases(MODEL_NAME)
            forced = Aliases({**aliases.current, CHAMPION: version.version}, aliases.history)
            (registry.root / MODEL_NAME / ALIASES_FILE).write_text(forced.to_json())
            wait_for(
                lambda v=version.version: (
                    (httpx.get(f"{running.live.http}/readyz").json().get("swap_failure") or {}).get("version")
                    == v
                ),
                15,
                "the service to refuse the damaged version",
            )
            ready = httpx.get(f"{running.live.http}/readyz").json()
            assessed = httpx.post(
                f"{running.live.http}/assess", content=_png(), headers={"Content-Type": "image/png"}
            )
            figures.count("damaged_versions")
            figures.count("damaged_versions_refused", ready["model"]["version"] == served)
            figures.count("scoring_errors_with_damaged_version", assessed.status_code != 200)
            assert ready["model"]["version"] == served and assessed.status_code == 200
            (registry.root / MODEL_NAME / ALIASES_FILE).write_text(aliases.to_json())


@contextlib.contextmanager
def _small_disk(path: Path, size_kb: int) -> Iterator[str]:
    """A real full disk (tmpfs of `size_kb`) where mounting is allowed; else the caller falls back."""
    path.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        yield "unavailable"
        return
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


PUBLISH_SCRIPT = """
import resource, signal, sys
from pathlib import Path
from usqa.service.registry import ModelRegistry
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[3])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
registry = ModelRegistry(sys.argv[1])
source = registry.load(sys.argv[2], "champion")
try:
    registry.publish(source.manifest, {n: Path(sys.argv[4]) / n for n in source.manifest.files})
except OSError as exc:
    print(f"refused: {exc}")
    sys.exit(3)
print("published")
"""


def test_disk_full_when_publishing_leaves_no_half_version(tmp_path: Path, figures: Figures) -> None:
    sources = tmp_path / "sources"
    shipped = ModelRegistry(SHIPPED).load("usqa-prostate", CHAMPION)
    shutil.copytree(shipped.path, sources)
    size = sum(p.stat().st_size for p in sources.iterdir())
    # The shipped registry as it is (every version it keeps) and half another version.
    held = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    with _small_disk(tmp_path / "disk", size_kb=(held + size // 2) // 1024) as kind:
        root = tmp_path / "disk" if kind == "tmpfs" else tmp_path / "plain"
        shutil.copytree(SHIPPED, root / "models")
        registry = ModelRegistry(root / "models")
        before = registry.versions("usqa-prostate")
        # tmpfs: the disk holds the shipped versions and half another; else each file may hold 16 KiB (EFBIG).
        limit = 0 if kind == "tmpfs" else 16 * 1024
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                PUBLISH_SCRIPT,
                str(registry.root),
                "usqa-prostate",
                str(limit),
                str(sources),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        leftovers = [
            p.name for p in (registry.root / "usqa-prostate").iterdir() if p.name.startswith(".tmp-")
        ]
        after = registry.versions("usqa-prostate")
        figures.count("full_disk_publishes", 1)
        figures.count("full_disk_publishes_refused", result.returncode == 3)
        figures.count("half_versions_visible", len(set(after) - set(before)))
        figures.count("temporary_folders_left", len(leftovers))
        figures.note(
            "disk full: a real ENOSPC on a tmpfs sized for the shipped registry and half a version"
            if kind == "tmpfs"
            else "disk full: simulated with RLIMIT_FSIZE (EFBIG) because mounting a tmpfs is not permitted here"
        )
        assert result.returncode == 3, result.stdout + result.stderr
        assert after == before and leftovers == []
        for version in after:
            registry.load("usqa-prostate", version)
