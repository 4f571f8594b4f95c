"""What the container tests read: the compose file, the Dockerfiles' instructions, the proxy's and the
monitoring's configuration, and the exported metric names (no Docker engine runs on the build machines)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from usqa.service.api.metrics import ServiceMetrics

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
API_DOCKERFILE = DOCKER_DIR / "api.Dockerfile"
WORKER_DOCKERFILE = DOCKER_DIR / "worker.Dockerfile"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
CONTAINER_FILES = [COMPOSE_FILE, *sorted(p for p in DOCKER_DIR.rglob("*") if p.is_file())]
PROMETHEUS_CONFIG = DOCKER_DIR / "prometheus" / "prometheus.yml"
PROXY_DOCKERFILE = DOCKER_DIR / "proxy.Dockerfile"
HAPROXY_CONFIG = DOCKER_DIR / "proxy" / "haproxy.cfg"
COMPOSE_TEST_FILE = DOCKER_DIR / "compose-test.yml"
COMPOSE_TEST_PACKAGE = REPO_ROOT / "scripts" / "compose_test"
HARDENED_SERVICES = ("proxy", "listener", *("api", "worker", "api-gpu", "worker-gpu"))
GRAFANA_PROVISIONING = DOCKER_DIR / "grafana" / "provisioning"

DEFAULT_SERVICES = {"redis", "models-seed", "proxy", "api", "worker"}
APP_SERVICES = ("api", "worker", "api-gpu", "worker-gpu")
WORKER_SERVICES = ("worker", "worker-gpu")
GPU_SERVICES = {"api-gpu", "worker-gpu"}
MONITORING_SERVICES = {"prometheus", "grafana"}
PACS_SERVICES = {"pacs", "listener"}
# Setting (USQA_*) -> the named volume mounted at the path it names, in every API and worker container.
SHARED_VOLUMES = {"REGISTRY": "models", "DATA_ROOT": "data", "JOBS_ROOT": "jobs"}
WORKER_VOLUMES = {**SHARED_VOLUMES, "WORK_ROOT": "work"}
IMAGE_UID = "10001"
# What the dashboard must keep showing: latency, throughput, dropped frames, scores, served model, swaps.
DASHBOARD_METRICS = {
    "usqa_inference_request_duration_seconds_bucket",
    "usqa_inference_count_total",
    "usqa_scan_frames_dropped_total",
    "usqa_amenability_score_bucket",
    "usqa_model_info",
    "usqa_execution_provider_info",
    "usqa_model_swap_total",
}
# The series each metric type exposes (Prometheus text format, as prometheus_client writes it).
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}
METRIC_NAME = re.compile(r"\busqa_[a-z0-9_]+\b")


# -- helpers ------------------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def arguments(dockerfile: Path, keyword: str) -> list[str]:
    return [args for kw, args in instructions(dockerfile) if kw == keyword]


def build_args(dockerfile: Path) -> dict[str, str]:
    """ARG defaults of a Dockerfile."""
    return dict(arg.split("=", 1) for arg in arguments(dockerfile, "ARG") if "=" in arg)


def image_environment(dockerfile: Path) -> dict[str, str]:
    return {
        name: value for env in arguments(dockerfile, "ENV") for name, value in re.findall(r"(\w+)=(\S+)", env)
    }


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    return REPO_ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def installed_extras(dockerfile: Path, build: dict[str, Any] | None = None) -> set[str]:
    """The extras of `pip install [--options] ".[...]"`, with build arguments substituted (compose's over the
    defaults)."""
    values = {**build_args(dockerfile), **((build or {}).get("args") or {})}
    extras: set[str] = set()
    for run in arguments(dockerfile, "RUN"):
        for spec in re.findall(r'pip install (?:--[\w-]+ )*"\.\[([^\]]+)\]"', run):
            resolved = re.sub(r"\$\{(\w+)\}", lambda m: str(values[m.group(1)]), spec)
            extras |= {extra.strip() for extra in resolved.split(",")}
    return extras


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a ./ path) of a service's short-syntax volumes."""
    result: dict[str, str] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        result[target] = source
    return result


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file behind a container path, through the service's ./ bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if source.startswith(".") and path.is_relative_to(target):
            return REPO_ROOT / source / path.relative_to(target)
    return None


def container_ports(name: str) -> set[int]:
    """Ports a service listens on: the container side of `ports`, and its image's EXPOSE."""
    service = services()[name]
    ports = {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service.get("ports", [])}
    if "build" in service:
        for expose in arguments(dockerfile_of(service), "EXPOSE"):
            ports |= {int(port.split("/")[0]) for port in expose.split()}
    return ports


def gpu_reservations(service: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return devices


def exported_series() -> set[str]:
    """Every series name the service's /metrics can expose."""
    metrics = ServiceMetrics()
    metrics.track_drift(lambda: None)
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SERIES_SUFFIXES[family.type]
    }


def expressions(node: Any) -> Iterator[str]:
    """Every `expr` string in a parsed dashboard or rules file."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def datasource_uids(node: Any) -> Iterator[str]:
    """The uid of every `datasource` a dashboard's panels and queries name."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value["uid"]
            else:
                yield from datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_uids(item)


def grafana_dashboards() -> list[Path]:
    grafana = services()["grafana"]
    dashboards: list[Path] = []
    for provider_file in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            folder = host_path(grafana, provider["options"]["path"])
            assert folder is not None and folder.is_dir(), (
                f"{provider_file.name}: {provider['options']['path']}"
            )
            dashboards += sorted(folder.glob("*.json"))
    return dashboards


def prometheus_rule_files() -> list[Path]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    paths = [host_path(services()["prometheus"], rule) for rule in config.get("rule_files", [])]
    assert all(path is not None and path.is_file() for path in paths), f"rule files: {paths}"
    return [path for path in paths if path is not None]


# -- scale-out: the proxy in front of the API replicas -----------------------------------------------------


def haproxy_sections() -> dict[str, list[str]]:
    """`section name` -> its directive lines (comments dropped) of the HAProxy config."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY_CONFIG.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return sections


# -- docker compose itself, where its binary exists (it validates offline: no daemon, no pulls) -------------


def docker_compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")  # Debian's compose v1, which make compose-test also drives
    return [legacy] if legacy else None


def installed_locks(dockerfile: Path) -> list[str]:
    """The lock files a Dockerfile's RUNs install with `pip install --require-hashes -r`."""
    return [
        lock for run in arguments(dockerfile, "RUN") for lock in re.findall(r"--require-hashes -r (\S+)", run)
    ]


def lock_header(lock: Path) -> str:
    """The command that wrote a lock (`make lock`, uv pip compile), from its header."""
    return next(line for line in lock.read_text().splitlines()[:3] if "uv pip compile" in line)
