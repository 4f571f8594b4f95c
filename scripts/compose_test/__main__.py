"""`python -m scripts.compose_test`: skip without an engine, else build, measure, run, report, `down -v`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path

import httpx

from scripts import compose_test
from scripts.compose_test.config import REPO_ROOT
from scripts.compose_test.engine import Stack, compose_command, engine_version
from scripts.compose_test.images import build_images, measure_images
from scripts.compose_test.report import render_docs, summary_line, write_docs
from scripts.compose_test.scenario import save_logs, scenario
from scripts.compose_test.shell import Failed, log, phase
from usqa.local_stack import free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.compose_test",
        description=compose_test.__doc__.splitlines()[0] if compose_test.__doc__ else None,
    )
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "deploy.md", help="page to update")
    parser.add_argument("--no-docs", action="store_true", help="leave the docs alone")
    parser.add_argument("--build-network", default="host", help="docker build --network (default: host)")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "runs" / "compose-test", help="build and container logs"
    )
    args = parser.parse_args(argv)

    server = engine_version()
    if server is None:
        log("skipped: no Docker engine is reachable (no `docker` command, or `docker info` fails)")
        return 0
    found = compose_command()
    if found is None:
        log(f"skipped: Docker {server} answers but neither `docker compose` nor docker-compose is installed")
        return 0
    command, compose_version = found
    versions_text = f"docker {server}, {compose_version}"
    log(f"using {versions_text}")
    args.out.mkdir(parents=True, exist_ok=True)
    stack = Stack(command, secrets.token_urlsafe(24), free_port())
    times: dict[str, float] = {}
    began = time.monotonic()
    passed = False
    try:
        # A run killed before its end left its stack behind.
        stack.compose("down", "-v", "--remove-orphans", timeout=180, check=False)
        with phase(times, "build"):
            build_images(args.build_network, args.out)
        with phase(times, "image checks"):
            images = measure_images()
        results = scenario(stack, times, args.out)
        passed = True
    except (Failed, httpx.HTTPError, TimeoutError, OSError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        if not passed:
            save_logs(stack, args.out)
        with phase(times, "down"):
            stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
    if not passed:
        return 1
    summary = summary_line(versions_text, times, results, time.monotonic() - began)
    print(summary, flush=True)
    (args.out / "results.json").write_text(
        json.dumps({"images": images, "times": times, **results}, indent=2)
    )
    if not args.no_docs:
        meta = (
            f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
            f"{os.cpu_count()} cores, {versions_text}"
        )
        write_docs(args.docs, render_docs(images, results, summary, meta))
        log(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
