"""Capture-card frames and two exams (issue #27 items 3 to 5), in one run: /ws/scan with the frames a scanner's
video output gives when the client does not crop, with one model served and with two, beside the same per-frame
work in-process (the limit) and that work decoding every JPEG in full (the naive peer: what the service did
before DCT-scaled decoding); and the capacity the service reports beside the saturation measured here.

    nice python -m bench.capture_card --registry models --names usqa-prostate usqa-thyroid

Frames: each model's own anatomy (its card's simulator preset), the cine as PNG at the first model's input size (`png-input`), and the same frames drawn
into a black 640x480 and 1920x1080 screen (the scan 90 % of the height, as a capture card delivers it), JPEG
quality 90. For each kind:
- `inprocess` (decode_for_spec as the service runs it, both graphs, the verdict) at 4 x 30 fps, and saturated
  with as many threads as the service has inference workers: the limit;
- `full-decode` (the same with OpenCV's full JPEG decode), the same two rows: the naive peer;
- a service for each model alone and one serving both, side by side: /ws/scan at 4 x 30 fps in turns (ten
  turns, 20 s in all for the service of both, with two streams to each model, and 20 s shared by the services of
  one, each sent its own model's frames: the `1 model` row pools them, the same mix of frames), then the capacity
  the first model's own service reports on `GET /readyz` (measured on those frames), then 4 streams saturated on
  it (each frame sent as soon as the last is answered) taking turns with the in-process limit's 4 saturated
  streams, with its event loop's and other threads' CPU per frame in both regimes (what the capacity meter's warm
  ratio stands for) and their context switches per frame.
Last, a service planning each stream at the rate that makes its capacity about four streams of 1920x1080 JPEG:
its capacity's streams run at that rate while more try to open, one at a time, until one is refused.

On a machine with two cores or more the service (and the in-process limit) run on the first core and the load
generator on the others (CPU affinity, inherited by the server process and the in-process threads): otherwise the
clients' own work on the same cores would decide the saturation, and a capacity estimate that a service makes of
itself could not be checked against it. The service then plans one inference worker (its affinity's cores), and
its event loop runs the stream frames itself (`frames_on_loop`).

Targets (issue #27): /ws/scan p99 <= 10 ms with 640x480 JPEG and <= 15 ms with 1920x1080 at 4 x 30 fps; two
models cost <= 10 % in p99 over one; the service saturates at >= 90 % of the in-process limit; the reported
capacity is within 20 % of the measured saturation; the stream beyond it is refused with 1013 while the others
keep their p99. The tables go into docs/performance.md's `capture-card` block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import cv2
import httpx
import numpy as np

from bench.capture_card_capacity import refused_beside
from bench.capture_card_report import HEAVIEST, PNG_KIND, Run, findings, markdown
from bench.latency_load import Result, _paced_streams, encode, run_inprocess, ws_streams
from bench.latency_servers import SERVER_START_TIMEOUT_S, Server, measured
from docs_gen.blocks import replace_block
from usqa.local_stack import free_port, start_api, start_server
from usqa.service.inference.geometry import prepare_with_geometry, stack_pixels
from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.providers import plan_providers, plan_threads
from usqa.service.inference.scoring import ScoringOptions, score_outputs
from usqa.service.registry import ModelRegistry
from usqa.service.registry.card import read_card
from usqa.service.settings import Settings
from usqa.service.simulator import simulate_cine

BLOCK = "capture-card"
N = TypeVar("N", int, float)
DOCS_FILE = Path("docs/performance.md")
SCREENS = {"jpeg-640x480": (640, 480), "jpeg-1920x1080": (1920, 1080)}
CINE_FRAMES = 64
JPEG_QUALITY = 90


def on_screen(frames: Sequence[np.ndarray], width: int, height: int) -> list[bytes]:
    out = []
    for frame in frames:
        screen = np.zeros((height, width), np.uint8)
        side = int(height * 0.9)
        y, x = (height - side) // 2, (width - side) // 2
        screen[y : y + side, x : x + side] = cv2.resize(frame, (side, side), interpolation=cv2.INTER_CUBIC)
        out.append(cv2.imencode(".jpg", screen, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    return out


def run_full_decode(
    model: LoadedModel, payloads: Sequence[bytes], streams: int, fps: float | None, duration: float
) -> Result:
    """The naive peer: every JPEG decoded in full, then prepared, scored and judged as the service does."""
    options = ScoringOptions()

    def work(i: int) -> None:
        image = cv2.imdecode(np.frombuffer(payloads[i % len(payloads)], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image is not None
        prepared = [prepare_with_geometry(image, model.spec)]
        score_outputs(model, model.run(stack_pixels(prepared)), prepared, options)

    return _paced_streams("full-decode", streams, fps, duration, work)


ALL_CORES = frozenset(os.sched_getaffinity(0))
SERVICE_CORES = frozenset(sorted(ALL_CORES)[:1]) if len(ALL_CORES) > 1 else ALL_CORES
CLIENT_CORES = ALL_CORES - SERVICE_CORES or ALL_CORES


@contextlib.contextmanager
def pinned(cores: frozenset[int]) -> Iterator[None]:
    """Every thread of this process (and the threads and processes they start meanwhile) on `cores`, and OpenCV's
    pool sized for them, as in a process started on them (the service). Every thread, not only this one:
    OpenCV's pool, started before, ran the in-process limit's resizes on the client's core (1.2 cores for
    1920x1080 JPEG frames, against the service's one); and a pool of two on one core slowed small frames."""
    threads_before = cv2.getNumThreads()
    cv2.setNumThreads(len(cores))
    before: dict[int, set[int]] = {}
    for task in Path("/proc/self/task").iterdir():
        thread = int(task.name)
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            before[thread] = os.sched_getaffinity(thread)
            os.sched_setaffinity(thread, cores)
    try:
        yield
    finally:
        for thread, cores_before in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(thread, cores_before)
        cv2.setNumThreads(threads_before)


