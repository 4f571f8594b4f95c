"""The layers contract (pyproject's [tool.importlinter]) holds on the tree and fails on a planted import.

`make lint` runs `lint-imports` on the checkout; these tests copy the packages to a temporary folder, plant
one forbidden import at a time and check that the linter refuses it and names the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_tree(dest: Path) -> Path:
    # The one shipped package, and an empty checkout-only folder for the contract that keeps it out of `usqa`.
    shutil.copytree(
        REPO / "usqa", dest / "usqa", ignore=shutil.ignore_patterns("__pycache__", "static", "shipped")
    )
    (dest / "bench").mkdir()
    (dest / "bench" / "__init__.py").write_text("")
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # Only the copy may be importable: the checkout's editable install must not answer for it.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_tree(tmp_path_factory.mktemp("layers"))


def test_the_checkout_keeps_every_contract(pristine: Path) -> None:
    result = _lint(pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "named"),
    [
        (
            "usqa/service/frames/decode.py",
            "import usqa.trainer.networks",
            "usqa.service.frames.decode -> usqa.trainer.networks",
        ),
        ("usqa/service/api/app.py", "from usqa import cli", "usqa.service.api.app -> usqa.cli"),
        ("usqa/trainer/networks.py", "import usqa.client", "usqa.trainer.networks -> usqa.client"),
        ("usqa/service/settings.py", "import bench", "usqa.service.settings -> bench"),
        ("usqa/service/inference/model.py", "import torch", "usqa.service.inference.model -> torch"),
        ("usqa/trainer/data.py", "import usqa.local_stack", "usqa.trainer.data -> usqa.local_stack"),
        (
            "usqa/contracts/training.py",
            "import usqa.service.settings",
            "usqa.contracts.training -> usqa.service.settings",
        ),
        ("usqa/contracts/graphs.py", "import numpy", "usqa.contracts.graphs -> numpy"),
    ],
)
def test_a_planted_import_fails_and_is_named(
    tmp_path: Path, pristine: Path, module: str, planted: str, named: str
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(pristine, root)
    path = root / module
    text = path.read_text(encoding="utf-8")
    # After the module docstring and `from __future__`, where a real import would go.
    anchor = "from __future__ import annotations\n"
    assert anchor in text, f"{module} has no `from __future__` line to plant after"
    path.write_text(text.replace(anchor, f"{anchor}{planted}  # planted\n", 1), encoding="utf-8")
    result = _lint(root)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert named in result.stdout, result.stdout


BLOCKED_RUNTIME_IMPORT = """
import importlib, pkgutil, sys

class Blocker:
    # What the API image does not have: the trainer package and torch.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch" or name.startswith("usqa.trainer"):
            raise ImportError(f"{name} is not in the API image")
        return None

sys.meta_path.insert(0, Blocker())
import usqa.contracts, usqa.service
for package in (usqa.contracts, usqa.service):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
from usqa.cli import build_parser
build_parser(["serve"])
print("ok")
"""


def test_the_runtime_imports_without_trainer_or_torch() -> None:
    """What the API image holds (usqa less usqa.trainer) imports with the trainer and torch absent."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUNTIME_IMPORT],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
