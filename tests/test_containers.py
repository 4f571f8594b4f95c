"""Static checks of the container files (no Docker engine runs on the build machines)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from usqa.cli import build_parser
from usqa.service.api.metrics import ServiceMetrics
from usqa.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
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
HARDENED_SERVICES = ("proxy", *("api", "worker", "api-gpu", "worker-gpu"))
GRAFANA_PROVISIONING = DOCKER_DIR / "grafana" / "provisioning"

DEFAULT_SERVICES = {"redis", "models-seed", "proxy", "api", "worker"}
APP_SERVICES = ("api", "worker", "api-gpu", "worker-gpu")
WORKER_SERVICES = ("worker", "worker-gpu")
GPU_SERVICES = {"api-gpu", "worker-gpu"}
MONITORING_SERVICES = {"prometheus", "grafana"}
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
    """The extras of `pip install ".[...]"`, with build arguments substituted (compose's over the defaults)."""
    values = {**build_args(dockerfile), **((build or {}).get("args") or {})}
    extras: set[str] = set()
    for run in arguments(dockerfile, "RUN"):
        for spec in re.findall(r'pip install "\.\[([^\]]+)\]"', run):
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


# -- images ---------------------------------------------------------------------------------------------


def test_every_copied_path_exists() -> None:
    for dockerfile in DOCKERFILES:
        for copy in arguments(dockerfile, "COPY"):
            for source in [word for word in copy.split() if not word.startswith("--")][:-1]:
                assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"


def test_every_usqa_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for path in CONTAINER_FILES:
        for name in re.findall(r"\bUSQA_([A-Z_]+)\b", path.read_text()):
            assert name in fields, (
                f"{path.name}: USQA_{name} is not a setting of usqa.service.settings.Settings"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_run_as_the_same_non_root_user_with_a_healthcheck(dockerfile: Path) -> None:
    users = arguments(dockerfile, "USER")
    assert users and users[-1] not in {"root", "0"}, f"{dockerfile.name} runs as root"
    # One uid in every image: files one container writes on a shared volume are the other's to change.
    creates_user = re.compile(rf"useradd [^&]*--uid {IMAGE_UID} [^&]*\b{users[-1]}\b")
    assert any(creates_user.search(run) for run in arguments(dockerfile, "RUN")), f"{dockerfile.name}: uid"
    healthchecks = arguments(dockerfile, "HEALTHCHECK")
    assert len(healthchecks) == 1 and " CMD " in f" {healthchecks[0]}", f"{dockerfile.name}: no HEALTHCHECK"


def test_api_image_probes_readiness_and_never_installs_torch() -> None:
    assert "/readyz" in arguments(API_DOCKERFILE, "HEALTHCHECK")[0]
    assert not any("torch" in run for run in arguments(API_DOCKERFILE, "RUN"))
    variants = [None] + [
        s["build"] for s in services().values() if "build" in s and dockerfile_of(s) == API_DOCKERFILE
    ]
    for build in variants:
        extras = installed_extras(API_DOCKERFILE, build)
        assert "service" in extras and "train" not in extras, f"api image extras {extras}"


def test_api_image_copies_the_runtime_layers_and_no_trainer() -> None:
    copied = {arg.split()[0].rstrip("/") for arg in arguments(API_DOCKERFILE, "COPY")}
    assert {"usqa/contracts", "usqa/service", "usqa/client"} <= copied, copied
    assert not any(c == "usqa" or c.startswith("usqa/trainer") for c in copied), (
        f"the API image must not carry the trainer (issue: layers): {copied}"
    )


def test_worker_image_installs_the_train_extra_and_the_pinned_cpu_torch() -> None:
    assert {"service", "train"} <= installed_extras(WORKER_DOCKERFILE)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pins = [
        dep for dep in pyproject["project"]["optional-dependencies"]["train"] if dep.startswith("torch==")
    ]
    defaults = build_args(WORKER_DOCKERFILE)
    assert pins == [f"torch=={defaults['TORCH_VERSION']}"], (
        "worker TORCH_VERSION differs from pyproject's pin"
    )
    assert defaults["TORCH_VARIANT"] == "cpu"
    torch_install = next(run for run in arguments(WORKER_DOCKERFILE, "RUN") if "torch==" in run)
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in torch_install
    assert '"torch==${TORCH_VERSION}+${TORCH_VARIANT}"' in torch_install


def test_worker_image_runs_and_pings_the_celery_worker_without_importing_the_app() -> None:
    assert arguments(WORKER_DOCKERFILE, "CMD") == ['["python", "-m", "usqa", "worker"]']
    healthcheck = arguments(WORKER_DOCKERFILE, "HEALTHCHECK")[0]
    # The broker the settings use (USQA_BROKER_URL, else USQA_REDIS_URL), not `-A usqa.trainer.jobs.app`: importing
    # the app imports torch, which made every check time out on a loaded machine.
    match = re.search(
        r'celery -b "\$\{USQA_BROKER_URL:-\$USQA_REDIS_URL\}" inspect ping -d "(\w+)@\$\{HOSTNAME\}"',
        healthcheck,
    )
    assert match, healthcheck
    assert " -A " not in f" {healthcheck} " and "--app" not in healthcheck
    # ...which is the settings' own fallback.
    assert Settings(redis_url="redis://queue:6379/0", broker_url=None).broker == "redis://queue:6379/0"
    assert (
        Settings(redis_url="redis://queue:6379/0", broker_url="redis://other:6379/1").broker
        == "redis://other:6379/1"
    )
    # The ping must address the node `usqa worker` starts (a container's $HOSTNAME is its hostname).
    worker_args = build_parser(["worker"]).parse_args(["worker"])
    assert worker_args.hostname == f"{match.group(1)}@{socket.gethostname()}"
    # The check's own timeout leaves room for the ping's reply timeout and the celery command's start.
    reply = re.search(r" --timeout (\d+)\b", healthcheck)
    check = re.search(r"--timeout=(\d+)s\b", healthcheck)
    assert reply and check, healthcheck
    reply_s, check_s = int(reply.group(1)), int(check.group(1))
    assert reply_s + 5 <= check_s, healthcheck


# -- compose ----------------------------------------------------------------------------------------------


def test_every_built_service_has_a_dockerfile_and_every_bind_mount_exists() -> None:
    for name, service in services().items():
        if "build" in service:
            assert dockerfile_of(service).is_file(), f"{name}: {dockerfile_of(service)} does not exist"
        for source in mounts(service).values():
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in compose()["volumes"], f"{name}: volume {source} is not declared"


def test_redis_is_healthchecked_and_keeps_the_queue_across_restarts() -> None:
    redis = services()["redis"]
    assert "redis-cli" in redis["healthcheck"]["test"]
    command = [str(word) for word in redis["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert mounts(redis)["/data"] in compose()["volumes"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_a_healthy_redis(name: str) -> None:
    service = services()[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    # The models volume is seeded by one container before any app container mounts it (a race otherwise).
    assert service["depends_on"]["models-seed"]["condition"] == "service_completed_successfully"
    assert mounts(services()["models-seed"]) == {"/srv/usqa/models": "models"}
    assert service["environment"]["USQA_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_volumes_their_settings_name(name: str) -> None:
    service = services()[name]
    volumes = WORKER_VOLUMES if name in WORKER_SERVICES else SHARED_VOLUMES
    image_env = image_environment(dockerfile_of(service))
    for setting, volume in volumes.items():
        path = service["environment"][f"USQA_{setting}"]
        assert mounts(service).get(path) == volume, (
            f"{name}: USQA_{setting}={path} is not the {volume} volume"
        )
        assert image_env[f"USQA_{setting}"] == path, (
            f"{name}: the image's USQA_{setting} differs from compose"
        )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_take_the_token_and_environment_from_the_host(name: str) -> None:
    environment = services()[name]["environment"]
    assert environment["USQA_API_TOKEN"] == "${USQA_API_TOKEN:-}"
    assert environment["USQA_ENVIRONMENT"].startswith("${USQA_ENVIRONMENT")


def test_profiles_keep_gpu_and_monitoring_services_out_of_a_plain_up() -> None:
    by_profile: dict[str, set[str]] = {}
    for name, service in services().items():
        profiles = service.get("profiles", [])
        assert len(profiles) <= 1, f"{name} is in several profiles: {profiles}"
        by_profile.setdefault(profiles[0] if profiles else "", set()).add(name)
    assert by_profile == {"": DEFAULT_SERVICES, "gpu": GPU_SERVICES, "monitoring": MONITORING_SERVICES}


def test_only_gpu_services_reserve_an_nvidia_gpu() -> None:
    for name, service in services().items():
        devices = gpu_reservations(service)
        if name in GPU_SERVICES:
            assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), (
                name
            )
        else:
            assert not devices, f"{name} reserves a GPU outside the gpu profile"


def test_gpu_services_build_gpu_variants_and_refuse_the_cpu() -> None:
    api_gpu, worker_gpu = services()["api-gpu"], services()["worker-gpu"]
    assert "gpu" in installed_extras(dockerfile_of(api_gpu), api_gpu["build"])
    assert api_gpu["environment"]["USQA_REQUIRE_PROVIDER"] == "CUDAExecutionProvider"
    assert dockerfile_of(worker_gpu) == WORKER_DOCKERFILE
    assert worker_gpu["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    assert worker_gpu["environment"]["USQA_TRAIN_DEVICE"] == "cuda"


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


def test_only_the_proxy_publishes_the_api_port_so_api_replicas_scale() -> None:
    proxy, api = services()["proxy"], services()["api"]
    assert dockerfile_of(proxy) == PROXY_DOCKERFILE
    assert [str(port).rsplit(":", 1)[-1] for port in proxy["ports"]] == ["8000"]
    # A fixed host port on a service stops `--scale` at one replica, and a container name stops it too.
    for name in ("api", "worker"):
        assert "ports" not in services()[name] and "container_name" not in services()[name], name
    assert "8000" in [str(port) for port in api["expose"]]


def test_proxy_image_copies_its_config_checks_it_and_probes_its_replicas() -> None:
    copies = arguments(PROXY_DOCKERFILE, "COPY")
    assert any(copy.split()[0] == "docker/proxy/haproxy.cfg" for copy in copies), copies
    target = next(copy.split()[-1] for copy in copies if copy.split()[0] == "docker/proxy/haproxy.cfg")
    assert any("haproxy -c" in run and target in run for run in arguments(PROXY_DOCKERFILE, "RUN"))
    assert target in arguments(PROXY_DOCKERFILE, "CMD")[0]
    assert "/proxyz" in arguments(PROXY_DOCKERFILE, "HEALTHCHECK")[0]
    assert "haproxy" in next(run for run in arguments(PROXY_DOCKERFILE, "RUN") if "apt-get install" in run)


def test_haproxy_balances_ready_replicas_found_by_name_and_passes_websockets() -> None:
    sections = haproxy_sections()
    frontend = sections["frontend http"]
    assert "bind :8000" in frontend and "monitor-uri /proxyz" in frontend
    assert "monitor fail if { nbsrv(api) lt 1 }" in frontend
    backend = sections["backend api"]
    assert "balance roundrobin" in backend
    assert "option httpchk GET /readyz" in backend and "http-check expect status 200" in backend
    defaults = next(line for line in backend if line.startswith("default-server"))
    # Active checks, passive marking down on connection errors, and DNS discovery of every replica.
    for word in ("check", "observe layer4", "on-error mark-down", "resolvers compose", "init-addr none"):
        assert word in defaults, word
    templates = {line.split()[3] for line in backend if line.startswith("server-template")}
    assert templates == {"api:8000", "api-gpu:8000"}
    for host in templates:
        assert host.split(":")[0] in services() and 8000 in container_ports(host.split(":")[0])
    assert "nameserver docker 127.0.0.11:53" in sections["resolvers compose"]
    # WebSocket (/ws/scan) is an upgraded connection: HAProxy's tunnel timeout governs it, not client/server.
    tunnel = next(line for line in sections["defaults"] if line.startswith("timeout tunnel"))
    assert tunnel.split()[-1] in {"1h", "3600s"}
    assert "option redispatch 1" in sections["defaults"]


@pytest.mark.parametrize("name", HARDENED_SERVICES)
def test_app_services_run_read_only_without_capabilities(name: str) -> None:
    service = services()[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]
    if name != "proxy":  # Python's tempfiles (upload spooling) and matplotlib's cache need a writable /tmp
        assert any(str(t).split(":")[0] == "/tmp" for t in service["tmpfs"]), name


@pytest.mark.parametrize("name", ["proxy", "api", "worker"])
def test_default_services_are_healthchecked_by_their_image_and_name_it(name: str) -> None:
    service = services()[name]
    assert len(arguments(dockerfile_of(service), "HEALTHCHECK")) == 1
    # compose-test builds the images under these names and starts the stack with --no-build.
    assert service["image"] == f"usqa-{name}"


def test_compose_test_settings_let_a_killed_job_come_back_within_the_test() -> None:
    overlay: dict[str, Any] = yaml.safe_load(COMPOSE_TEST_FILE.read_text())
    assert set(overlay["services"]) <= set(services())
    for name in ("api", "worker"):
        env = {k: int(v) for k, v in overlay["services"][name]["environment"].items() if k.endswith("_S")}
        soft, hard = env["USQA_JOB_SOFT_TIME_LIMIT_S"], env["USQA_JOB_TIME_LIMIT_S"]
        assert soft < hard < env["USQA_JOB_VISIBILITY_TIMEOUT_S"] <= 300, env
    script = (COMPOSE_TEST_PACKAGE / "config.py").read_text()
    assert all(path in script for path in ("docker-compose.yml", "docker/compose-test.yml"))


def test_compose_test_is_a_make_target_outside_make_test() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^compose-test: .*\n\t\$\(BIN\)/python -m scripts\.compose_test$", makefile, re.M)
    test_target = re.search(r"^test: (.*)$", makefile, re.M)
    assert test_target and "compose-test" not in test_target.group(1)
    docs = (REPO_ROOT / "docs" / "deploy.md").read_text()
    assert "<!-- generated:compose-test begin (make compose-test) -->" in docs
    assert "<!-- generated:compose-test end -->" in docs


def test_compose_test_skips_without_a_docker_engine(tmp_path: Path) -> None:
    # No `docker` on PATH: the script must say "skipped" and succeed, touching nothing.
    result = subprocess.run(
        [sys.executable, "-m", "scripts.compose_test", "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "compose-test: skipped: no Docker engine" in result.stdout


# -- monitoring -------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_api_replica_on_an_existing_port_and_route() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert host_path(services()["prometheus"], "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    ops_routes = (REPO_ROOT / "usqa" / "service" / "api" / "routes" / "ops.py").read_text()
    targets: list[tuple[str, int]] = []
    for job in config["scrape_configs"]:
        assert f'@router.get("{job.get("metrics_path", "/metrics")}"' in ops_routes
        for static in job.get("static_configs", []):
            targets += [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in static["targets"]]
        # DNS discovery: one target per replica of each named service (`--scale api=N`), not one of them.
        for dns in job.get("dns_sd_configs", []):
            assert dns["type"] == "A"
            targets += [(name, int(dns["port"])) for name in dns["names"]]
    assert ("api", 8000) in targets
    for host, port in targets:
        assert host in services(), f"scrape target {host}: no compose service"
        assert port in container_ports(host), f"scrape target {host}:{port}: {host} does not listen there"


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    uids = set()
    for datasource_file in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.yml")):
        for datasource in yaml.safe_load(datasource_file.read_text())["datasources"]:
            host, port = datasource["url"].removeprefix("http://").split(":")
            assert host in services() and int(port) in container_ports(host), datasource["url"]
            uids.add(datasource["uid"])
    dashboards = grafana_dashboards()
    assert dashboards, "no dashboard JSON is provisioned"
    for dashboard in dashboards:
        used = set(datasource_uids(json.loads(dashboard.read_text())))
        assert used <= uids, f"{dashboard.name} names datasources {used - uids} that are not provisioned"


def test_dashboards_and_alert_rules_use_only_exported_metrics() -> None:
    exported = exported_series()
    dashboard_metrics: set[str] = set()
    for dashboard in grafana_dashboards():
        dashboard_metrics |= {
            m for expr in expressions(json.loads(dashboard.read_text())) for m in METRIC_NAME.findall(expr)
        }
    rule_metrics = {
        m
        for path in prometheus_rule_files()
        for expr in expressions(yaml.safe_load(path.read_text()))
        for m in METRIC_NAME.findall(expr)
    }
    assert dashboard_metrics >= DASHBOARD_METRICS, f"dashboard lacks {DASHBOARD_METRICS - dashboard_metrics}"
    assert dashboard_metrics | rule_metrics <= exported, (
        f"not exported: {(dashboard_metrics | rule_metrics) - exported}"
    )


# -- docker compose itself, where its binary exists (it validates offline: no daemon, no pulls) -------------


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")  # Debian's compose v1, which make compose-test also drives
    return [legacy] if legacy else None


@pytest.mark.parametrize("overlays", [(), (COMPOSE_TEST_FILE,)], ids=["alone", "with-compose-test"])
def test_docker_compose_accepts_the_file(overlays: tuple[Path, ...]) -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose on this machine")
    result = subprocess.run(
        [
            *command,
            *(arg for path in (COMPOSE_FILE, *overlays) for arg in ("--file", str(path))),
            "--profile",
            "monitoring",
            "--profile",
            "gpu",
            "config",
            "--quiet",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "USQA_API_TOKEN": "static-check"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
