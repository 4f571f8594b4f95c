"""`usqa serve`: the API under uvicorn, configured by `USQA_*` settings and a few flags."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from usqa.contracts.cli import UsageError
from usqa.service.api.app import create_app
from usqa.service.api.errors import ConfigurationError
from usqa.service.settings import Settings, get_settings

# Headroom over the service's own message limit, so the service (not the protocol layer) answers with
# its explanatory error for messages just over the limit.
WS_FRAME_HEADROOM_BYTES = 64 * 1024
LOOPBACK_NAMES = frozenset({"localhost"})
MSG_OPEN_WITHOUT_TOKEN = (
    "refusing to listen on {host} without USQA_API_TOKEN: anyone who reaches it could read the scan sessions' "
    "reports and captured frames (patient images). Set USQA_API_TOKEN, listen on 127.0.0.1, or set "
    "USQA_TRUSTED_NETWORK=1 if the network in front of it is trusted"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the real-time API (POST /assess, /ws/scan, live page at /)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--registry", type=Path, help="model registry folder (default: USQA_REGISTRY or models/)"
    )
    parser.add_argument("--model", help="model name to serve (default: USQA_MODEL_NAME)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(handler=run)


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost); names are not resolved."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name (or "" for every interface): it may face the network


def check_listen_address(host: str, settings: Settings) -> None:
    """Patient records are not served openly to a network nobody said was trusted."""
    if not settings.api_token and not settings.trusted_network and not is_loopback(host):
        raise UsageError(MSG_OPEN_WITHOUT_TOKEN.format(host=host or "every interface"))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    overrides: dict[str, object] = {}
    if args.registry is not None:
        overrides["registry"] = args.registry
    if args.model is not None:
        overrides["model_name"] = args.model
    settings = settings.model_copy(update=overrides) if overrides else settings
    check_listen_address(args.host, settings)
    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from exc
    # One process: the models live in it, and its inference workers already use every core.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=settings.max_ws_message_bytes + WS_FRAME_HEADROOM_BYTES,
        # Frames are PNG/JPEG (already compressed) or raw, results are small JSON: per-message deflate
        # would spend CPU on both ends for next to nothing, and CPU is the frame budget.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m usqa.service.api.cli serve ...`: the same command without the trainer's imports (benchmarks)."""
    import logging

    parser = argparse.ArgumentParser(prog="python -m usqa.service.api.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"{parser.prog} serve: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
