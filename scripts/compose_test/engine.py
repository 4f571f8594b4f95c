"""The Docker engine and compose: detection, the compose project this test owns, and its containers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime
from typing import Any

import httpx

from scripts.compose_test.config import COMPOSE_FILES, PROJECT, REPO_ROOT
from scripts.compose_test.shell import Failed, docker, run
from usqa.client import Client


def engine_version() -> str | None:
    if shutil.which("docker") is None:
        return None
    out = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False).strip()
    return out or None


def compose_command() -> tuple[list[str], str] | None:
    """Compose v2 (`docker compose`) or Debian's docker-compose v1, whichever is present, and its version."""
    v2 = run(["docker", "compose", "version", "--short"], 30, check=False).strip()
    if v2:
        return ["docker", "compose"], f"compose {v2}"
    if shutil.which("docker-compose"):
        v1 = run(["docker-compose", "version", "--short"], 30, check=False).strip()
        if v1:
            return ["docker-compose"], f"docker-compose {v1}"
    return None


class Stack:
    """The compose project this script owns: its own name, so it never touches another stack."""

    def __init__(self, command: list[str], token: str, port: int) -> None:
        files = [arg for f in COMPOSE_FILES for arg in ("-f", f)]
        self.command = [*command, "-p", PROJECT, *files]
        self.token = token
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("USQA_")}
        self.env = {**env, "USQA_API_TOKEN": token, "USQA_ENVIRONMENT": "production", "HTTP_PORT": str(port)}

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return run([*self.command, *args], timeout, check=check, env=self.env)

    def containers(self, service: str, *, running: bool = True) -> list[str]:
        """Container ids of a service, in replica order."""
        filters = [
            f"label=com.docker.compose.project={PROJECT}",
            f"label=com.docker.compose.service={service}",
        ]
        ids = docker(
            "ps", *(["-a"] if not running else []), "-q", *(a for f in filters for a in ("--filter", f))
        )
        found = ids.split()
        return sorted(
            found,
            key=lambda c: int(inspect(c, '{{index .Config.Labels "com.docker.compose.container-number"}}')),
        )

    def all_containers(self) -> dict[str, list[str]]:
        return {service: self.containers(service) for service in ("redis", "proxy", "api", "worker")}

    def client(self, token: bool = True) -> httpx.Client:
        """Raw HTTP, for what a user checks by hand (/readyz, /metrics, the registry routes, refusals)."""
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def usqa(self) -> Client:
        """The usqa client through the proxy, with the token: uploads, jobs and the stream."""
        return Client(self.base, token=self.token, timeout_s=60)


def inspect(container: str, template: str) -> str:
    return docker("inspect", "-f", template, container, timeout=30).strip()


def started_at(container: str) -> datetime:
    return docker_time(inspect(container, "{{.State.StartedAt}}"))


def container_logs(container: str, *, timestamps: bool = False) -> str:
    """A container's output, stdout and stderr together (uvicorn and Celery log to stderr)."""
    cmd = ["docker", "logs", *(["-t"] if timestamps else []), container]
    try:
        result = subprocess.run(
            cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"docker logs {container[:12]} ran past 60 s") from exc
    return result.stdout


def docker_time(stamp: str) -> datetime:
    """A timestamp as Docker writes it (nanoseconds, `Z` or an offset); Python reads microseconds."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp.strip())
    if match is None:
        raise Failed(f"unreadable Docker timestamp {stamp!r}")
    whole, fraction, zone = match.groups()
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]:0<6}{'+00:00' if zone == 'Z' else zone}")


def healthy_now(container: str, what: str) -> dict[str, tuple[float, int]]:
    """Fails unless the container's healthcheck says healthy; its recent checks (Docker keeps 5), by start
    time: (seconds taken, exit code)."""
    status = inspect(container, "{{.State.Health.Status}}")
    if status != "healthy":
        raise Failed(f"{container[:12]} is {status} {what}")
    checks = json.loads(inspect(container, "{{json .State.Health.Log}}") or "null") or []
    return {
        f"{container[:12]} {c['Start']}": (
            (docker_time(c["End"]) - docker_time(c["Start"])).total_seconds(),
            int(c["ExitCode"]),
        )
        for c in checks
    }


def ready_after_s(container: str, marker: str) -> float | None:
    """Seconds from the container's start to the first log line holding `marker` (Docker's timestamps)."""
    logs = container_logs(container, timestamps=True)
    for line in logs.splitlines():
        if marker in line:
            stamp = line.split(" ", 1)[0]
            return (docker_time(stamp) - started_at(container)).total_seconds()
    return None


def exec_json(container: str, url: str) -> dict[str, Any]:
    """GET `url` from inside a container (curl is in the API image): one replica, not whichever the proxy picks."""
    out = docker("exec", container, "curl", "-sS", "--max-time", "5", url, timeout=30)
    body: dict[str, Any] = json.loads(out)
    return body
