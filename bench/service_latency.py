"""Service latency and throughput: raw onnxruntime and the service's per-frame work in-process (the limits),
the service over /assess and /ws/scan, and the naive PyTorch peer, at 1, 4 and 16 streams of 30 fps and
saturated, in one run.

    nice python -m bench.service_latency --registry models --name usqa-prostate --out runs/bench/service

Each server runs in its own process (`python -m usqa.service.api.cli serve`, `python -m bench.naive_peer`), started
by `usqa.local_stack` like every other part of usqa, with its output in OUT/logs/; this process generates the
load with asyncio clients (`bench.latency_load`) and reads the server's CPU time and RSS from /proc. Frames
are a simulated 128 px cine, PNG-encoded once up front. Targets (issue #service), checked in
`bench.latency_report`: WebSocket p99 <= 15 ms at 4 x 30 fps; saturated service throughput >= 75 % of raw
onnxruntime; >= 3x the peer; and its ratio to the same per-frame work in-process (decode, prepare, both
graphs, verdict).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.latency_load import (
    Result,
    cine,
    encode,
    http_streams,
    run_inprocess,
    run_raw,
    run_raw_batched,
    scenarios,
    ws_streams,
)
from bench.latency_report import BLOCK, markdown, plot, record_in_docs, verdicts
from bench.latency_servers import SERVER_START_TIMEOUT_S, Server, measured
from bench.machine import cpu_model
from docs_gen.blocks import check_block
from usqa.local_stack import free_port, start_api, start_server
from usqa.service.frames import prepare_frame
from usqa.service.inference.model import load_model
from usqa.service.inference.providers import plan_providers, plan_threads
from usqa.service.registry import ModelRegistry
from usqa.service.settings import Settings


def run(args: argparse.Namespace) -> list[Result]:
    registry = ModelRegistry(args.registry)
    version = registry.load(args.name)
    settings = Settings(registry=args.registry, model_name=args.name)
    threads = plan_threads(settings.inference_workers, settings.intra_op_threads)
    model = load_model(
        version,
        target_rejection=settings.target_rejection,
        providers=plan_providers(settings.providers, settings.require_provider),
        intra_op_threads=threads.intra_op_threads,
    )
    frames = cine(model.spec.size)
    payloads = encode(frames)
    prepared = np.stack([prepare_frame(f, model.spec) for f in frames])
    results: list[Result] = []
    duration = args.duration

    def note(result: Result) -> None:
        print(f"{result.line()}  cpu {result.cpu_cores}  rss {result.rss_mb} MB", flush=True)
        results.append(result)

    if "raw" in args.targets:
        for streams, fps in scenarios():
            note(run_raw(model, prepared, streams, fps, duration))
        note(run_raw_batched(model, prepared, threads.workers, settings.max_batch_frames, duration))
    if "inprocess" in args.targets:
        for streams, fps in scenarios():
            note(run_inprocess(model, payloads, streams, fps, duration))
    # Resolved: local_stack starts servers in the repository root, wherever this command runs.
    env = {**os.environ, "USQA_REGISTRY": str(args.registry.resolve()), "USQA_MODEL_NAME": args.name}
    env.pop("USQA_API_TOKEN", None)
    env.pop("USQA_REQUIRE_TOKEN_FOR_SCORING", None)
    logs = args.out / "logs"
    if {"assess", "ws"} & set(args.targets):
        port = free_port()
        api = start_api(
            port,
            env,
            logs / "api.log",
            log_level="warning",  # no access log line per frame in the process being measured
            ready_path="/readyz",
            timeout=SERVER_START_TIMEOUT_S,
        )
        server = Server(api, port)
        try:
            for streams, fps in scenarios():
                if "assess" in args.targets:
                    note(
                        measured(
                            server,
                            http_streams(server.base + "/assess", payloads, "assess", streams, fps, duration),
                        )
                    )
                if "ws" in args.targets:
                    note(measured(server, ws_streams(server.base, payloads, streams, fps, duration)))
        finally:
            server.stop()
    if "naive" in args.targets:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "bench.naive_peer",
            "--registry",
            str(args.registry.resolve()),
            "--name",
            args.name,
            "--port",
            str(port),
        ]
        if args.run is not None:
            command += ["--run", str(args.run.resolve())]
        if args.peer_torch_threads:
            command += ["--torch-threads", str(args.peer_torch_threads)]
        peer = start_server(
            "naive-peer", command, env, logs / "naive_peer.log", port, "/healthz", SERVER_START_TIMEOUT_S
        )
        server = Server(peer, port)
        try:
            for streams, fps in scenarios():
                note(
                    measured(
                        server,
                        http_streams(server.base + "/assess", payloads, "naive", streams, fps, duration),
                    )
                )
        finally:
            server.stop()
    return results


DOCS_FILE_DEFAULT = "docs/performance.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--run", type=Path, help="training run with the torch weights for the naive peer")
    parser.add_argument(
        "--peer-torch-threads",
        type=int,
        help="torch intra-op threads of the naive peer (default torch's; use 1 on a host other jobs share, where "
        "torch's OpenMP pool stalls)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--targets", default="raw,inprocess,assess,ws,naive")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/service"))
    parser.add_argument(
        "--docs",
        default=DOCS_FILE_DEFAULT,  # a str: Path("") would be "." and never mean "no"
        help="record the figures in this page's generated block `service` ('' = no)",
    )
    parser.add_argument(
        "--render", type=Path, help="only re-record a saved service_latency.json into the docs (no measuring)"
    )
    args = parser.parse_args(argv)
    docs = Path(args.docs) if args.docs else None
    if docs is not None:
        check_block(docs, BLOCK)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        rows, meta = saved["results"], saved["meta"]
        args.out = args.render.parent
    else:
        args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        rows = [r.row() for r in run(args)]
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {
            "peer_torch_threads": args.peer_torch_threads,
            "registry": str(args.registry),
            "name": args.name,
            "duration_s": args.duration,
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        (args.out / "service_latency.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    table = markdown(rows)
    (args.out / "service_latency.md").write_text(table + "\n\n" + "\n".join(verdicts(rows)) + "\n")
    plot(rows, args.out / "service_latency.png")
    print(table)
    print("\n".join(verdicts(rows)))
    print(f"results in {args.out}")
    if docs is not None:
        record_in_docs(docs, table, verdicts(rows), meta, args.out / "service_latency.png")
        print(f"recorded in {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
