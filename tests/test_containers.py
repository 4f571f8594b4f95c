"""Static checks of the container files (no Docker engine runs on the build machines)."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINER_FILES = [REPO_ROOT / "docker-compose.yml", *sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))]


def test_every_copied_path_exists() -> None:
    for dockerfile in (REPO_ROOT / "docker").glob("*.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"


def test_every_usqa_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for path in CONTAINER_FILES:
        for name in re.findall(r"\bUSQA_([A-Z_]+)\b", path.read_text()):
            assert name in fields, f"{path.name}: USQA_{name} is not a setting of service.settings.Settings"


def test_api_image_runs_as_non_root_with_a_healthcheck() -> None:
    text = (REPO_ROOT / "docker" / "api.Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", text, re.MULTILINE)
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert '".[service]"' in text and "torch" not in text.split("RUN pip install", 1)[1].split("\n", 1)[0]
