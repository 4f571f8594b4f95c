"""Service latency and throughput: raw onnxruntime in-process (the limit), the service over /assess and
/ws/scan, and the naive PyTorch peer, at 1, 4 and 16 streams of 30 fps and saturated, in one run.

    nice python -m bench.service_latency --registry models --name usqa-prostate --out runs/bench/service

Each server runs in its own process (`python -m service.api.cli serve`, `python -m bench.naive_peer`), started
by `usqa.local_stack` like every other part of usqa, its output in OUT/logs/; this process generates the load with asyncio clients and reads the server's CPU time and RSS from /proc. Frames
are a simulated 128 px cine, PNG-encoded once up front. A paced stream sends one frame every 1/fps s: over
HTTP a frame that falls due while the stream's previous request is still out is skipped (dropped, as a
scanner would), over the WebSocket frames are sent on schedule and the service drops the stale ones.
A saturated stream sends its next frame as soon as the previous answer arrives. Targets (issue #service):
WebSocket p99 <= 15 ms at 4 x 30 fps; saturated service throughput >= 75 % of raw onnxruntime; >= 3x the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psutil

from docs_gen.blocks import check_block, replace_block, write_atomically
from service.frames import prepare_frame
from service.inference.model import LoadedModel, load_model
from service.inference.providers import plan_providers, plan_threads
from service.registry import ModelRegistry
from service.settings import Settings
from usqa.local_stack import ManagedProcess, free_port, start_api, start_server

STREAM_COUNTS = (1, 4, 16)
FPS = 30.0
CINE_FRAMES = 64
SERVER_START_TIMEOUT_S = 120.0
TARGET_WS_P99_MS = 15.0
TARGET_RAW_FRACTION = 0.75
TARGET_PEER_FACTOR = 3.0


@dataclass
class Result:
    target: str  # raw | assess | ws | naive
    streams: int
    fps: float | None  # None: saturated
    duration_s: float
    offered: int = 0  # frames that fell due (paced) or were sent (saturated)
    completed: int = 0
    dropped: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    cpu_cores: float | None = None  # CPU seconds per wall second of the serving process
    rss_mb: float | None = None

    def row(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        p50, p99 = np.percentile(lat, [50, 99])
        data = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        data.update(
            p50_ms=round(float(p50), 2),
            p99_ms=round(float(p99), 2),
            throughput_fps=round(self.completed / self.duration_s, 1),
            # Frames per CPU-second of the serving process: the fair comparison on a shared host.
            frames_per_cpu_s=round(self.completed / (self.cpu_cores * self.duration_s), 1)
            if self.cpu_cores
            else None,
            drop_rate=round(self.dropped / self.offered, 4) if self.offered else 0.0,
        )
        return data


# -- frames ----------------------------------------------------------------------------------------------


def cine(size: int) -> list[np.ndarray]:
    from service.simulator.cine import simulate_cine

    return [f.image for f in simulate_cine("transrectal_prostate", CINE_FRAMES, seed=7, size=size)]


def encode(frames: Sequence[np.ndarray]) -> list[bytes]:
    return [bytes(cv2.imencode(".png", f)[1].tobytes()) for f in frames]


# -- raw onnxruntime ------------------------------------------------------------------------------------


def run_raw(
    model: LoadedModel, prepared: np.ndarray, streams: int, fps: float | None, duration: float
) -> Result:
    """Each stream a thread calling the graphs directly on prepared frames (batch 1)."""
    result = Result("raw", streams, fps, duration)
    lock = threading.Lock()
    process = psutil.Process()
    stop_at = time.perf_counter() + duration

    def stream(index: int) -> None:
        period = 1.0 / fps if fps else 0.0
        next_due = time.perf_counter() + index * period / max(streams, 1)
        i = index
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            if period and now < next_due:
                time.sleep(next_due - now)
                continue
            started = time.perf_counter()
            model.run(prepared[i % len(prepared)][None])
            elapsed = (time.perf_counter() - started) * 1000
            skipped = 0
            if period:
                next_due += period
                while next_due < time.perf_counter():  # frames that fell due while busy
                    next_due += period
                    skipped += 1
            with lock:
                result.offered += 1 + skipped
                result.completed += 1
                result.dropped += skipped
                result.latencies_ms.append(elapsed)
            i += 1

    cpu0 = sum(process.cpu_times()[:2])
    threads = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.cpu_cores = round((sum(process.cpu_times()[:2]) - cpu0) / duration, 2)
    result.rss_mb = round(process.memory_info().rss / 2**20, 1)
    return result


def run_raw_batched(
    model: LoadedModel, prepared: np.ndarray, workers: int, batch: int, duration: float
) -> Result:
    """The ceiling with batching: one thread per worker running `batch` frames per call."""
    result = Result(f"raw-batch{batch}", workers, None, duration)
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration
    frames = np.ascontiguousarray(np.resize(prepared, (batch, *prepared.shape[1:])))

    def work() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            model.run(frames)
            with lock:
                result.completed += batch
                result.offered += batch
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

    process = psutil.Process()
    cpu0 = sum(process.cpu_times()[:2])
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.cpu_cores = round((sum(process.cpu_times()[:2]) - cpu0) / duration, 2)
    result.rss_mb = round(process.memory_info().rss / 2**20, 1)
    return result


# -- servers ---------------------------------------------------------------------------------------------


class Server:
    """A serving process started through `usqa.local_stack`; CPU and RSS are read from its /proc entry."""

    def __init__(self, proc: ManagedProcess, port: int) -> None:
        if proc.popen is None:
            raise ValueError(f"{proc.name} was never started")
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.process = psutil.Process(proc.popen.pid)

    def cpu_seconds(self) -> float:
        return float(sum(self.process.cpu_times()[:2]))

    def rss_mb(self) -> float:
        return round(self.process.memory_info().rss / 2**20, 1)

    def stop(self) -> None:
        self.proc.stop(timeout=20)


def measured(server: Server, scenario: Coroutine[Any, Any, Result]) -> Result:
    cpu0 = server.cpu_seconds()
    result = asyncio.run(scenario)
    result.cpu_cores = round((server.cpu_seconds() - cpu0) / result.duration_s, 2)
    result.rss_mb = server.rss_mb()
    return result


# -- load generators ---------------------------------------------------------------------------------------


async def http_streams(
    url: str, payloads: list[bytes], target: str, streams: int, fps: float | None, duration: float
) -> Result:
    result = Result(target, streams, fps, duration)
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration

        async def stream(index: int) -> None:
            period = 1.0 / fps if fps else 0.0
            next_due = loop.time() + index * period / streams
            i = index
            while loop.time() < stop_at:
                if period and loop.time() < next_due:
                    await asyncio.sleep(next_due - loop.time())
                    continue
                started = time.perf_counter()
                response = await client.post(
                    url, content=payloads[i % len(payloads)], headers={"content-type": "image/png"}
                )
                elapsed = (time.perf_counter() - started) * 1000
                skipped = 0
                if period:
                    next_due += period
                    while next_due < loop.time():
                        next_due += period
                        skipped += 1
                result.offered += 1 + skipped
                result.dropped += skipped
                if response.status_code == 200:
                    result.completed += 1
                    result.latencies_ms.append(elapsed)
                else:
                    result.failed += 1
                i += 1

        await asyncio.gather(*(stream(k) for k in range(streams)))
    return result


async def ws_streams(
    url: str, payloads: list[bytes], streams: int, fps: float | None, duration: float
) -> Result:
    from websockets.asyncio.client import connect

    result = Result("ws", streams, fps, duration)

    async def stream(index: int) -> None:
        async with connect(url, max_size=None) as ws:
            json.loads(await ws.recv())  # ready
            loop = asyncio.get_running_loop()
            sent_at: dict[int, float] = {}
            answered = asyncio.Event()
            answered.set()
            done = asyncio.Event()

            async def receive() -> None:
                async for text in ws:
                    message = json.loads(text)
                    if message["type"] == "result":
                        started = sent_at.pop(message["seq"], None)
                        if started is not None:
                            result.latencies_ms.append((time.perf_counter() - started) * 1000)
                        result.completed += 1
                        answered.set()
                    elif message["type"] == "error":
                        result.failed += 1
                        answered.set()
                    elif message["type"] == "summary":
                        result.dropped += message["frames"]["dropped"]
                        done.set()
                        return

            receiver = asyncio.create_task(receive())
            period = 1.0 / fps if fps else 0.0
            stop_at = loop.time() + duration
            next_due = loop.time() + index * period / streams
            seq = 0
            while loop.time() < stop_at:
                if period:
                    if loop.time() < next_due:
                        await asyncio.sleep(next_due - loop.time())
                    next_due += period
                else:
                    await answered.wait()  # saturated: the next frame as soon as the last is answered
                    answered.clear()
                sent_at[seq] = time.perf_counter()
                await ws.send(payloads[(index + seq) % len(payloads)])
                result.offered += 1
                seq += 1
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.wait_for(done.wait(), 30)
            await receiver

    await asyncio.gather(*(stream(k) for k in range(streams)))
    return result


# -- the run ---------------------------------------------------------------------------------------------


def scenarios() -> list[tuple[int, float | None]]:
    return [(n, FPS) for n in STREAM_COUNTS] + [(max(STREAM_COUNTS), None)]


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
        row = result.row()
        rate = "sat" if row["fps"] is None else f"{row['fps']:g} fps"
        print(
            f"{row['target']:>11s} {row['streams']:>3d} streams {rate:>7s}:"
            f" p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  {row['throughput_fps']:8.1f} fps"
            f"  drops {row['drop_rate']:.1%}  cpu {row['cpu_cores']}  rss {row['rss_mb']} MB",
            flush=True,
        )
        results.append(result)

    if "raw" in args.targets:
        for streams, fps in scenarios():
            note(run_raw(model, prepared, streams, fps, duration))
        note(run_raw_batched(model, prepared, threads.workers, settings.max_batch_frames, duration))
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
                    ws_url = f"ws://127.0.0.1:{port}/ws/scan"
                    note(measured(server, ws_streams(ws_url, payloads, streams, fps, duration)))
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


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    def find(target: str, streams: int, fps: float | None) -> dict[str, Any] | None:
        return next(
            (r for r in rows if r["target"] == target and r["streams"] == streams and r["fps"] == fps), None
        )

    lines = []
    ws4 = find("ws", 4, FPS)
    if ws4:
        ok = ws4["p99_ms"] <= TARGET_WS_P99_MS
        lines.append(
            f"WebSocket p99 at 4 x 30 fps: {ws4['p99_ms']} ms (target <= {TARGET_WS_P99_MS}): {'met' if ok else 'MISSED'}"
        )
    top = max(STREAM_COUNTS)
    service = max(
        (r["throughput_fps"] for r in rows if r["target"] in ("assess", "ws") and r["fps"] is None),
        default=None,
    )
    raw = max(
        (r["throughput_fps"] for r in rows if r["target"].startswith("raw") and r["fps"] is None),
        default=None,
    )
    naive = find("naive", top, None)
    if service is not None and raw:
        share = service / raw
        lines.append(
            f"saturated service / best raw onnxruntime: {share:.0%} (target >= {TARGET_RAW_FRACTION:.0%}): {'met' if share >= TARGET_RAW_FRACTION else 'MISSED'}"
        )
    service_eff = max(
        (r["frames_per_cpu_s"] or 0 for r in rows if r["target"] in ("assess", "ws") and r["fps"] is None),
        default=0,
    )
    raw_eff = max(
        (r["frames_per_cpu_s"] or 0 for r in rows if r["target"].startswith("raw") and r["fps"] is None),
        default=0,
    )
    if service_eff and raw_eff:
        lines.append(
            f"per CPU-second, saturated service / raw onnxruntime: {service_eff / raw_eff:.0%} "
            "(the same comparison with the host's other load factored out)"
        )
    if service is not None and naive and naive["throughput_fps"]:
        factor = service / naive["throughput_fps"]
        lines.append(
            f"saturated service / naive peer: {factor:.1f}x (target >= {TARGET_PEER_FACTOR:g}x): {'met' if factor >= TARGET_PEER_FACTOR else 'MISSED'}"
        )
    return lines


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| target | streams | rate | p50 ms | p99 ms | throughput fps | frames / CPU s | drop rate | CPU cores | RSS MB |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        rate = "saturated" if r["fps"] is None else f"{r['fps']:g} fps"
        lines.append(
            f"| {r['target']} | {r['streams']} | {rate} | {r['p50_ms']} | {r['p99_ms']} | {r['throughput_fps']} "
            f"| {r['frames_per_cpu_s']} "
            f"| {r['drop_rate']:.1%} | {r['cpu_cores']} | {r['rss_mb']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for target in ("raw", "assess", "ws", "naive"):
        paced = [r for r in rows if r["target"] == target and r["fps"] is not None]
        if paced:
            left.plot([r["streams"] for r in paced], [r["p99_ms"] for r in paced], marker="o", label=target)
    left.axhline(TARGET_WS_P99_MS, color="grey", linestyle="--", linewidth=1, label="WS p99 target")
    left.set(xscale="log", xticks=list(STREAM_COUNTS), xlabel="streams at 30 fps", ylabel="p99 latency (ms)")
    left.set_xticklabels([str(n) for n in STREAM_COUNTS])
    left.legend()
    saturated = [r for r in rows if r["fps"] is None]
    right.bar([r["target"] for r in saturated], [r["throughput_fps"] for r in saturated], color="#4a90d9")
    right.set(ylabel="frames per second", title="saturated throughput")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    parser.add_argument("--targets", default="raw,assess,ws,naive")
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


BLOCK = "service"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def record_in_docs(
    docs: Path, table: str, verdict_lines: list[str], meta: dict[str, Any], plot_path: Path
) -> None:
    """Rewrite the generated block `service` of `docs` with this run's figures and plot."""
    image = docs.parent / "img" / "service_latency.png"
    write_atomically(image, plot_path.read_bytes())
    command = f"python -m bench.service_latency --registry {meta['registry']} --name {meta['name']}"
    body = [
        f"Measured {meta['at']} on {meta['cpus']} cores ({meta.get('cpu_model', 'unknown')}), model "
        f"`{meta['name']}` from `{meta['registry']}`, {meta['duration_s']:.0f} s per scenario, "
        f"by `{command}`:",
        "",
        table,
        "",
        *[f"- {line}" for line in verdict_lines],
        "",
        f"![service latency](img/{image.name})",
    ]
    replace_block(docs, BLOCK, "\n".join(body), module="bench.service_latency")


if __name__ == "__main__":
    raise SystemExit(main())
