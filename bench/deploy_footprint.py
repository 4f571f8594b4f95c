"""What each deployed part costs: Redis, one API replica and one retraining worker, measured as real processes.

    python -m bench.deploy_footprint [--out runs/bench/deploy] [--docs docs/deploy.md]

Starts a private redis-server, the API (`python -m usqa.service.api.cli serve`, the shipped `usqa-prostate` from a
temporary copy of `models/`) and a worker (`python -m usqa worker`) exactly as `usqa.local_stack` starts them
for the demo and the topology tests, all on 127.0.0.1, with the deployment's default settings. Measures, with
psutil on each process tree:

- cold start: launching the process to the API's /readyz 200 (model loaded and warmed up) or the worker's
  Celery "ready";
- the API's RSS once ready, then CPU, RSS and frames served while 4 WebSocket streams play a simulated cine at
  30 fps each through /ws/scan (the reference client, `usqa.client.AsyncClient.play`);
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
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.footprint_load import (
    DATASET_FRAMES,
    DATASET_SUBJECTS,
    FRAME_SIZE,
    JOB_CONFIGS,
    PRESET,
    SERVED_MODEL,
    STREAM_SECONDS,
    Stack,
    run_job,
    start_api_timed,
    start_worker_timed,
    stream_load,
    upload,
)
from bench.footprint_report import BLOCK, markdown
from bench.machine import cpu_model
from bench.process_tree import MB, pid_of, tree_pss_mb, tree_rss_mb
from docs_gen.blocks import check_block, invocation, replace_block
from usqa.local_stack import REPO_ROOT, start_redis
from usqa.service.registry import ModelRegistry

SETTLE_S = 2.0
DOCS_DEFAULT = Path("docs/deploy.md")


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
    from usqa.client.archives import zip_folder
    from usqa.service.simulator import write_dataset

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
    command = invocation("bench.deploy_footprint", argv)
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
