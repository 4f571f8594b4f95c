"""A registry that trusts nothing it reads (issue 28): graph paths confined to the version folder, every graph
listed and hashed, alias names validated, and a promotion that builds the sessions before it moves an alias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usqa.service.registry import CHAMPION, IntegrityError, ModelRegistry, RegistryError, UnservableError
from usqa.service.registry.trust import ALIAS_MAX_CHARS, plain_file_name
from usqa.service.registry.warmup import serving_check
from usqa.service.settings import Settings

from ..conftest import fixture_manifest, write_graphs
from .test_store import make_manifest


def _rewrite_manifest(registry: ModelRegistry, version: int, **changes: object) -> None:
    path = registry.root / "prostate" / str(version) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "graph",
    ["../../outside.onnx", "/etc/passwd", "sub/controller.onnx", "..", ".", "", "a\\b.onnx", ".hidden"],
)
def test_a_graph_outside_its_version_folder_is_refused(
    tmp_path: Path, sources: dict[str, Path], graph: str
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"not a graph")
    _rewrite_manifest(registry, 1, graphs={"controller": graph, "predictor": "predictor.onnx"})
    with pytest.raises(IntegrityError, match="not a file of the version folder"):
        registry.load("prostate", CHAMPION)


def test_a_graph_the_manifest_does_not_hash_is_refused(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    _rewrite_manifest(registry, 1, files={})  # once, an empty list turned the check off
    with pytest.raises(IntegrityError, match="is not listed with a sha256"):
        registry.load("prostate", CHAMPION)


def test_a_hashed_file_that_links_out_of_the_folder_is_refused(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    version = registry.publish(make_manifest(), sources, alias=CHAMPION)
    target = version.path / "controller.onnx"
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(IntegrityError, match="not a file of the version folder"):
        registry.load("prostate", CHAMPION)


def test_publish_refuses_file_names_that_leave_the_folder(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="plain names"):
        registry.publish(make_manifest(), {**sources, "../escape.onnx": sources["controller.onnx"]})
    assert not (tmp_path / "reg" / "escape.onnx").exists()


@pytest.mark.parametrize(
    "alias", ["x" * (ALIAS_MAX_CHARS + 1), "x" * 200_000, "", ".hidden", "a/b", "champ ion"]
)
def test_alias_names_are_validated(tmp_path: Path, sources: dict[str, Path], alias: str) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    with pytest.raises(RegistryError, match="alias") as raised:
        registry.promote("prostate", 1, alias=alias)
    assert len(str(raised.value)) < 300
    with pytest.raises(RegistryError, match="alias"):
        registry.publish(make_manifest(), sources, alias=alias)
    assert registry.aliases("prostate").current == {CHAMPION: 1}


def test_a_promotion_builds_the_sessions_and_refuses_what_cannot_serve(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    graphs = write_graphs(tmp_path / "graphs", "classify")
    registry.publish(fixture_manifest("prostate", "classify"), graphs, alias=CHAMPION)
    registry.publish(make_manifest(), sources)  # files intact and hashed, graphs garbage
    check = serving_check(Settings(providers=("CPUExecutionProvider",)))
    with pytest.raises(UnservableError, match="cannot be served, so 'champion' stays where it was"):
        registry.promote("prostate", 2, verify=check)
    assert registry.resolve("prostate", CHAMPION) == 1
    registry.publish(fixture_manifest("prostate", "classify"), graphs)
    assert registry.promote("prostate", 3, verify=check) == 3


def test_plain_file_names() -> None:
    assert plain_file_name("controller.onnx")
    assert not any(plain_file_name(name) for name in ("../x", "/x", "a/b", "..", ".", "", "x\x00", "a\\b"))
