"""`usqa stream FILE|--device N --url ws://HOST:PORT/ws/scan`: the reference live client.

A file (DICOM cine, video, image folder) plays at `--fps`; a capture device (`--device 0`, or a video file,
image-sequence pattern or stream URL that OpenCV opens) sends its newest frame whenever the service is
ready for one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from usqa.client.aio import AsyncClient
from usqa.client.core import Endpoint
from usqa.client.device import LatestFrameReader, crop_to_scan, is_recording, open_device
from usqa.client.device_stream import stream_device
from usqa.client.stream import StreamReport, format_result
from usqa.contracts.cli import UsageError
from usqa.contracts.protocol import MessageType
from usqa.service.frames import FrameError, iter_source_frames
from usqa.service.frames.dicom_uids import read_instance_uids, read_study_identity
from usqa.service.settings import get_settings

MSG_ONE_SOURCE = "give a FILE_OR_DIR or --device, not both (and not neither)"
MAX_SOURCE_INSTANCES = 64


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="stream a cine or a capture device to /ws/scan, printing feedback and latency percentiles",
    )
    parser.add_argument(
        "source", type=Path, nargs="?", metavar="FILE_OR_DIR", help="DICOM cine, video or image folder"
    )
    parser.add_argument(
        "--device",
        metavar="N|URL",
        help="an OpenCV capture device: its index (a capture card), or a video file, pattern or stream URL",
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/scan")
    parser.add_argument("--model", help="the exam's model (GET /models; default: the service's default)")
    parser.add_argument(
        "--fps", type=float, default=30.0, help="playback rate of a file (and of a recording as --device)"
    )
    parser.add_argument(
        "--crop", choices=("none", "auto"), default="none", help="auto: cut to the scan region"
    )
    parser.add_argument("--frames", type=int, help="send at most this many frames")
    parser.add_argument("--seconds", type=float, help="--device: stop after this many seconds")
    parser.add_argument("--token", help="bearer token (default: USQA_API_TOKEN)")
    parser.add_argument("--raw", action="store_true", help="send raw 8-bit frames instead of PNG")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if (args.source is None) == (args.device is None):
        raise UsageError(MSG_ONE_SOURCE)
    if args.fps <= 0:
        raise UsageError("--fps must be positive")
    if args.frames is not None and args.frames <= 0:
        raise UsageError("--frames must be positive")
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    token = args.token or settings.api_token

    def show(message: dict[str, Any], latency_ms: float | None) -> None:
        if not args.quiet or message["type"] in (MessageType.READY, MessageType.MODEL_SWAP):
            print(format_result(message, latency_ms), flush=True)

    try:
        if args.device is not None:
            report = _stream_device(args, token, show)
            rate = f"the service's pace from device {args.device}"
        else:
            report = _stream_file(args, token, show, settings.max_frame_pixels, settings.max_frames_per_input)
            rate = f"{args.fps:g} fps"
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot stream to {args.url}: {exc}") from exc
    p = report.percentiles
    print(
        f"sent {report.sent} frames at {rate}; {report.results} results, {report.errors} errors; "
        f"round-trip latency p50 {p['p50']} ms, p90 {p['p90']} ms, p99 {p['p99']} ms"
    )
    if report.summary is not None:
        print("server summary: " + json.dumps({k: v for k, v in report.summary.items() if k != "type"}))
        print(f"session report: {Endpoint.of(args.url, None).http}/sessions/{report.summary['session']}")
    if report.close_code not in (None, 1000):
        print(f"closed by the server: {report.close_code} {report.close_reason}")
        return 1
    return 0


def _stream_file(
    args: argparse.Namespace, token: str | None, show: Any, max_pixels: int, max_frames: int
) -> StreamReport:
    try:
        frames = [
            frame
            for _, frame in iter_source_frames(args.source, max_pixels=max_pixels, max_frames=max_frames)
        ]
    except (FrameError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    frames = frames[: args.frames] if args.frames else frames
    if args.crop == "auto":
        frames = [crop_to_scan(frame) for frame in frames]
    if args.raw and len({f.shape for f in frames}) > 1:
        raise UsageError("--raw needs frames of one size; this source mixes sizes")
    dicom = source_instances(args.source)
    study = source_study(args.source)

    async def play() -> StreamReport:
        async with AsyncClient(args.url, token=token, model=args.model) as client:
            return await client.play(
                frames, fps=args.fps, raw=args.raw, on_message=show, dicom=dicom, study=study
            )

    return asyncio.run(play())


def _stream_device(args: argparse.Namespace, token: str | None, show: Any) -> StreamReport:
    try:
        capture = open_device(args.device)
    except OSError as exc:
        raise UsageError(str(exc)) from exc
    reader = LatestFrameReader(capture, fps=args.fps if is_recording(args.device) else None).start()

    async def play() -> StreamReport:
        async with AsyncClient(args.url, token=token, model=args.model) as client:
            return await stream_device(
                client,
                reader,
                raw=args.raw,
                crop=args.crop == "auto",
                max_frames=args.frames,
                max_seconds=args.seconds,
                on_message=show,
            )

    try:
        return asyncio.run(play())
    finally:
        reader.stop()


def _source_files(source: Path) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]


def source_instances(source: Path) -> list[dict[str, str]]:
    """The UIDs of the DICOM files of a source (a file or a folder), for the session report."""
    found: list[dict[str, str]] = []
    for file in _source_files(source):
        uids = read_instance_uids(file)
        if uids is not None and vars(uids) not in found:
            found.append(dict(vars(uids)))
        if len(found) >= MAX_SOURCE_INSTANCES:
            break
    return found


def source_study(source: Path) -> dict[str, str] | None:
    """The study of a source's first DICOM file (its UID and patient fields): the scan is filed there."""
    for file in _source_files(source)[:MAX_SOURCE_INSTANCES]:
        study = read_study_identity(file)
        if study is not None:
            return study.fields()
    return None
