"""What each deployed part costs: Redis, one API replica and one retraining worker, measured as real processes.

    python -m bench.deploy_footprint [--out runs/bench/deploy] [--docs docs/deploy.md]

Starts a private redis-server, the API (`python -m service.api.cli serve`, the shipped `usqa-prostate` from a
temporary copy of `models/`) and a worker (`python -m usqa worker`) exactly as `usqa.local_stack` starts them
for the demo and the topology tests, all on 127.0.0.1, with the deployment's default settings. Measures, with
psutil on each process tree:

- cold start: launching the process to the API's /readyz 200 (model loaded and warmed up) or the worker's
  Celery "ready";
- the API's RSS once ready, then CPU, RSS and frames served while 4 WebSocket streams play a simulated cine at
  30 fps each through /ws/scan (the reference client, `service.live.client.stream_frames`);
- the worker's RSS idle, then wall time, CPU seconds and peak RSS (the worker and its pool child, sampled every
  0.2 s) of one retraining job per budget preset (`demo`, `debug`) on a simulated data set uploaded through
  POST /datasets; each job publishes into its own model name, so no champion exists and the gate compares
  nothing;
- redis-server's RSS.

Prints a table, writes runs/bench/deploy/footprint.json, and records the table in docs/deploy.md's generated
block `footprint` (`--render FILE` re-records a saved JSON without measuring).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.service_latency import cpu_model
from docs_gen.blocks import check_block, replace_block
from service.registry import ModelRegistry
from usqa.local_stack import (
    REPO_ROOT,
    ManagedProcess,
    free_port,
    start_api,
    start_redis,
    start_worker,
    wait_for,
)

SERVED_MODEL = "usqa-prostate"
JOB_MODEL = "usqa-footprint"  # + "-<config>": a model of its own per job, never the served one
JOB_CONFIGS = ("demo", "debug")
PRESET = "transrectal_prostate"
DATASET_FRAMES = 1200
DATASET_SUBJECTS = 24
FRAME_SIZE = 128
STREAMS = 4
STREAM_FPS = 30.0
STREAM_SECONDS = 20.0
CINE_FRAMES = 90
SAMPLE_S = 0.2
PSS_EVERY = 5  # PSS once a second: reading it costs the bench a few ms per process
READY_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 600.0
SETTLE_S = 2.0
MB = 2**20

BLOCK = "footprint"
DOCS_DEFAULT = Path("docs/deploy.md")


# -- process trees ----------------------------------------------------------------------------------------


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_mb(root: psutil.Process) -> float:
    """RSS of a process and its children; pages a fork shares count once in each (an upper bound)."""
    total = 0
    for proc in _tree(root):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def _pss_bytes(pid: int) -> int:
    # smaps_rollup: one walk of the page tables (a few ms for a torch process), so it is sampled less often.
    with Path(f"/proc/{pid}/smaps_rollup").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_pss_mb(root: psutil.Process) -> float:
    """PSS of a process and its children: each shared page is split between its sharers, so the sum is what
    the tree really holds (RSS stands in where the kernel has no smaps_rollup)."""
    total = 0
    for proc in _tree(root):
        try:
            total += _pss_bytes(proc.pid)
        except FileNotFoundError:
            continue  # exited between the listing and the read
        except OSError:
            total += proc.memory_info().rss
    return total / MB


def tree_cpu_s(root: psutil.Process) -> float:
    """CPU seconds of a process and its children, reaped children included (Linux adds them to the parent)."""
    total = 0.0
    for proc in _tree(root):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class PeakSampler:
    """Samples a process tree's RSS every `SAMPLE_S` seconds (and its PSS every `PSS_EVERY` samples) in a
    thread; keeps the peaks."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss_mb = max(self.peak_rss_mb, tree_rss_mb(self.root))
            if self.samples % PSS_EVERY == 0:
                self.peak_pss_mb = max(self.peak_pss_mb, tree_pss_mb(self.root))
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- the parts ------------------------------------------------------------------------------------------


