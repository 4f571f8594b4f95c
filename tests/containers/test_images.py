"""Static checks of the images: copied paths, settings, user, health checks, what each image installs."""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path

import pytest

from tests.support.containers import (
    API_DOCKERFILE,
    CONTAINER_FILES,
    DOCKERFILES,
    IMAGE_UID,
    REPO_ROOT,
    WORKER_DOCKERFILE,
    arguments,
    build_args,
    dockerfile_of,
    installed_extras,
    installed_locks,
    lock_header,
    services,
)
from usqa.cli import build_parser
from usqa.service.settings import Settings

# -- images ---------------------------------------------------------------------------------------------


def test_every_copied_path_exists() -> None:
    for dockerfile in DOCKERFILES:
        for copy in arguments(dockerfile, "COPY"):
            for source in [word for word in copy.split() if not word.startswith("--")][:-1]:
                found = list(REPO_ROOT.glob(source)) if "*" in source else [REPO_ROOT / source]
                assert found and all(p.exists() for p in found), (
                    f"{dockerfile.name}: COPY {source} does not exist"
                )


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


@pytest.mark.parametrize(
    ("dockerfile", "lock"), [(API_DOCKERFILE, "service.lock"), (WORKER_DOCKERFILE, "worker.lock")]
)
def test_images_install_their_hashed_lock_then_usqa_without_dependencies(dockerfile: Path, lock: str) -> None:
    assert installed_locks(dockerfile) == [lock]
    copied = [arg.split() for arg in arguments(dockerfile, "COPY")]
    assert any(f"requirements/{lock}" in sources for sources in copied), f"{dockerfile.name} copies no {lock}"
    package_installs = [run for run in arguments(dockerfile, "RUN") if re.search(r'pip install .*"\.\[', run)]
    assert package_installs and all('pip install --no-deps ".[' in run for run in package_installs)
    # The lock was written for the image's Python and holds every extra the image names (gpu aside: its
    # onnxruntime-gpu replaces the locked onnxruntime in the gpu variant).
    header = lock_header(REPO_ROOT / "requirements" / lock)
    (base,) = [arg for arg in arguments(dockerfile, "FROM") if arg.startswith("python:")]
    assert f"--python-version {base.removeprefix('python:').split('-')[0]}" in header
    for extra in installed_extras(dockerfile) - {"gpu"}:
        assert f"--extra {extra}" in header, f"{lock} lacks the {extra} extra of {dockerfile.name}"
    # torch is the worker image's own step (its variant's index); no lock holds it.
    assert "torch==" not in (REPO_ROOT / "requirements" / lock).read_text()


# `usqa worker` needs the train extra (the worker image has it): its parser refuses to build without torch.
@pytest.mark.torch
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
