"""Static checks of docker-compose.yml: services, volumes, profiles, GPUs, hardening, the compose-test overlay,
and `docker compose config` where its binary exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.containers import (
    APP_SERVICES,
    COMPOSE_FILE,
    COMPOSE_TEST_FILE,
    COMPOSE_TEST_PACKAGE,
    DEFAULT_SERVICES,
    GPU_SERVICES,
    HARDENED_SERVICES,
    MONITORING_SERVICES,
    PACS_SERVICES,
    REPO_ROOT,
    SHARED_VOLUMES,
    WORKER_DOCKERFILE,
    WORKER_SERVICES,
    WORKER_VOLUMES,
    arguments,
    compose,
    docker_compose_command,
    dockerfile_of,
    gpu_reservations,
    image_environment,
    installed_extras,
    mounts,
    services,
)

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
    assert by_profile == {
        "": DEFAULT_SERVICES,
        "gpu": GPU_SERVICES,
        "monitoring": MONITORING_SERVICES,
        "pacs": PACS_SERVICES,
    }


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


@pytest.mark.parametrize("overlays", [(), (COMPOSE_TEST_FILE,)], ids=["alone", "with-compose-test"])
def test_docker_compose_accepts_the_file(overlays: tuple[Path, ...]) -> None:
    command = docker_compose_command()
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
