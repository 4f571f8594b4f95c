"""The wheel is the product: built from a copy of the checkout, installed with its `service` extra into a fresh
virtual environment, and run from a folder outside the repository, it serves and scores with the shipped model.

pip keeps its own configuration (find-links, indexes, constraints: what `make install` gets); the versions this
environment already runs are passed as constraints, so pip takes the same (cached or local) wheels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from usqa.contracts.version import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "usqa-prostate"
# A 30-frame ultrasound cine (YBR_FULL_422) that pydicom ships inside its package.
DICOM_CINE = "examples_ybr_color.dcm"
DICOM_FRAMES = 30
# Never copied into the build: environments, run outputs and caches (they must not reach a wheel anyway).
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", "runs", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache", ".hypothesis"
)
COMMAND_TIMEOUT_S = 120
SERVE_READY_TIMEOUT_S = 90
SHIPPED_IN_WHEEL = "usqa/service/registry/shipped"
# The supported Pythons: pyproject's requires-python and classifiers, the README and ruff/mypy's floor agree.
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "usqa"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _checked(command: list[str], timeout: float = COMMAND_TIMEOUT_S) -> None:
    # Without PYTHONPATH: a checkout on it (its usqa.egg-info) would make pip think usqa is installed already.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment a new user has: no checkout on the path, no USQA_* settings, this venv first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("USQA_") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("packaging")
    # A copy, so the build's build/ and egg-info never race a developer's own and no stale build/lib leaks in.
    source = base / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_COPIED, symlinks=True)
    dist = base / "dist"
    _checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)]
    )
    (wheel,) = dist.glob("usqa-*.whl")
    constraints = base / "constraints.txt"
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = [line for line in frozen.splitlines() if "==" in line and not line.startswith("usqa==")]
    constraints.write_text("\n".join(pins) + "\n")
    venv = base / "venv"
    # No --system-site-packages; no pip inside either: this environment's pip installs into it.
    _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _checked(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--only-binary=:all:",
            "--constraint",
            str(constraints),
            f"{wheel}[service]",
        ],
        timeout=600,
    )
    workdir = base / "elsewhere"
    workdir.mkdir()
    yield Installed(wheel=wheel, bin=venv / "bin", workdir=workdir, env=_clean_env(venv))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_wheel_holds_the_packages_and_the_shipped_model_only(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"usqa", f"usqa-{__version__}.dist-info"}
    leaked = [
        n
        for n in names
        if n.endswith((".pyc", ".lock", ".last_version"))
        or re.search(r"(^|/)(tests|runs|bench|__pycache__|\.[a-z_]*cache|\.tmp-[^/]*)/", n)
    ]
    assert leaked == []
    shipped = sorted(n.removeprefix(f"{SHIPPED_IN_WHEEL}/") for n in names if n.startswith(SHIPPED_IN_WHEEL))
    in_repo = sorted(
        str(p.relative_to(REPO_ROOT / "models"))
        for p in (REPO_ROOT / "models").rglob("*")
        if p.is_file()
        and (p.name == "aliases.json" or p.parent.name.isdigit())
        and not p.name.startswith(".")
    )
    assert shipped == in_repo and f"{MODEL_NAME}/aliases.json" in shipped


@pytest.mark.slow
@pytest.mark.parametrize("name", ["service", "trainer", "contracts"])
def test_the_wheel_installs_no_generic_top_level_name(installed: Installed, name: str) -> None:
    """One distribution, one top-level name: `import service` in a user's venv is theirs, not ours."""
    result = subprocess.run(
        [str(installed.bin / "python"), "-c", f"import {name}"],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, result.stderr


@pytest.mark.slow
def test_the_installed_wheel_scores_and_serves_from_another_folder(installed: Installed) -> None:
    where = subprocess.run(
        [str(installed.bin / "python"), "-c", "import usqa.service; print(usqa.service.__file__)"],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not Path(where.strip()).is_relative_to(REPO_ROOT), "the checkout leaked into the fresh venv"

    version = installed.run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"usqa {__version__}")

    listing = installed.run("models", "list")
    assert listing.returncode == 0, listing.stderr
    assert MODEL_NAME in listing.stdout and "champion" in listing.stdout and "read-only" in listing.stdout

    cine = subprocess.run(
        [
            str(installed.bin / "python"),
            "-c",
            f"import pydicom.data as d; print(d.get_testdata_file({DICOM_CINE!r}))",
        ],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    scored = installed.run("score", cine, "--out", "scores")
    assert scored.returncode == 0, scored.stderr
    assert f"scored {DICOM_FRAMES} frames with {MODEL_NAME} version" in scored.stdout
    rows = (installed.workdir / "scores" / "scores.csv").read_text().splitlines()
    assert len(rows) == DICOM_FRAMES + 1
    # Reading never creates the writable registry in the user's folder.
    assert not (installed.workdir / "models").exists()

    missing = installed.run("models", "show", "no-such-model")
    assert missing.returncode == 2 and "looked in:" in missing.stderr and SHIPPED_IN_WHEEL in missing.stderr

    port = _free_port()
    log = installed.workdir / "serve.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [str(installed.bin / "usqa"), "serve", "--port", str(port), "--log-level", "warning"],
            cwd=installed.workdir,
            env=installed.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
        ready: dict[str, object] | None = None
        while ready is None:
            assert server.poll() is None, f"usqa serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"usqa serve did not turn ready:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    ready = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        model = ready["model"]
        assert isinstance(model, dict) and model["name"] == MODEL_NAME
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_pyproject_readme_and_checkers_state_the_same_pythons() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    lowest, highest = SUPPORTED_PYTHONS[0], SUPPORTED_PYTHONS[-1]
    next_minor = f"3.{int(highest.split('.')[1]) + 1}"
    assert project["project"]["requires-python"] == f">={lowest},<{next_minor}"
    classified = [
        c.rsplit(" :: ", 1)[1]
        for c in project["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert tuple(classified) == SUPPORTED_PYTHONS
    assert project["tool"]["ruff"]["target-version"] == f"py{lowest.replace('.', '')}"
    assert project["tool"]["mypy"]["python_version"] == lowest
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"Python {', '.join(SUPPORTED_PYTHONS[:-1])} and {highest}" in readme
