"""Which registries commands read: USQA_REGISTRY first, then the shipped one (a checkout's models/ here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from usqa.service.registry import CHAMPION, locate
from usqa.service.settings import Settings

REPO_MODELS = Path(__file__).resolve().parents[3] / "models"


def test_a_checkout_ships_its_models_folder() -> None:
    assert locate.shipped_registry() == REPO_MODELS


def test_the_shipped_model_stands_behind_any_writable_registry(tmp_path: Path) -> None:
    registry = locate.open_registry(Settings(registry=tmp_path / "elsewhere"))
    assert registry.read_only == (REPO_MODELS,)
    assert registry.load(Settings().model_name, CHAMPION).path.is_relative_to(REPO_MODELS)


def test_the_shipped_registry_is_not_read_twice_or_when_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert locate.read_only_registries(Settings(registry=REPO_MODELS)) == []
    assert locate.read_only_registries(Settings(registry=tmp_path, shipped_registry=False)) == []
    monkeypatch.setenv("USQA_SHIPPED_REGISTRY", "false")
    assert locate.read_only_registries(Settings(registry=tmp_path)) == []


def test_an_installed_wheel_prefers_its_packaged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "shipped"
    packaged.mkdir()
    monkeypatch.setattr(locate, "SHIPPED_DIR", packaged)
    assert locate.shipped_registry() == packaged
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "absent")
    monkeypatch.setattr(locate, "CHECKOUT_ROOT", tmp_path)  # site-packages: no pyproject.toml beside it
    (tmp_path / "models").mkdir()
    assert locate.shipped_registry() is None
