"""`make compose-test`: the images built and the compose stack proven on a real Docker engine.

    .venv/bin/python scripts/compose_test.py [--docs docs/deploy.md] [--build-network host] [--out DIR]

Builds the API, worker and proxy images, measures them (size, user, healthcheck, build tools and caches left,
torch and trainer/ in the API image, healthchecks failing when the service cannot answer), brings the stack up
scaled out (redis, the proxy, 2 API replicas, 2 workers; a generated token, production settings) and checks
through the published port what a user would try: /readyz, POST /assess on a PNG and a DICOM, /ws/scan,
/metrics, a data-set upload, two debug retrain jobs (one per worker) to SUCCESS, a promotion every replica
serves without a restart, a worker killed mid-job (the job is redelivered and publishes once), an API replica
killed while the proxy keeps serving, and every container still healthy (the workers also while one
trains). `down -v` runs at the end, also when a step fails. On success it prints
one summary line and rewrites docs/deploy.md's generated block. Without a reachable engine or compose it
prints a "skipped" line and exits 0. TORCH_INDEX_URL, when set, is the worker build's torch index.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a file: the repository's packages come first

from usqa.demo import zip_folder  # noqa: E402
from usqa.local_stack import free_port, wait_for  # noqa: E402

T = TypeVar("T")
PROJECT = "usqa-compose-test"
COMPOSE_FILES = ("docker-compose.yml", "docker/compose-test.yml")
IMAGES = {  # image -> (Dockerfile, the compose service that runs it)
    "usqa-api": ("docker/api.Dockerfile", "api"),
    "usqa-worker": ("docker/worker.Dockerfile", "worker"),
    "usqa-proxy": ("docker/proxy.Dockerfile", "proxy"),
}
API_REPLICAS = 2
WORKERS = 2
SERVED_MODEL = "usqa-prostate"
SIDE_MODEL = "usqa-compose-test"  # jobs that must not touch the served model publish here
PRESET = "transrectal_prostate"
# A debug job that runs long enough to be killed mid-training and still ends well inside the soft time limit
# docker/compose-test.yml sets (its visibility timeout decides when the killed job comes back).
LONG_JOB_OVERRIDES = {"train_baseline": False, "episodes": 20, "steps_per_episode": 5, "batch_size": 16}
READY_MARKERS = {  # service -> the log line that says it is ready
    "api": "Application startup complete",
    "worker": " ready.",
    "proxy": " is UP, reason: Layer7 check passed",
}
BUILD_TIMEOUT_S = 3600
HEALTHY_TIMEOUT_S = 300
JOB_TIMEOUT_S = 300
REDELIVERY_TIMEOUT_S = 420
SWAP_TIMEOUT_S = 60
UNHEALTHY_TIMEOUT_S = 120
SCAN_SECONDS = 4.0
KILLED_API_REQUESTS = 30
DOCS_BEGIN = "<!-- generated:compose-test begin (make compose-test) -->"
DOCS_END = "<!-- generated:compose-test end -->"
MB = 1_000_000  # docker reports image sizes in decimal megabytes

# Run inside each image (all have Python): what a lean image must not carry.
PROBE = r"""
import importlib.util, json, os, shutil
def size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
caches = ("/root/.cache", "/srv/usqa/.cache", "/var/cache/apt", "/var/lib/apt/lists", "/tmp")
print(json.dumps({
    "build_tools": [t for t in ("gcc", "cc", "g++", "make", "clang") if shutil.which(t)],
    "cache_bytes": sum(size(p) for p in caches if os.path.isdir(p)),
    "torch": importlib.util.find_spec("torch") is not None,
    "trainer": os.path.isdir("/srv/usqa/trainer"),
}))
"""


class Failed(RuntimeError):
    """A step that did not do what a user expects; the message says which and why."""


def log(text: str) -> None:
    print(f"compose-test: {text}", flush=True)


def run(cmd: list[str], timeout: float, *, check: bool = True, env: dict[str, str] | None = None) -> str:
    """stdout of `cmd`; a non-zero exit raises `Failed` with the tail of its output."""
    try:
        result = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{' '.join(cmd[:4])} ... ran past {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise Failed(
            f"{' '.join(cmd[:4])} ... exited {result.returncode}: {(result.stderr or result.stdout)[-1500:]}"
        )
    return result.stdout


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    return run(["docker", *args], timeout, check=check)


def until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """`wait_for` with the message this script raises."""
    try:
        value = wait_for(predicate, timeout, what, interval=interval)
    except TimeoutError as exc:
        raise Failed(str(exc)) from exc
    assert value is not None
    return value


@contextmanager
def phase(times: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    try:
        yield
    finally:
        times[name] = time.monotonic() - started


# -- engine and compose -------------------------------------------------------------------------------------


def engine_version() -> str | None:
    if shutil.which("docker") is None:
        return None
    out = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False).strip()
    return out or None


def compose_command() -> tuple[list[str], str] | None:
    """Compose v2 (`docker compose`) or Debian's docker-compose v1, whichever is present, and its version."""
    v2 = run(["docker", "compose", "version", "--short"], 30, check=False).strip()
    if v2:
        return ["docker", "compose"], f"compose {v2}"
    if shutil.which("docker-compose"):
        v1 = run(["docker-compose", "version", "--short"], 30, check=False).strip()
        if v1:
            return ["docker-compose"], f"docker-compose {v1}"
    return None


