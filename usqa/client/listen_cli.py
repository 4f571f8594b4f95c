"""`usqa listen`: the DICOM listener (usqa/client/dicom_listener.py) until interrupted."""

from __future__ import annotations

import argparse
import logging
import threading

from usqa.client.dicom_listener import DEFAULT_AE_TITLE, DicomListener, ListenerLimits
from usqa.contracts.cli import UsageError
from usqa.service.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "listen",
        help="a DICOM listener (C-STORE SCP): cines pushed to it are scored and filed like live scans",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=11112, help="DICOM port (11112, the registered one)")
    parser.add_argument("--ae-title", default=DEFAULT_AE_TITLE, help="this listener's AE title")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/scan", help="the service's /ws/scan")
    parser.add_argument("--token", help="bearer token (default: USQA_API_TOKEN)")
    parser.add_argument("--model", help="the exam's model for the cines pushed here (default: the service's)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    if not 0 < len(args.ae_title) <= 16:
        raise UsageError("--ae-title must be 1 to 16 characters")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    limits = ListenerLimits(
        max_pixels=settings.max_frame_pixels,
        max_frames=settings.max_frames_per_input,
        max_decoded_pixels=settings.max_decoded_pixels,
        max_decode_s=settings.max_decode_s,
    )
    listener = DicomListener(
        args.url,
        host=args.host,
        port=args.port,
        ae_title=args.ae_title,
        token=args.token or settings.api_token,
        model=args.model,
        limits=limits,
    )
    try:
        listener.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    print(
        f"usqa listening for DICOM on {args.host}:{listener.port} as {args.ae_title}, streaming to {args.url}"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    return 0
