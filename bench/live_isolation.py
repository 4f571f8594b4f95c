"""A live stream beside hostile uploads (issue 28): a 10 fps /ws/scan stream's round trip while two clients post,
over and over, a DICOM that takes seconds to decode; beside the limit and a naive peer, in one run.

    python -m bench.live_isolation --registry models --name usqa-prostate

Rows, each a 10 fps stream of the simulated cine that `bench.service_latency` plays (PNG frames at the model's
size), for `--duration` s:

- `inprocess`: the service's own per-frame work called in this process (decode, prepare, both graphs, the
  verdict): the limit, what a frame costs with no I/O, no queue and no neighbour;
- `service alone`: the service (`usqa serve` with its defaults, started by `usqa.local_stack`), the stream alone;
- `service + uploads`: the same service while two clients post the hostile DICOM (`bench.isolation_load`) to
  /assess in a loop; its uploads decode in the decode lane, a process of its own (the default);
- `naive peer + uploads`: the same service with USQA_DECODE_LANE_PROCESSES=0, so the uploads decode in a thread
  of the serving process, as a plain server decodes uploads in its thread pool.

Every stream goes through `usqa.client` (`AsyncClient.play`). Target (issue 28): the stream's p99 stays under
100 ms beside the two uploads; checked in `bench.isolation_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.isolation_load import (
    HOSTILE_FRAMES,
    HOSTILE_SIDE,
    UploadTally,
    hostile_dicom,
    stream_beside_uploads,
)
from bench.isolation_report import BLOCK, markdown, record_in_docs, verdicts
from bench.latency_load import cine, encode, run_inprocess
from bench.latency_servers import SERVER_START_TIMEOUT_S
from bench.machine import cpu_model
from bench.process_tree import pid_of, tree_cpu_s, tree_rss_mb
from docs_gen.blocks import check_block, invocation
from usqa.local_stack import free_port, start_api
from usqa.service.inference.model import load_model
from usqa.service.inference.providers import plan_providers, plan_threads
from usqa.service.registry import ModelRegistry
from usqa.service.settings import Settings

FPS = 10.0
UPLOADERS = 2
DOCS_FILE_DEFAULT = "docs/performance.md"


def _row(target: str, what: str, result: Any, tally: UploadTally | None, **extra: Any) -> dict[str, Any]:
    row = result.row()
    row.update(target=target, what=what, max_ms=round(max(result.latencies_ms, default=float("nan")), 2))
    row.update(tally.row() if tally is not None else {"uploads_answered": 0, "uploads_decoded": 0})
    row.update(extra)
    return row


def _served(
    args: argparse.Namespace, payloads: list[bytes], hostile: bytes, lane_processes: bool, alone: bool
) -> list[dict[str, Any]]:
    """The service with its lane as processes (the default) or as a thread; the stream alone and beside uploads."""
    env = {
        **os.environ,
        "USQA_REGISTRY": str(args.registry.resolve()),
        "USQA_MODEL_NAME": args.name,
        "USQA_DECODE_LANE_PROCESSES": "1" if lane_processes else "0",
    }
    for name in ("USQA_API_TOKEN", "USQA_REQUIRE_TOKEN_FOR_SCORING"):
        env.pop(name, None)
    port = free_port()
    label = "lane-process" if lane_processes else "lane-thread"
    api = start_api(
        port,
        env,
        args.out / "logs" / f"api-{label}.log",
        log_level="warning",  # no access log line per frame in the process being measured
        ready_path="/readyz",
        timeout=SERVER_START_TIMEOUT_S,
    )
    base = f"http://127.0.0.1:{port}"
    root = pid_of(api)
    rows = []
    try:
        for uploaders in ([0] if alone else []) + [UPLOADERS]:
            tally = UploadTally()
            cpu0 = tree_cpu_s(root)
            started = time.perf_counter()
            result = asyncio.run(
                stream_beside_uploads(base, payloads, hostile, uploaders, FPS, args.duration, tally)
            )
            cores = (tree_cpu_s(root) - cpu0) / (time.perf_counter() - started)
            result.cpu_cores, result.rss_mb = round(cores, 2), round(tree_rss_mb(root), 1)
            target = ("service" if lane_processes else "naive peer") + (
                " + uploads" if uploaders else " alone"
            )
            what = f"usqa serve, decode lane {'processes' if lane_processes else 'a thread'}" + (
                f"; {uploaders} clients posting the hostile DICOM to /assess in a loop" if uploaders else ""
            )
            rows.append(_row(target, what, result, tally if uploaders else None))
            _print(rows[-1])
    finally:
        api.stop(timeout=20)
    return rows


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['target']:>22s}: p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f}"
        f" ms  frames {row['completed']}  dropped {row['dropped']}  uploads decoded {row['uploads_decoded']}",
        flush=True,
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    version = ModelRegistry(args.registry).load(args.name)
    settings = Settings(registry=args.registry, model_name=args.name)
    threads = plan_threads(settings.inference_workers, settings.intra_op_threads)
    model = load_model(
        version,
        target_rejection=settings.target_rejection,
        providers=plan_providers(settings.providers, settings.require_provider),
        intra_op_threads=threads.intra_op_threads,
    )
    payloads = encode(cine(model.spec.size))
    hostile = hostile_dicom()
    rows = [
        _row(
            "inprocess",
            "the service's per-frame work called in this process: decode, prepare, both graphs, verdict",
            run_inprocess(model, payloads, 1, FPS, args.duration),
            None,
        )
    ]
    _print(rows[-1])
    rows += _served(args, payloads, hostile, lane_processes=True, alone=True)
    rows += _served(args, payloads, hostile, lane_processes=False, alone=False)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of stream per row")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/isolation"))
    parser.add_argument(
        "--docs",
        default=DOCS_FILE_DEFAULT,  # a str: Path("") would be "." and never mean "no"
        help=f"record the figures in this page's generated block `{BLOCK}` ('' = no)",
    )
    args = parser.parse_args(argv)
    docs = Path(args.docs) if args.docs else None
    if docs is not None:
        check_block(docs, BLOCK)
    args.out.mkdir(parents=True, exist_ok=True)
    # The version run() loads and the servers serve (the registry's champion when the run starts).
    served = ModelRegistry(args.registry).load(args.name).manifest.version
    rows = run(args)
    meta = {
        "command": invocation("bench.live_isolation", argv),
        "registry": str(args.registry),
        "name": args.name,
        "version": served,
        "duration_s": args.duration,
        "fps": FPS,
        "uploaders": UPLOADERS,
        "hostile": f"{HOSTILE_FRAMES} JPEG 2000 frames of {HOSTILE_SIDE}x{HOSTILE_SIDE}",
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average": round(os.getloadavg()[0], 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (args.out / "live_isolation.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    table, lines = markdown(rows), verdicts(rows)
    (args.out / "live_isolation.md").write_text(table + "\n\n" + "\n".join(lines) + "\n")
    print(table)
    print("\n".join(lines))
    if docs is not None:
        record_in_docs(docs, table, lines, meta)
        print(f"recorded in {docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