class Stack:
    """The compose project this script owns: its own name, so it never touches another stack."""

    def __init__(self, command: list[str], token: str, port: int) -> None:
        files = [arg for f in COMPOSE_FILES for arg in ("-f", f)]
        self.command = [*command, "-p", PROJECT, *files]
        self.token = token
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
        self.env = {**env, "USQA_API_TOKEN": token, "USQA_ENVIRONMENT": "production", "HTTP_PORT": str(port)}

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return run([*self.command, *args], timeout, check=check, env=self.env)

    def containers(self, service: str, *, running: bool = True) -> list[str]:
        """Container ids of a service, in replica order."""
        filters = [
            f"label=com.docker.compose.project={PROJECT}",
            f"label=com.docker.compose.service={service}",
        ]
        ids = docker(
            "ps", *(["-a"] if not running else []), "-q", *(a for f in filters for a in ("--filter", f))
        )
        found = ids.split()
        return sorted(
            found,
            key=lambda c: int(inspect(c, '{{index .Config.Labels "com.docker.compose.container-number"}}')),
        )

    def all_containers(self) -> dict[str, list[str]]:
        return {service: self.containers(service) for service in ("redis", "proxy", "api", "worker")}

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


def inspect(container: str, template: str) -> str:
    return docker("inspect", "-f", template, container, timeout=30).strip()


def started_at(container: str) -> datetime:
    return docker_time(inspect(container, "{{.State.StartedAt}}"))


def container_logs(container: str, *, timestamps: bool = False) -> str:
    """A container's output, stdout and stderr together (uvicorn and Celery log to stderr)."""
    cmd = ["docker", "logs", *(["-t"] if timestamps else []), container]
    try:
        result = subprocess.run(
            cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"docker logs {container[:12]} ran past 60 s") from exc
    return result.stdout