def anatomy_cine(
    registry: ModelRegistry, name: str, size: int, frames: int = CINE_FRAMES
) -> list[np.ndarray]:
    """A cine of the model's own anatomy (the simulator preset its card records), seeded."""
    card = read_card(registry, name, "champion")
    preset = (card.training_data.preset if card.training_data else None) or "transrectal_prostate"
    return [f.image for f in simulate_cine(preset, frames, seed=7, size=size)]


def serve_models(args: argparse.Namespace, names: Sequence[str], log: str, **extra: str) -> Server:
    env = {**os.environ, "USQA_REGISTRY": str(args.registry.resolve()), "USQA_MODEL_NAME": names[0]}
    env["USQA_MODEL_NAMES"] = json.dumps(list(names[1:]))
    env.pop("USQA_API_TOKEN", None)
    env.pop("USQA_REQUIRE_TOKEN_FOR_SCORING", None)
    env.update(extra)
    port = free_port()
    with pinned(SERVICE_CORES):
        api = start_api(
            port, env, args.out / "logs" / log, log_level="warning", ready_path="/readyz",
            timeout=SERVER_START_TIMEOUT_S,
        )  # fmt: skip
    return Server(api, port)


def serve_floor(args: argparse.Namespace) -> Server:
    """`bench.ws_floor` on the service's core: the WebSocket transport alone, a result-sized answer per frame."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.ws_floor", "--port", str(port)]
    log = args.out / "logs" / "ws-floor.log"
    with pinned(SERVICE_CORES):
        proc = start_server("ws-floor", cmd, dict(os.environ), log, port, "/", SERVER_START_TIMEOUT_S)
    return Server(proc, port)


def capacity_of(server: Server) -> dict[str, Any]:
    return dict(httpx.get(f"{server.base}/readyz", timeout=30).json()["capacity"])


def run(args: argparse.Namespace) -> Run:
    registry = ModelRegistry(args.registry)
    settings = Settings(registry=args.registry, model_name=args.names[0])
    threads = plan_threads(settings.inference_workers, settings.intra_op_threads, cores=len(SERVICE_CORES))
    model = load_model(
        registry.load(args.names[0]),
        target_rejection=settings.target_rejection,
        providers=plan_providers(settings.providers, settings.require_provider),
        intra_op_threads=threads.intra_op_threads,
    )
    kinds: dict[str, dict[str, list[bytes]]] = {}
    for name in args.names:
        frames = anatomy_cine(registry, name, model.spec.size)
        kinds.setdefault(PNG_KIND, {})[name] = encode(frames)
        for kind, size in SCREENS.items():
            kinds.setdefault(kind, {})[name] = on_screen(frames, *size)
    first = args.names[0]
    out = Run(workers=threads.workers)
    out.frame_bytes = {
        kind: {name: round(float(np.mean([len(p) for p in sent]))) for name, sent in by_name.items()}
        for kind, by_name in kinds.items()
    }
    for kind, payloads in kinds.items():
        mine = payloads[first]
        # 4 streams at 30 fps, as the service is asked below; saturated with as many threads as the service has
        # inference workers; and the naive peer at both rates. The limit with 4 saturated streams takes turns with
        # the service below.
        for streams, fps in ((4, 30.0), (4, None), (threads.workers, None)):
            with pinned(SERVICE_CORES):
                if (streams, fps) != (4, None):
                    out.note(kind, "", run_inprocess(model, mine, streams, fps, args.duration))
                if kind != PNG_KIND and streams == 4:
                    out.note(kind, "", run_full_decode(model, mine, streams, fps, args.duration))
    # The load generator from here on: the service's core is the service's (but for the limit's turns).
    with pinned(CLIENT_CORES):
        serve_and_measure(args, kinds, out, model)
    return out


def serve_and_measure(
    args: argparse.Namespace, kinds: dict[str, dict[str, list[bytes]]], out: Run, model: LoadedModel
) -> None:
    first = args.names[0]
    # Each exam alone, and both in one service: the two exams' frames differ (the thyroid's screens are twice
    # the JPEG bytes of the prostate's and a third costlier to decode), so one service's p99 is pooled from each
    # exam served alone on its own frames, the same mix of frames the service of both is sent.
    alone = {name: serve_models(args, [name], f"api-{name}.log") for name in args.names}
    both = serve_models(args, args.names, "api-two.log") if len(args.names) > 1 else None
    one = alone[first]
    floor = serve_floor(args)
    try:
        out.frames_on_loop = bool(httpx.get(f"{one.base}/readyz", timeout=30).json()["frames_on_loop"])
        for kind, payloads in kinds.items():
            share = 1.0 / len(args.names)
            entries = [("1 model", alone[name], {name: payloads[name]}, share) for name in args.names]
            if both is not None:
                entries.append(("2 models", both, payloads, 1.0))
            results = taking_turns(
                [(server, sent, weight) for _, server, sent, weight in entries],
                TURNS,
                args.duration * TURN_ROWS / TURNS,
            )
            pooled: dict[str, Result] = {}
            for (served, *_), result in zip(entries, results, strict=True):
                pooled[served] = pooled_with(pooled.get(served), result)
            out.note(kind, "1 model", pooled["1 model"])
            out.light[kind] = results[0]  # the first exam alone: its threads' CPU per frame at 4 x 30 fps
            out.capacity[kind] = capacity_of(one)
            limit, service = limit_and_service(model, one, first, payloads[first], args.duration)
            out.note(kind, "", limit)
            out.note(kind, "1 model", service)
            floored = ws_streams(floor.base, payloads[first], 4, None, args.duration)
            out.note(kind, "floor", measured(floor, floored))
            if "2 models" in pooled:
                out.note(kind, "2 models", pooled["2 models"])
    finally:
        for server in (*alone.values(), *([both] if both is not None else []), floor):
            server.stop()
    out.at_capacity = at_capacity(args, kinds[HEAVIEST][first], out.capacity[HEAVIEST])


# The services take turns at 4 x 30 fps, all running (an idle one costs nothing): a p99 of 1,200 frames from one
# 10-s stretch moved by 25 % between stretches of the same service on this machine, more than the 10 % the
# comparison is about; many short turns spread any drift of the machine over every service.
TURNS = 10
# The service of both exams streams as long as two rows in all; each exam alone its share of that.
TURN_ROWS = 2


def taking_turns(
    services: Sequence[tuple[Server, dict[str, list[bytes]], float]], turns: int, seconds: float
) -> list[Result]:
    """Each (service, payloads by exam, share of `seconds`) at 4 x 30 fps, in turn, `turns` times; pooled per entry."""
    pooled: list[Result | None] = [None for _ in services]
    for _ in range(turns):
        for index, (server, payloads, share) in enumerate(services):
            part = measured(server, ws_streams(server.base, payloads, 4, 30.0, seconds * share))
            pooled[index] = pooled_with(pooled[index], part)
    return [result for result in pooled if result is not None]


# The in-process limit and the service, both saturated, take turns as well: this machine's speed drifted by a
# third within minutes (7 Dec 2026), and a limit measured minutes before the service judged the drift with it.
SATURATED_TURNS = 5


def limit_and_service(
    model: LoadedModel, server: Server, name: str, payloads: list[bytes], seconds: float
) -> tuple[Result, Result]:
    """4 saturated streams in-process on the service's core (the limit), then 4 saturated streams to the service,
    in turns over `seconds` each; each pooled."""
    limit: Result | None = None
    service: Result | None = None
    part_s = seconds / SATURATED_TURNS
    for _ in range(SATURATED_TURNS):
        with pinned(SERVICE_CORES):
            limit = pooled_with(limit, run_inprocess(model, payloads, 4, None, part_s))
        service = pooled_with(
            service, measured(server, ws_streams(server.base, {name: payloads}, 4, None, part_s))
        )
    assert limit is not None and service is not None
    return limit, service


def pooled_with(total: Result | None, part: Result) -> Result:
    """Two stretches of the same load as one: counts, latencies, CPU seconds and switches added (the last RSS)."""
    if total is None:
        total = Result(part.target, part.streams, part.fps, 0.0)
    cores = (total.cpu_cores or 0.0) * total.duration_s + (part.cpu_cores or 0.0) * part.duration_s
    total.duration_s += part.duration_s
    total.offered += part.offered
    total.completed += part.completed
    total.dropped += part.dropped
    total.failed += part.failed
    total.latencies_ms.extend(part.latencies_ms)
    total.cpu_cores = round(cores / total.duration_s, 2) if total.duration_s else None
    total.rss_mb = part.rss_mb
    total.loop_cpu_s = _added(total.loop_cpu_s, part.loop_cpu_s)
    total.other_cpu_s = _added(total.other_cpu_s, part.other_cpu_s)
    total.loop_switches = _added(total.loop_switches, part.loop_switches)
    total.other_switches = _added(total.other_switches, part.other_switches)
    return total


def _added(total: N | None, part: N | None) -> N | None:
    """A figure over two stretches; None where neither read it (an in-process row has no server to read)."""
    if part is None:
        return total
    return part if total is None else total + part


def at_capacity(
    args: argparse.Namespace, payloads: list[bytes], measured_capacity: dict[str, Any]
) -> dict[str, Any]:
    """A service planning each stream at the rate that makes four streams of its capacity; those run, one more
    tries to open half-way."""
    # USQA_STREAM_FPS is at most 240: past that, more streams than four.
    fps = min(
        240.0,
        round(float(measured_capacity["frames_per_second"]) * float(measured_capacity["headroom"]) / 4, 1),
    )
    name = args.names[0]
    server = serve_models(args, [name], "api-capacity.log", USQA_STREAM_FPS=str(fps))
    try:
        warm = asyncio.run(ws_streams(server.base, {name: payloads}, 2, fps, args.duration / 2))
        capacity = capacity_of(server)
        streams = int(capacity["streams"] or 0)
        running, code, reason, tries = asyncio.run(
            refused_beside(server.base, name, payloads, streams, fps, args.duration)
        )
    finally:
        server.stop()
    row = running.row()
    print(
        f"at capacity: {streams} x {fps:g} fps p99 {row['p99_ms']:.2f} ms; (reported, open) before each more: {tries}; "
        f"the last: {code} {reason!r}",
        flush=True,
    )
    return {
        "fps": fps,
        "streams": streams,
        "capacity": capacity,
        "row": row,
        "warm_p99_ms": warm.row()["p99_ms"],
        "code": code,
        "reason": reason,
        "tries": tries,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--names", nargs="+", default=["usqa-prostate", "usqa-thyroid"])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/capture_card"))
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)
    out = run(args)
    print("\n".join(findings(out)))
    if not args.no_docs:
        replace_block(DOCS_FILE, BLOCK, markdown(out, argv), module="bench.capture_card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
