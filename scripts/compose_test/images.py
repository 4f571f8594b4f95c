"""The images: built, then measured (size, user, healthcheck, leftovers, failing when they cannot serve)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from scripts.compose_test.config import BUILD_TIMEOUT_S, IMAGES, MB, REPO_ROOT, UNHEALTHY_TIMEOUT_S
from scripts.compose_test.engine import inspect
from scripts.compose_test.shell import Failed, docker, log, until

# Run inside each image (all have Python): what a lean image must not carry.
PROBE = r"""
import importlib.util, json, os, shutil
def size(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
caches = ("/root/.cache", "/srv/usqa/.cache", "/var/cache/apt", "/var/lib/apt/lists", "/tmp")
print(json.dumps({
    "build_tools": [t for t in ("gcc", "cc", "g++", "make", "clang") if shutil.which(t)],
    "cache_bytes": sum(size(p) for p in caches if os.path.isdir(p)),
    "torch": importlib.util.find_spec("torch") is not None,
    "trainer": os.path.isdir("/srv/usqa/usqa/trainer"),
}))
"""


def build_images(network: str, logs: Path) -> None:
    torch_index = os.environ.get("TORCH_INDEX_URL", "")
    for image, (dockerfile, _) in IMAGES.items():
        args = (
            ["--build-arg", f"TORCH_INDEX_URL={torch_index}"]
            if image == "usqa-worker" and torch_index
            else []
        )
        cmd = ["docker", "build", "--network", network, "-f", dockerfile, "-t", image, *args, "."]
        log(f"building {image} (log: {logs / f'build-{image}.log'})")
        with (logs / f"build-{image}.log").open("w") as out:
            result = subprocess.run(
                cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S
            )
        if result.returncode != 0:
            tail = (logs / f"build-{image}.log").read_text(errors="replace")[-2000:]
            raise Failed(f"building {image} failed:\n{tail}")


def unhealthy_after_s(containers: dict[str, str]) -> dict[str, float]:
    """Seconds until each container's healthcheck reports unhealthy (they were started unable to serve)."""
    started = time.monotonic()
    result: dict[str, float] = {}

    def all_unhealthy() -> bool:
        for image, container in containers.items():
            if image not in result and inspect(container, "{{.State.Health.Status}}") == "unhealthy":
                result[image] = time.monotonic() - started
        return len(result) == len(containers)

    try:
        until(all_unhealthy, UNHEALTHY_TIMEOUT_S, "the healthchecks of services that cannot serve to fail")
    except Failed as exc:
        raise Failed(f"{exc}; still not unhealthy: {sorted(set(containers) - set(result))}") from exc
    return result


def measure_images() -> dict[str, dict[str, Any]]:
    """Size, user, healthcheck, leftovers, and how long each healthcheck takes to fail when it should."""
    table: dict[str, dict[str, Any]] = {}
    for image in IMAGES:
        probe = json.loads(
            docker("run", "--rm", "--user", "root", "--entrypoint", "python", image, "-c", PROBE)
        )
        table[image] = {
            "size_mb": int(inspect(image, "{{.Size}}")) / MB,
            "user": inspect(image, "{{.Config.User}}") or "root",
            "healthcheck": json.loads(inspect(image, "{{json .Config.Healthcheck.Test}}"))[-1],
            "healthcheck_timeout_s": int(inspect(image, "{{json .Config.Healthcheck.Timeout}}")) / 1e9,
            **probe,
        }
    # Each image started where it cannot serve, with a fast healthcheck: the API with no model to load, the
    # worker with no broker, the proxy with no API replica. Read-only root file systems, as in compose.
    # A start period of 0 s would mean "the image's" to Docker (the worker's is 180 s): 1 s overrides it.
    fast = ["--health-interval", "2s", "--health-retries", "2", "--health-start-period", "1s"]
    hardened = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--network", "none"]
    cannot_serve = {
        "usqa-api": ["-e", "USQA_MODEL_NAME=no-such-model"],
        "usqa-worker": ["-e", "USQA_REDIS_URL=redis://no-such-host:6379/0", "--health-timeout", "20s"],
        "usqa-proxy": [],
    }
    containers: dict[str, str] = {}
    try:
        for image, extra in cannot_serve.items():
            containers[image] = docker("run", "-d", *fast, *hardened, *extra, image).strip()
        for image, seconds in unhealthy_after_s(containers).items():
            table[image]["unhealthy_after_s"] = seconds
    finally:
        for container in containers.values():
            docker("rm", "-f", container, check=False)
    return table