def docker_time(stamp: str) -> datetime:
    """A timestamp as Docker writes it (nanoseconds, `Z` or an offset); Python reads microseconds."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp.strip())
    if match is None:
        raise Failed(f"unreadable Docker timestamp {stamp!r}")
    whole, fraction, zone = match.groups()
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]:0<6}{'+00:00' if zone == 'Z' else zone}")


def healthy_now(container: str, what: str) -> dict[str, tuple[float, int]]:
    """Fails unless the container's healthcheck says healthy; its recent checks (Docker keeps 5), by start
    time: (seconds taken, exit code)."""
    status = inspect(container, "{{.State.Health.Status}}")
    if status != "healthy":
        raise Failed(f"{container[:12]} is {status} {what}")
    checks = json.loads(inspect(container, "{{json .State.Health.Log}}") or "null") or []
    return {
        f"{container[:12]} {c['Start']}": (
            (docker_time(c["End"]) - docker_time(c["Start"])).total_seconds(),
            int(c["ExitCode"]),
        )
        for c in checks
    }


def ready_after_s(container: str, marker: str) -> float | None:
    """Seconds from the container's start to the first log line holding `marker` (Docker's timestamps)."""
    logs = container_logs(container, timestamps=True)
    for line in logs.splitlines():
        if marker in line:
            stamp = line.split(" ", 1)[0]
            return (docker_time(stamp) - started_at(container)).total_seconds()
    return None


def exec_json(container: str, url: str) -> dict[str, Any]:
    """GET `url` from inside a container (curl is in the API image): one replica, not whichever the proxy picks."""
    out = docker("exec", container, "curl", "-sS", "--max-time", "5", url, timeout=30)
    body: dict[str, Any] = json.loads(out)
    return body


# -- images -------------------------------------------------------------------------------------------------


def build_images(network: str, logs: Path) -> None:
    torch_index = os.environ.get("TORCH_INDEX_URL", "")
    for image, (dockerfile, _) in IMAGES.items():
        args = (
            ["--build-arg", f"TORCH_INDEX_URL={torch_index}"]
            if image == "usqa-worker" and torch_index
            else []
        )
        cmd = ["docker", "build", "--network", network, "-f", dockerfile, "-t", image, *args, "."]
        log(f"building {image} (log: {logs / f'build-{image}.log'})")
        with (logs / f"build-{image}.log").open("w") as out:
            result = subprocess.run(
                cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S
            )
        if result.returncode != 0:
            tail = (logs / f"build-{image}.log").read_text(errors="replace")[-2000:]
            raise Failed(f"building {image} failed:\n{tail}")


def unhealthy_after_s(containers: dict[str, str]) -> dict[str, float]:
    """Seconds until each container's healthcheck reports unhealthy (they were started unable to serve)."""
    started = time.monotonic()
    result: dict[str, float] = {}

    def all_unhealthy() -> bool:
        for image, container in containers.items():
            if image not in result and inspect(container, "{{.State.Health.Status}}") == "unhealthy":
                result[image] = time.monotonic() - started
        return len(result) == len(containers)

    try:
        until(all_unhealthy, UNHEALTHY_TIMEOUT_S, "the healthchecks of services that cannot serve to fail")
    except Failed as exc:
        raise Failed(f"{exc}; still not unhealthy: {sorted(set(containers) - set(result))}") from exc
    return result


def measure_images() -> dict[str, dict[str, Any]]:
    """Size, user, healthcheck, leftovers, and how long each healthcheck takes to fail when it should."""
    table: dict[str, dict[str, Any]] = {}
    for image in IMAGES:
        probe = json.loads(
            docker("run", "--rm", "--user", "root", "--entrypoint", "python", image, "-c", PROBE)
        )
        table[image] = {
            "size_mb": int(inspect(image, "{{.Size}}")) / MB,
            "user": inspect(image, "{{.Config.User}}") or "root",
            "healthcheck": json.loads(inspect(image, "{{json .Config.Healthcheck.Test}}"))[-1],
            "healthcheck_timeout_s": int(inspect(image, "{{json .Config.Healthcheck.Timeout}}")) / 1e9,
            **probe,
        }
    # Each image started where it cannot serve, with a fast healthcheck: the API with no model to load, the
    # worker with no broker, the proxy with no API replica. Read-only root file systems, as in compose.
    # A start period of 0 s would mean "the image's" to Docker (the worker's is 180 s): 1 s overrides it.
    fast = ["--health-interval", "2s", "--health-retries", "2", "--health-start-period", "1s"]
    hardened = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--network", "none"]
    cannot_serve = {
        "usqa-api": ["-e", "USQA_MODEL_NAME=no-such-model"],
        "usqa-worker": ["-e", "USQA_REDIS_URL=redis://no-such-host:6379/0", "--health-timeout", "20s"],
        "usqa-proxy": [],
    }
    containers: dict[str, str] = {}
    try:
        for image, extra in cannot_serve.items():
            containers[image] = docker("run", "-d", *fast, *hardened, *extra, image).strip()
        for image, seconds in unhealthy_after_s(containers).items():
            table[image]["unhealthy_after_s"] = seconds
    finally:
        for container in containers.values():
            docker("rm", "-f", container, check=False)
    return table


