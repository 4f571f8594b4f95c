"""The parts `bench.deploy_footprint` starts and the work it gives them: streams, an upload, retraining jobs."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.process_tree import SAMPLE_S, PeakSampler, tree_cpu_s, tree_rss_mb
from usqa.client import Client
from usqa.local_stack import ManagedProcess, free_port, start_api, start_worker, wait_for

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
READY_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 600.0


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


def stream_load(base: str, api: psutil.Process, token: str, seconds: float) -> dict[str, Any]:
    """4 x 30 fps through /ws/scan for `seconds`; the API's CPU, RSS and the frames it answered."""
    from usqa.client import AsyncClient, StreamReport
    from usqa.service.live.sessions import percentiles_ms
    from usqa.service.simulator import simulate_cine

    cine = [f.image for f in simulate_cine(PRESET, CINE_FRAMES, seed=11, size=FRAME_SIZE)]

    async def play() -> list[StreamReport]:
        deadline = time.monotonic() + seconds
        # Each stream starts at another point of the cine, so the four are not in lockstep.
        streams = [
            cine[k * CINE_FRAMES // STREAMS :] + cine[: k * CINE_FRAMES // STREAMS] for k in range(STREAMS)
        ]
        async with AsyncClient(base, token=token) as usqa:
            return list(
                await asyncio.gather(
                    *(
                        usqa.play(frames, fps=STREAM_FPS, until=lambda: time.monotonic() > deadline)
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


def upload(base: str, token: str, archive: Path) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    with Client(base, token=token, timeout_s=300) as usqa:
        dataset = usqa.upload(archive)
    return dataset.body, time.perf_counter() - started


def pool_children(worker: psutil.Process) -> set[int]:
    """The worker's children, zombies included (a child's CPU time reaches the worker only once it is reaped)."""
    return {c.pid for c in worker.children(recursive=True)}


def run_job(base: str, token: str, worker: psutil.Process, dataset: str, config: str) -> dict[str, Any]:
    """One job through POST /retrain, followed by GET /jobs/{id}; the worker tree's CPU, peak RSS and wall time."""
    spec = {"dataset": dataset, "task": "classify", "config": config, "model": f"{JOB_MODEL}-{config}"}
    before = pool_children(worker)
    cpu0 = tree_cpu_s(worker)
    with Client(base, token=token) as usqa, PeakSampler(worker) as sampler:
        started = time.perf_counter()
        job_id = usqa.retrain(spec).id

        def finished() -> dict[str, Any] | None:
            job = usqa.job(job_id)
            return job.body if job.finished else None

        found = wait_for(finished, JOB_TIMEOUT_S, f"job {job_id} ({config})", interval=SAMPLE_S)
        job: dict[str, Any] = found or {}
        wall = time.perf_counter() - started
        # The pool child that ran the job exits after it (one job per child): wait until it is reaped, so its
        # CPU time has moved into the worker's children_* counters.
        wait_for(lambda: not (before & pool_children(worker)), 30, "the job's pool child to be replaced")
    cpu = tree_cpu_s(worker) - cpu0
    if job["state"] != "SUCCESS":
        raise RuntimeError(f"{config} job ended {job['state']}: {job.get('error')}")
    from usqa.trainer.recipe.presets import preset

    resolved = preset(config, "classify")
    return {
        "config": config,
        "job_id": job_id,
        "frames": DATASET_FRAMES,
        "input_px": resolved.frame.size,
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