@dataclass
class Stack:
    root: Path
    token: str
    redis_port: int = field(default_factory=free_port)
    processes: list[ManagedProcess] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
        env.update(
            {
                "USQA_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "USQA_REGISTRY": str(self.root / "models"),
                "USQA_DATA_ROOT": str(self.root / "data"),
                "USQA_JOBS_ROOT": str(self.root / "jobs"),
                "USQA_WORK_ROOT": str(self.root / "work"),
                "USQA_MODEL_NAME": SERVED_MODEL,
                "USQA_API_TOKEN": self.token,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def start_api_timed(stack: Stack) -> tuple[ManagedProcess, str, float]:
    """(process, base URL, seconds from launch to /readyz 200)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = start_api(port, stack.env(), stack.root / "logs" / "api.log")
    stack.processes.append(proc)

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, READY_TIMEOUT_S, "the API's /readyz", interval=0.05)
    return proc, base, time.perf_counter() - started


def start_worker_timed(stack: Stack) -> tuple[ManagedProcess, float]:
    started = time.perf_counter()
    proc = start_worker(stack.env(), stack.root / "logs" / "worker.log")
    stack.processes.append(proc)
    return proc, time.perf_counter() - started


def pid_of(proc: ManagedProcess) -> psutil.Process:
    assert proc.popen is not None
    return psutil.Process(proc.popen.pid)


# -- API under streams ----------------------------------------------------------------------------------


def stream_load(base: str, api: psutil.Process, token: str, seconds: float) -> dict[str, Any]:
    """4 x 30 fps through /ws/scan for `seconds`; the API's CPU, RSS and the frames it answered."""
    from service.live.client import StreamReport, stream_frames
    from service.live.sessions import percentiles_ms
    from service.simulator import simulate_cine

    cine = [f.image for f in simulate_cine(PRESET, CINE_FRAMES, seed=11, size=FRAME_SIZE)]
    url = base.replace("http://", "ws://") + "/ws/scan"

    async def play() -> list[StreamReport]:
        deadline = time.monotonic() + seconds
        # Each stream starts at another point of the cine, so the four are not in lockstep.
        streams = [
            cine[k * CINE_FRAMES // STREAMS :] + cine[: k * CINE_FRAMES // STREAMS] for k in range(STREAMS)
        ]
        return list(
            await asyncio.gather(
                *(
                    stream_frames(
                        url, frames, fps=STREAM_FPS, token=token, until=lambda: time.monotonic() > deadline
                    )
                    for frames in streams
                )
            )
        )

    cpu0, wall0 = tree_cpu_s(api), time.perf_counter()
    with PeakSampler(api) as sampler:
        reports = asyncio.run(play())
    wall = time.perf_counter() - wall0
    cpu = tree_cpu_s(api) - cpu0
    latencies = [ms for r in reports for ms in r.latencies_ms]
    pct = percentiles_ms(latencies)
    return {
        "streams": STREAMS,
        "fps": STREAM_FPS,
        "seconds": round(wall, 1),
        "sent": sum(r.sent for r in reports),
        "results": sum(r.results for r in reports),
        "errors": sum(r.errors for r in reports),
        "dropped": sum(int((r.summary or {}).get("frames", {}).get("dropped", 0)) for r in reports),
        "served_fps": round(sum(r.results for r in reports) / wall, 1),
        "cpu_s": round(cpu, 2),
        "cpu_percent_of_core": round(100 * cpu / wall, 1),
        "rss_peak_mb": round(sampler.peak_rss_mb, 1),
        "rss_end_mb": round(tree_rss_mb(api), 1),
        "p50_ms": pct["p50"],
        "p99_ms": pct["p99"],
    }


# -- retraining jobs --------------------------------------------------------------------------------------


def upload(base: str, token: str, archive: Path) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    with (
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client,
        archive.open("rb") as f,
    ):
        response = client.post("/datasets", files={"file": (archive.name, f, "application/zip")})
    response.raise_for_status()
    return dict(response.json()), time.perf_counter() - started


def pool_children(worker: psutil.Process) -> set[int]:
    """The worker's children, zombies included (a child's CPU time reaches the worker only once it is reaped)."""
    return {c.pid for c in worker.children(recursive=True)}


def run_job(base: str, token: str, worker: psutil.Process, dataset: str, config: str) -> dict[str, Any]:
    """One job through POST /retrain, followed by GET /jobs/{id}; the worker tree's CPU, peak RSS and wall time."""
    spec = {"dataset": dataset, "task": "classify", "config": config, "model": f"{JOB_MODEL}-{config}"}
    headers = {"Authorization": f"Bearer {token}"}
    before = pool_children(worker)
    cpu0 = tree_cpu_s(worker)
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client, PeakSampler(worker) as sampler:
        started = time.perf_counter()
        queued = client.post("/retrain", json=spec)
        queued.raise_for_status()
        job_id = queued.json()["id"]

        def finished() -> dict[str, Any] | None:
            job = dict(client.get(f"/jobs/{job_id}").json())
            return job if job["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

        found = wait_for(finished, JOB_TIMEOUT_S, f"job {job_id} ({config})", interval=SAMPLE_S)
        job: dict[str, Any] = found or {}
        wall = time.perf_counter() - started
        # The pool child that ran the job exits after it (one job per child): wait until it is reaped, so its
        # CPU time has moved into the worker's children_* counters.
        wait_for(lambda: not (before & pool_children(worker)), 30, "the job's pool child to be replaced")
    cpu = tree_cpu_s(worker) - cpu0
    if job["state"] != "SUCCESS":
        raise RuntimeError(f"{config} job ended {job['state']}: {job.get('error')}")
    from trainer.config import preset

    resolved = preset(config, "classify")
    return {
        "config": config,
        "job_id": job_id,
        "frames": DATASET_FRAMES,
        "input_px": resolved.frame_size,
        "episodes": resolved.episodes,
        "wall_s": round(wall, 1),
        "job_s": job["report"].get("seconds"),
        "cpu_s": round(cpu, 1),
        "cpu_cores": round(cpu / wall, 2),
        "rss_peak_mb": round(sampler.peak_rss_mb, 1),
        "pss_peak_mb": round(sampler.peak_pss_mb, 1),
        "samples": sampler.samples,
        "promoted": job["report"].get("promoted"),
    }


# -- the run -----------------------------------------------------------------------------------------------


def torch_threads() -> int:
    """What torch picks in a worker started with this environment (the bench passes it on unchanged)."""
    import torch

    return int(torch.get_num_threads())


@contextmanager
def scratch(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="usqa-footprint-") as tmp:
        yield Path(tmp)


def measure(stream_seconds: float, keep: Path | None) -> dict[str, Any]:
    from service.simulator import write_dataset
    from usqa.demo import zip_folder

    began = time.perf_counter()
    meta: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%d %H:%M"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "torch_threads": torch_threads(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    with scratch(keep) as root:
        shutil.copytree(REPO_ROOT / "models", root / "models")
        served = ModelRegistry(root / "models").load(SERVED_MODEL).manifest
        meta["served"] = {
            "name": served.name,
            "version": served.version,
            "input_px": served.preprocessing.get("size"),
        }
        write_dataset(
            root / "source",
            frames=DATASET_FRAMES,
            subjects=DATASET_SUBJECTS,
            seed=3,
            size=FRAME_SIZE,
            preset=PRESET,
            force=True,
        )
        archive = zip_folder(root / "source", root / "upload.zip")
        archive_mb = archive.stat().st_size / MB
        stack = Stack(root, secrets.token_urlsafe(16))
        try:
            redis = start_redis(stack.redis_port, root / "redis")
            stack.processes.append(redis)
            redis_ps = pid_of(redis)
            redis_start_mb = tree_rss_mb(redis_ps)

            api, base, api_cold_s = start_api_timed(stack)
            api_ps = pid_of(api)
            time.sleep(SETTLE_S)
            api_ready_mb = tree_rss_mb(api_ps)
            print(f"API ready in {api_cold_s:.1f} s, RSS {api_ready_mb:.0f} MB", flush=True)

            worker, worker_cold_s = start_worker_timed(stack)
            worker_ps = pid_of(worker)
            time.sleep(SETTLE_S)
            worker_idle_mb = tree_rss_mb(worker_ps)
            worker_idle_pss_mb = tree_pss_mb(worker_ps)
            print(f"worker ready in {worker_cold_s:.1f} s, RSS {worker_idle_mb:.0f} MB", flush=True)

            streams = stream_load(base, api_ps, stack.token, stream_seconds)
            print(f"streams: {streams}", flush=True)

            dataset, upload_s = upload(base, stack.token, archive)
            print(f"uploaded {dataset['id']} ({dataset['frames']} frames) in {upload_s:.1f} s", flush=True)
            jobs = []
            for config in JOB_CONFIGS:
                jobs.append(run_job(base, stack.token, worker_ps, dataset["id"], config))
                print(f"job: {jobs[-1]}", flush=True)
            time.sleep(SETTLE_S)
            worker_after_mb = tree_rss_mb(worker_ps)
            worker_after_pss_mb = tree_pss_mb(worker_ps)
            api_after_mb = tree_rss_mb(api_ps)
            redis_end_mb = tree_rss_mb(redis_ps)
        finally:
            stack.stop()
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["bench_s"] = round(time.perf_counter() - began, 1)
    return {
        "meta": meta,
        "redis": {"rss_start_mb": round(redis_start_mb, 1), "rss_end_mb": round(redis_end_mb, 1)},
        "api": {
            "cold_start_s": round(api_cold_s, 1),
            "rss_ready_mb": round(api_ready_mb, 1),
            "rss_after_mb": round(api_after_mb, 1),
            "upload_s": round(upload_s, 1),
            "upload_mb": round(archive_mb, 1),
            "streams": streams,
        },
        "worker": {
            "cold_start_s": round(worker_cold_s, 1),
            "rss_idle_mb": round(worker_idle_mb, 1),
            "pss_idle_mb": round(worker_idle_pss_mb, 1),
            "rss_after_jobs_mb": round(worker_after_mb, 1),
            "pss_after_jobs_mb": round(worker_after_pss_mb, 1),
            "jobs": jobs,
        },
    }


# -- the record ---------------------------------------------------------------------------------------------


def markdown(result: dict[str, Any], command: str) -> str:
    meta, api, worker, redis = result["meta"], result["api"], result["worker"], result["redis"]
    s = api["streams"]
    per_stream = s["cpu_percent_of_core"] / s["streams"]
    jobs = worker["jobs"]
    lines = [
        f"Generated by `{command}` on {meta['at']}: {meta['cores']} cores ({meta['cpu_model']}), Python "
        f"{meta['python']}, torch threads in the worker {meta['torch_threads']}, load average (1 min) "
        f"{meta['load_average_start'][0]} at the start and {meta['load_average_end'][0]} at the end: a shared "
        f"machine, other work ran beside the bench. Default settings, CPU only, every part on the same machine "
        f"(the stream client too). The API serves `{meta['served']['name']}` v{meta['served']['version']} "
        f"({meta['served']['input_px']} px input) from a copy of `models/`; stream frames are "
        f"{FRAME_SIZE} px PNG. The bench took {meta['bench_s']:.0f} s.",
        "",
        "| part | measure | value |",
        "| --- | --- | ---: |",
        f"| redis-server | RSS after start / after both jobs | {redis['rss_start_mb']:.0f} / "
        f"{redis['rss_end_mb']:.0f} MB |",
        f"| API | cold start: launch to `/readyz` 200 | {api['cold_start_s']:.1f} s |",
        f"| API | RSS once ready, idle | {api['rss_ready_mb']:.0f} MB |",
        f"| API | {s['streams']} streams x {s['fps']:g} fps through `/ws/scan` for {s['seconds']:.0f} s: frames "
        f"answered per second | {s['served_fps']:.1f} |",
        f"| API | same: CPU, % of one core | {s['cpu_percent_of_core']:.1f} % |",
        f"| API | same: peak RSS | {s['rss_peak_mb']:.0f} MB |",
        f"| API | same: round trip p50 / p99 | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms |",
        f"| API | same: frames dropped by the service / errors | {s['dropped']} / {s['errors']} |",
        f"| API | POST /datasets: {DATASET_FRAMES} frames at {FRAME_SIZE} px, a {api['upload_mb']:.0f} MB zip "
        f"| {api['upload_s']:.1f} s |",
        f"| API | RSS after the streams, the upload and both jobs | {api['rss_after_mb']:.0f} MB |",
        f"| worker | cold start: launch to Celery ready | {worker['cold_start_s']:.1f} s |",
        f"| worker | idle, worker + pool child: PSS (RSS) | {worker['pss_idle_mb']:.0f} "
        f"({worker['rss_idle_mb']:.0f}) MB |",
        f"| worker | idle after both jobs: PSS (RSS) | {worker['pss_after_jobs_mb']:.0f} "
        f"({worker['rss_after_jobs_mb']:.0f}) MB |",
        "",
        "One retraining job each, through POST /retrain on the uploaded data set (classify, weighted reward, "
        "REINFORCE; no champion to gate against):",
        "",
        "| job config | frames | input | episodes | wall time, POST to SUCCESS | CPU time | cores busy "
        "| peak PSS (RSS), worker + pool child |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for j in jobs:
        lines.append(
            f"| `{j['config']}` | {j['frames']} | {j['input_px']} px | {j['episodes']} | {j['wall_s']:.1f} s "
            f"| {j['cpu_s']:.1f} s | {j['cpu_cores']:.2f} | {j['pss_peak_mb']:.0f} ({j['rss_peak_mb']:.0f}) MB |"
        )
    lines += [
        "",
        "PSS splits each page that processes share between them, so the worker's sum is what it holds; RSS "
        "counts a shared page once per process (the pool child is a fork of the worker), an upper bound. Peak "
        "RSS is sampled every 0.2 s, peak PSS every second.",
        "",
        "Derived for sizing (arithmetic on the rows above, not measured separately):",
        "",
    ]
    if per_stream > 0:
        lines.append(
            f"- API CPU per {s['fps']:g} fps stream: {per_stream:.1f} % of a core, about "
            f"{100 / per_stream:.0f} such streams per fully used core if the cost per frame stays as measured"
        )
    biggest = max(jobs, key=lambda j: j["pss_peak_mb"])
    lines += [
        f"- memory: Redis {redis['rss_end_mb']:.0f} MB, an API replica {s['rss_peak_mb']:.0f} MB under load, a "
        f"worker {biggest['pss_peak_mb']:.0f} MB at its peak (`{biggest['config']}` job)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.deploy_footprint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench/deploy"))
    parser.add_argument("--docs", default=str(DOCS_DEFAULT), help="record the table here ('' = no)")
    parser.add_argument("--stream-seconds", type=float, default=STREAM_SECONDS)
    parser.add_argument(
        "--keep", type=Path, help="keep the stack's folder (logs, registry) here instead of a temp dir"
    )
    parser.add_argument("--render", type=Path, help="only re-record a saved footprint.json (no measuring)")
    args = parser.parse_args(argv)
    if args.docs:
        check_block(Path(args.docs), BLOCK)
    command = "python -m bench.deploy_footprint" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if args.render is not None:
        result = json.loads(args.render.read_text())
        command = result["meta"].get("command", command)
    else:
        result = measure(args.stream_seconds, args.keep)
        result["meta"]["command"] = command
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "footprint.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"results in {args.out / 'footprint.json'}")
    block = markdown(result, command)
    print(block)
    if args.docs:
        replace_block(Path(args.docs), BLOCK, block, module="bench.deploy_footprint")
        print(f"recorded in {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