# -- what a user tries --------------------------------------------------------------------------------------


def png_frame(size: int = 128) -> bytes:
    import cv2

    from service.simulator import simulate_cine

    ok, data = cv2.imencode(".png", next(iter(simulate_cine(PRESET, 1, seed=5, size=size))).image)
    assert ok
    return bytes(data.tobytes())


def dicom_frames(size: int = 128, frames: int = 3) -> bytes:
    """A small ultrasound cine as a DICOM file (what a scanner exports)."""
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    from service.simulator import simulate_cine

    pixels = np.stack([f.image for f in simulate_cine(PRESET, frames, seed=6, size=size)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.3.1")  # Ultrasound Multi-frame Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise Failed(f"{what}: {response.status_code} instead of {status}: {response.text[:500]}")
    body: dict[str, Any] = response.json() if "json" in response.headers.get("content-type", "") else {}
    return body


def check_user_paths(stack: Stack) -> dict[str, Any]:
    """/readyz, /assess (PNG, DICOM), /ws/scan, /metrics and the token, all through the proxy."""
    from service.live.client import stream_frames
    from service.simulator import simulate_cine

    with stack.client() as c:
        ready = expect(c.get("/readyz"), 200, "GET /readyz")
        png = expect(
            c.post("/assess", content=png_frame(), headers={"Content-Type": "image/png"}), 200, "PNG"
        )
        dicom = expect(
            c.post("/assess", content=dicom_frames(), headers={"Content-Type": "application/dicom"}),
            200,
            "DICOM",
        )
        with stack.client(token=False) as anonymous:
            expect(anonymous.get("/jobs"), 401, "GET /jobs without the token")
    frames = [f.image for f in simulate_cine(PRESET, 30, seed=7, size=128)]
    deadline = time.monotonic() + SCAN_SECONDS
    ws_url = stack.base.replace("http://", "ws://") + "/ws/scan"
    report = asyncio.run(
        asyncio.wait_for(
            stream_frames(
                ws_url, frames, fps=15, token=stack.token, until=lambda: time.monotonic() > deadline
            ),
            SCAN_SECONDS + 60,
        )
    )
    if report.results == 0 or report.errors:
        raise Failed(f"/ws/scan: {report.results} results, {report.errors} errors")
    metrics = httpx.get(f"{stack.base}/metrics", timeout=30)
    if metrics.status_code != 200 or "usqa_inference_count_total" not in metrics.text:
        raise Failed(f"/metrics: {metrics.status_code}")
    return {
        "version": ready["model"]["version"],
        "png_frames": len(png["frames"]),
        "dicom_frames": len(dicom["frames"]),
        "scan_results": report.results,
        "scan_p99_ms": report.percentiles.get("p99"),
    }


def upload_dataset(stack: Stack, root: Path) -> str:
    from service.simulator import write_dataset

    write_dataset(root / "data", frames=240, subjects=12, seed=3, size=64, preset=PRESET, force=True)
    archive = zip_folder(root / "data", root / "data.zip")
    with stack.client() as c, archive.open("rb") as f:
        body = expect(
            c.post("/datasets", files={"file": (archive.name, f, "application/zip")}), 201, "upload"
        )
    return str(body["id"])


def submit(stack: Stack, dataset: str, model: str, overrides: dict[str, Any] | None = None) -> str:
    spec = {
        "dataset": dataset,
        "task": "classify",
        "config": "debug",
        "model": model,
        "overrides": overrides or {},
    }
    with stack.client() as c:
        return str(expect(c.post("/retrain", json=spec), 202, "POST /retrain")["id"])


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    with stack.client() as c:
        return expect(c.get(f"/jobs/{job_id}"), 200, f"GET /jobs/{job_id}")


def wait_job(stack: Stack, job_id: str, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        status = job(stack, job_id)
        return status if status["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

    status = until(finished, timeout, f"job {job_id}", interval=1.0)
    if status["state"] != "SUCCESS":
        raise Failed(f"job {job_id} ended {status['state']}: {status.get('error')}")
    return status


def job_worker(stack: Stack, job_id: str) -> str:
    """The worker container that stored the job's latest state (Celery's extended result names its node)."""
    redis = stack.containers("redis")[0]
    meta = json.loads(
        docker("exec", redis, "redis-cli", "--raw", "GET", f"celery-task-meta-{job_id}") or "{}"
    )
    hostname = str(meta.get("worker") or "").split("@")[-1]
    workers = stack.containers("worker", running=False)
    for container in workers:
        if inspect(container, "{{.Config.Hostname}}") == hostname:
            return container
    # No node name stored yet: the worker whose log says it received the job (the latest one to).
    received = [c for c in workers if f"[{job_id}] received" in container_logs(c)]
    if len(received) == 1:
        return received[0]
    raise Failed(f"job {job_id}: no worker container is node {meta.get('worker')!r} (received by {received})")


def versions(stack: Stack, model: str) -> list[int]:
    with stack.client() as c:
        response = c.get(f"/models/{model}")
    return (
        [] if response.status_code == 404 else list(expect(response, 200, f"GET /models/{model}")["versions"])
    )


def run_two_jobs(stack: Stack, dataset: str) -> dict[str, Any]:
    """Two debug jobs at once: each worker takes one (prefetch 1, one job at a time)."""
    served = submit(stack, dataset, SERVED_MODEL)
    side = submit(stack, dataset, SIDE_MODEL)
    reports = {job_id: wait_job(stack, job_id, JOB_TIMEOUT_S)["report"] for job_id in (served, side)}
    workers = {job_id: job_worker(stack, job_id) for job_id in (served, side)}
    if len(set(workers.values())) != 2:
        raise Failed(f"both jobs ran on one worker: {workers}")
    checks = {k: v for c in stack.containers("worker") for k, v in healthy_now(c, "after its job").items()}
    return {
        "served_job": served,
        "version": reports[served]["version"],
        "promoted": reports[served]["promoted"],
        "worker_healthcheck_s": checks,
    }


def promote_everywhere(stack: Stack, version: int) -> None:
    """POST promote, then every replica's own /readyz serves `version`, none restarted."""
    apis = stack.containers("api")
    starts = {c: inspect(c, "{{.State.StartedAt}} {{.RestartCount}}") for c in apis}
    with stack.client() as c:
        expect(c.post(f"/models/{SERVED_MODEL}/promote", json={"ref": str(version)}), 200, "promote")
    for container in apis:

        def serves(container: str = container) -> bool:
            readiness = exec_json(container, "http://127.0.0.1:8000/readyz")
            return bool((readiness.get("model") or {}).get("version") == version)

        until(serves, SWAP_TIMEOUT_S, f"replica {container[:12]} to serve version {version}")
    if {c: inspect(c, "{{.State.StartedAt}} {{.RestartCount}}") for c in apis} != starts:
        raise Failed("an API replica restarted during the promotion")


def kill_worker_mid_job(stack: Stack, dataset: str) -> dict[str, Any]:
    """A long debug job; `docker kill` its worker at episode 2; it comes back, finishes once, publishes once."""
    before = versions(stack, SIDE_MODEL)
    job_id = submit(stack, dataset, SIDE_MODEL, LONG_JOB_OVERRIDES)
    until(
        lambda: ((job(stack, job_id).get("progress") or {}).get("episode") or 0) >= 2,
        JOB_TIMEOUT_S,
        "the long job to be mid-training",
    )
    victim = job_worker(stack, job_id)
    # Its healthcheck keeps passing while a job trains (the worker's main process answers the ping).
    checks = healthy_now(victim, "while training")
    episode = (job(stack, job_id).get("progress") or {}).get("episode")
    killed_at = time.monotonic()
    docker("kill", victim)
    log(f"killed worker {victim[:12]} at episode {episode} of job {job_id}")
    status = wait_job(stack, job_id, REDELIVERY_TIMEOUT_S)
    finisher = job_worker(stack, job_id)
    if finisher == victim:
        raise Failed("the killed worker finished the job")
    published = sorted(set(versions(stack, SIDE_MODEL)) - set(before))
    if published != [status["report"]["version"]]:
        raise Failed(f"job {job_id} published {published}, expected exactly [{status['report']['version']}]")
    # trainer.api logs "resumed <work root>/<job id>/... at episode N" when a delivery finds the checkpoint.
    resumed_at = [
        int(line.rsplit(" ", 1)[-1])
        for line in container_logs(finisher).splitlines()
        if "resumed /" in line and f"/{job_id}/" in line and line.rsplit(" ", 1)[-1].isdigit()
    ]
    return {
        "killed_at_episode": episode,
        "back_after_s": time.monotonic() - killed_at,
        "version": published[0],
        "resumed_at_episode": resumed_at[-1] if resumed_at else None,
        "worker_healthcheck_s": checks,
    }


def kill_one_api(stack: Stack) -> dict[str, Any]:
    """`docker kill` one replica; every request through the proxy right after still gets its answer."""
    apis = stack.containers("api")
    docker("kill", apis[-1])
    png = png_frame()
    failures: list[str] = []
    started = time.monotonic()
    with httpx.Client(base_url=stack.base, timeout=30) as c:
        for i in range(KILLED_API_REQUESTS):
            response = (
                c.get("/readyz")
                if i % 2
                else c.post("/assess", content=png, headers={"Content-Type": "image/png"})
            )
            if response.status_code != 200:
                failures.append(
                    f"{response.request.method} {response.request.url.path}: {response.status_code}"
                )
            time.sleep(0.1)
    if failures:
        raise Failed(
            f"with one API replica killed, {len(failures)} of {KILLED_API_REQUESTS} failed: {failures[:5]}"
        )
    return {"served": KILLED_API_REQUESTS, "seconds": time.monotonic() - started}


# -- the run ------------------------------------------------------------------------------------------------


def wait_healthy(stack: Stack) -> dict[str, float | None]:
    """Every container healthy (each has a healthcheck); then each one's start-up to ready, from its log."""
    expected = {"redis": 1, "proxy": 1, "api": API_REPLICAS, "worker": WORKERS}

    def healthy() -> bool:
        containers = stack.all_containers()
        for service, count in expected.items():
            if len(containers[service]) != count:
                return False
            for container in containers[service]:
                status = inspect(container, "{{.State.Health.Status}}")
                if status == "unhealthy":
                    raise Failed(f"{service} {container[:12]} is unhealthy")
                if status != "healthy":
                    return False
        return True

    until(healthy, HEALTHY_TIMEOUT_S, "every container to be healthy", interval=2.0)
    ready: dict[str, float | None] = {}
    for service, marker in READY_MARKERS.items():
        seconds = [ready_after_s(c, marker) for c in stack.containers(service)]
        known = [s for s in seconds if s is not None]
        ready[service] = max(known) if known else None
    return ready


def check_read_only(stack: Stack) -> None:
    for service in ("proxy", "api", "worker"):
        for container in stack.containers(service):
            if inspect(container, "{{.HostConfig.ReadonlyRootfs}}") != "true":
                raise Failed(f"{service} {container[:12]} has a writable root file system")


def save_logs(stack: Stack, out: Path) -> None:
    text = stack.compose("logs", "--no-color", "--tail", "200", timeout=120, check=False)
    (out / "compose.log").write_text(text)
    log(f"container logs: {out / 'compose.log'}")


def scenario(stack: Stack, times: dict[str, float], out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with phase(times, "up"):
        stack.compose(
            "up", "-d", "--no-build", "--scale", f"api={API_REPLICAS}", "--scale", f"worker={WORKERS}"
        )
        results["ready_s"] = wait_healthy(stack)
        check_read_only(stack)
    with phase(times, "user checks"):
        results["user"] = check_user_paths(stack)
    with phase(times, "upload"), tempfile.TemporaryDirectory(prefix="usqa-compose-test-") as tmp:
        dataset = upload_dataset(stack, Path(tmp))
    with phase(times, "two jobs"):
        results["jobs"] = run_two_jobs(stack, dataset)
    with phase(times, "promotion"):
        promote_everywhere(stack, results["jobs"]["version"])
    with phase(times, "worker kill"):
        results["worker_kill"] = kill_worker_mid_job(stack, dataset)
    with phase(times, "api kill"):
        results["api_kill"] = kill_one_api(stack)
    # Every container left running still passes its healthcheck at the end (the workers after their jobs).
    final = {c: healthy_now(c, "at the end of the run") for cs in stack.all_containers().values() for c in cs}
    worker_checks = {
        **results["jobs"]["worker_healthcheck_s"],
        **results["worker_kill"]["worker_healthcheck_s"],
        **{k: v for c in stack.containers("worker") for k, v in final[c].items()},
    }
    results["worker_healthcheck_max_s"] = max(seconds for seconds, _ in worker_checks.values())
    results["worker_healthcheck_failed"] = sum(1 for _, code in worker_checks.values() if code != 0)
    results["worker_healthchecks"] = len(worker_checks)
    return results


def summary_line(versions_text: str, times: dict[str, float], results: dict[str, Any], total: float) -> str:
    wk, ak = results["worker_kill"], results["api_kill"]
    resumed = (
        "started over"
        if wk["resumed_at_episode"] is None
        else f"resumed from its checkpoint at episode {wk['resumed_at_episode']}"
    )
    return (
        f"compose-test passed in {total:.0f} s ({versions_text}): build {times['build']:.0f} s, "
        f"up to healthy ({API_REPLICAS} APIs behind the proxy, {WORKERS} workers) {times['up']:.0f} s, "
        f"/readyz + /assess PNG and DICOM + /ws/scan ({results['user']['scan_results']} results) + /metrics "
        f"{times['user checks']:.0f} s, upload {times['upload']:.0f} s, 2 debug jobs on 2 workers "
        f"{times['two jobs']:.0f} s, promotion to v{results['jobs']['version']} served by every replica "
        f"{times['promotion']:.0f} s, worker killed at episode {wk['killed_at_episode']} -> redelivered, "
        f"{resumed}, "
        f"SUCCESS once, one new version {times['worker kill']:.0f} s, API replica killed -> "
        f"{ak['served']}/{ak['served']} requests served {times['api kill']:.0f} s, down -v {times['down']:.0f} s"
    )


def render_docs(images: dict[str, dict[str, Any]], results: dict[str, Any], summary: str, meta: str) -> str:
    ready: dict[str, float | None] = results["ready_s"]
    ready_by_image = {image: ready.get(service) for image, (_, service) in IMAGES.items()}
    rows = [
        "| image | size | user | start-up to ready | healthcheck | unhealthy when it cannot serve | build tools | "
        "caches | torch | trainer/ |",
        "| --- | ---: | --- | ---: | --- | --- | --- | ---: | --- | --- |",
    ]
    cannot = {"usqa-api": "no model to load", "usqa-worker": "no broker", "usqa-proxy": "no API replica"}
    for image, m in images.items():
        seconds = ready_by_image[image]
        rows.append(
            f"| `{image}` | {m['size_mb']:.0f} MB | {m['user']} | "
            f"{'-' if seconds is None else f'{seconds:.1f} s'} | `{m['healthcheck'][:60]}` | "
            f"after {m['unhealthy_after_s']:.0f} s ({cannot[image]}) | {', '.join(m['build_tools']) or 'none'} | "
            f"{m['cache_bytes'] / 1e6:.1f} MB | {'yes' if m['torch'] else 'no'} | {'yes' if m['trainer'] else 'no'} |"
        )
    return "\n".join(
        [
            DOCS_BEGIN,
            f"Generated by `make compose-test` ({meta}).",
            "",
            *rows,
            "",
            "Start-up to ready: container start to the API's uvicorn start-up (model loaded, warmed up), the "
            "worker's Celery `ready`, the proxy's first replica UP, from the containers' log timestamps, in the "
            "scaled-out stack. Unhealthy: each image started alone where it cannot serve, healthcheck every 2 s, 1 s "
            "start period, "
            "2 retries. Caches: bytes under /root/.cache, /srv/usqa/.cache, apt's archives and lists, /tmp. Every "
            "app container runs with a read-only root file system (`read_only: true`, checked in the run). "
            "Every container was healthy after the jobs, the workers also while one trained, and the workers' "
            f"healthcheck (a Celery ping of the node through the broker) took at most "
            f"{results['worker_healthcheck_max_s']:.1f} s of its "
            f"{images['usqa-worker']['healthcheck_timeout_s']:.0f} s timeout; "
            f"{results['worker_healthcheck_failed']} of the {results['worker_healthchecks']} worker checks "
            "Docker kept (its last 5 per container at each look) failed.",
            "",
            "```text",
            summary,
            "```",
            DOCS_END,
        ]
    )


def write_docs(path: Path, block: str) -> None:
    text = path.read_text()
    if DOCS_BEGIN in text and DOCS_END in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + block + rest.split(DOCS_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "deploy.md", help="page to update")
    parser.add_argument("--no-docs", action="store_true", help="leave the docs alone")
    parser.add_argument("--build-network", default="host", help="docker build --network (default: host)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "runs" / "compose-test", help="build and container logs"
    )
    args = parser.parse_args(argv)

    server = engine_version()
    if server is None:
        log("skipped: no Docker engine is reachable (no `docker` command, or `docker info` fails)")
        return 0
    found = compose_command()
    if found is None:
        log(f"skipped: Docker {server} answers but neither `docker compose` nor docker-compose is installed")
        return 0
    command, compose_version = found
    versions_text = f"docker {server}, {compose_version}"
    log(f"using {versions_text}")
    args.out.mkdir(parents=True, exist_ok=True)
    stack = Stack(command, secrets.token_urlsafe(24), free_port())
    times: dict[str, float] = {}
    began = time.monotonic()
    passed = False
    try:
        stack.compose(
            "down", "-v", "--remove-orphans", timeout=180, check=False
        )  # a run killed before its end
        with phase(times, "build"):
            build_images(args.build_network, args.out)
        with phase(times, "image checks"):
            images = measure_images()
        results = scenario(stack, times, args.out)
        passed = True
    except (Failed, httpx.HTTPError, TimeoutError, OSError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        if not passed:
            save_logs(stack, args.out)
        with phase(times, "down"):
            stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
    if not passed:
        return 1
    summary = summary_line(versions_text, times, results, time.monotonic() - began)
    print(summary, flush=True)
    (args.out / "results.json").write_text(
        json.dumps({"images": images, "times": times, **results}, indent=2)
    )
    if not args.no_docs:
        meta = (
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
            f"{os.cpu_count()} cores, {versions_text}"
        )
        write_docs(args.docs, render_docs(images, results, summary, meta))
        log(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
