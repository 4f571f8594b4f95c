"""`usqa stream FILE --url ws://HOST:PORT/ws/scan --fps 30`: the reference live client."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from contracts.cli import UsageError
from service.frames import FrameError, iter_source_frames
from service.live.client import format_result, stream_frames
from service.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stream", help="stream a cine to /ws/scan at a frame rate, printing feedback and latency percentiles"
    )
    parser.add_argument("source", type=Path, metavar="FILE_OR_DIR", help="DICOM cine, video or image folder")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/scan")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--token", help="bearer token (default: USQA_API_TOKEN)")
    parser.add_argument("--raw", action="store_true", help="send raw 8-bit frames instead of PNG")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.fps <= 0:
        raise UsageError("--fps must be positive")
    try:
        frames = [
            frame
            for _, frame in iter_source_frames(
                args.source, max_pixels=settings.max_frame_pixels, max_frames=settings.max_frames_per_input
            )
        ]
    except (FrameError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if args.raw and len({f.shape for f in frames}) > 1:
        raise UsageError("--raw needs frames of one size; this source mixes sizes")

    def show(message: dict[str, Any], latency_ms: float | None) -> None:
        if not args.quiet or message["type"] in ("ready", "model_swap"):
            print(format_result(message, latency_ms), flush=True)

    try:
        report = asyncio.run(
            stream_frames(
                args.url,
                frames,
                fps=args.fps,
                raw=args.raw,
                token=args.token or settings.api_token,
                on_message=show,
            )
        )
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot stream to {args.url}: {exc}") from exc
    p = report.percentiles
    print(
        f"sent {report.sent} frames at {args.fps:g} fps; {report.results} results, {report.errors} errors; "
        f"round-trip latency p50 {p['p50']} ms, p90 {p['p90']} ms, p99 {p['p99']} ms"
    )
    if report.summary is not None:
        print("server summary: " + json.dumps({k: v for k, v in report.summary.items() if k != "type"}))
    if report.close_code not in (None, 1000):
        print(f"closed by the server: {report.close_code} {report.close_reason}")
        return 1
    return 0
