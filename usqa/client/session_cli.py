"""`usqa session export ID --out DIR`: a scan session as the DICOM objects usqa files in the PACS.

The same objects the service sends to USQA_PACS_URL (docs/pacs.md): capture-<rank>.dcm, the best frames as
Secondary Capture images, and report.dcm, the Structured Report that references them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from usqa.client.core import UsqaError
from usqa.client.sync import Client
from usqa.contracts.cli import UsageError
from usqa.service.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("session", help="a scan session's records (export its DICOM objects)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write a session's captures and SR as DICOM files to a folder")
    export.add_argument("session", help="the session id (the stream's ready message, /sessions)")
    export.add_argument("--out", type=Path, required=True, help="folder to write the .dcm files to")
    export.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    export.add_argument("--token", help="bearer token (default: USQA_API_TOKEN)")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    token = args.token or get_settings().api_token
    try:
        with Client(args.url, token=token) as client:
            files = client.session_dicom(args.session)
    except UsqaError as exc:
        raise UsageError(f"cannot export session {args.session}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {args.url}: {exc}") from exc
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / Path(name).name).write_bytes(data)
    print(f"wrote {len(files)} DICOM files of session {args.session} to {args.out}")
    return 0
