"""Capture-card frames (issue #27 items 4 and 5): /ws/scan with the frames a scanner's video output gives when
the client does not crop, beside the same per-frame work in-process (the limit) and that work decoding every
JPEG in full (the naive peer: what the service did before DCT-scaled decoding), in one run.

    nice python -m bench.capture_card --registry models --name usqa-prostate

Frames: the simulated 128 px cine the service benchmark uses, as PNG; and the same frames drawn into a black
640x480 and 1920x1080 screen (the scan 90 % of the height, as a capture card delivers it), JPEG quality 90.
For each: `inprocess` (decode_for_spec as the service runs it, both graphs, the verdict), `full-decode` (the
same with OpenCV's full JPEG decode), 4 streams at 30 fps and saturated (one thread); and the service over
/ws/scan at 4 x 30 fps. Targets (issue #27): /ws/scan p99 <= 10 ms with 640x480 JPEG, <= 15 ms with 1920x1080.
The table goes into docs/performance.md's `capture-card` block.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bench.latency_load import Result, _paced_streams, cine, encode, run_inprocess, ws_streams
from bench.latency_servers import SERVER_START_TIMEOUT_S, Server, measured
from bench.machine import cpu_model
from docs_gen.blocks import invocation, replace_block
from usqa.local_stack import free_port, start_api
from usqa.service.inference.geometry import prepare_with_geometry, stack_pixels
from usqa.service.inference.model import LoadedModel, load_model
from usqa.service.inference.providers import plan_providers, plan_threads
from usqa.service.inference.scoring import ScoringOptions, score_outputs
from usqa.service.registry import ModelRegistry
from usqa.service.settings import Settings

BLOCK = "capture-card"
DOCS_FILE = Path("docs/performance.md")
SCREENS = {"jpeg-640x480": (640, 480), "jpeg-1920x1080": (1920, 1080)}
TARGET_P99_MS = {"jpeg-640x480": 10.0, "jpeg-1920x1080": 15.0}
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


def run(args: argparse.Namespace) -> list[tuple[str, Result]]:
    registry = ModelRegistry(args.registry)
    settings = Settings(registry=args.registry, model_name=args.name)
    threads = plan_threads(settings.inference_workers, settings.intra_op_threads)
    model = load_model(
        registry.load(args.name),
        target_rejection=settings.target_rejection,
        providers=plan_providers(settings.providers, settings.require_provider),
        intra_op_threads=threads.intra_op_threads,
    )
    frames = cine(model.spec.size)
    kinds = {"png-128": encode(frames), **{k: on_screen(frames, *size) for k, size in SCREENS.items()}}
    rows: list[tuple[str, Result]] = []

    def note(kind: str, result: Result) -> None:
        row = result.row()
        rate = "sat" if row["fps"] is None else f"{row['fps']:g} fps"
        print(
            f"{kind:>15s} {row['target']:>11s} {row['streams']:>2d} x {rate:>6s}: p50 {row['p50_ms']:7.2f} ms"
            f"  p99 {row['p99_ms']:7.2f} ms  {row['throughput_fps']:7.1f} fps  drops {row['drop_rate']:.1%}",
            flush=True,
        )
        rows.append((kind, result))

    for kind, payloads in kinds.items():
        for streams, fps in ((4, 30.0), (1, None)):
            note(kind, run_inprocess(model, payloads, streams, fps, args.duration))
            if kind != "png-128":
                note(kind, run_full_decode(model, payloads, streams, fps, args.duration))
    env = {**os.environ, "USQA_REGISTRY": str(args.registry.resolve()), "USQA_MODEL_NAME": args.name}
    env.pop("USQA_API_TOKEN", None)
    env.pop("USQA_REQUIRE_TOKEN_FOR_SCORING", None)
    port = free_port()
    api = start_api(
        port, env, args.out / "logs" / "api.log", log_level="warning", ready_path="/readyz",
        timeout=SERVER_START_TIMEOUT_S,
    )  # fmt: skip
    server = Server(api, port)
    try:
        for kind, payloads in kinds.items():
            note(kind, measured(server, ws_streams(server.base, payloads, 4, 30.0, args.duration)))
    finally:
        server.stop()
    return rows


def markdown(rows: list[tuple[str, Result]], argv: Sequence[str] | None) -> str:
    lines = [
        f"Measured by `{invocation('bench.capture_card', argv)}` on {cpu_model()} ({os.cpu_count()} cores), "
        f"{args_duration(rows)} s per row.",
        "",
        "| frames | target | streams x fps | p50 ms | p99 ms | frames/s | dropped | target p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, result in rows:
        row = result.row()
        rate = "saturated" if row["fps"] is None else f"{row['streams']} x {row['fps']:g}"
        target = ""
        if row["target"] == "ws" and kind in TARGET_P99_MS:
            limit = TARGET_P99_MS[kind]
            target = f"<= {limit:g} ms: {'met' if row['p99_ms'] <= limit else '**missed**'}"
        lines.append(
            f"| {kind} | {row['target']} | {rate} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['throughput_fps']:.1f} | {row['drop_rate']:.1%} | {target} |"
        )
    return "\n".join(lines) + "\n"


def args_duration(rows: list[tuple[str, Result]]) -> str:
    return f"{rows[0][1].duration_s:g}" if rows else "0"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/capture_card"))
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)
    rows = run(args)
    if not args.no_docs:
        replace_block(DOCS_FILE, BLOCK, markdown(rows, argv), module="bench.capture_card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
