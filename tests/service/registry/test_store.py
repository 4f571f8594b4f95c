from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import redis

from usqa.service.registry import (
    CHAMPION,
    REGISTRY_CHANNEL,
    Announcement,
    IntegrityError,
    Manifest,
    ModelRegistry,
    RedisAnnouncer,
    RegistryError,
)
from usqa.service.registry import store as S
from usqa.service.registry.trust import MSG_LOOKED_IN


def make_manifest(name: str = "prostate") -> Manifest:
    return Manifest(
        name=name,
        task="classify",
        class_names=["absent", "present"],
        preprocessing={"size": 128, "crop": "none", "interpolation": "area"},
        graphs={"controller": "controller.onnx", "predictor": "predictor.onnx"},
        thresholds={"0.05": 0.31},
    )


def test_publish_assigns_growing_versions_and_hashes(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    v1 = registry.publish(make_manifest(), sources, alias=CHAMPION)
    v2 = registry.publish(make_manifest(), sources)
    assert (v1.version, v2.version) == (1, 2)
    assert registry.versions("prostate") == [1, 2]
    assert registry.resolve("prostate", CHAMPION) == 1
    assert registry.resolve("prostate", "latest") == 2
    loaded = registry.load("prostate", CHAMPION)
    assert loaded.manifest.version == 1
    assert set(loaded.manifest.files) == {"controller.onnx", "predictor.onnx"}
    assert loaded.graph_path("predictor").read_bytes() == sources["predictor.onnx"].read_bytes()
    # A deleted version's number is never reused.
    import shutil

    shutil.rmtree(tmp_path / "reg" / "prostate" / "2")
    assert registry.publish(make_manifest(), sources).version == 3


def test_tampered_or_missing_file_is_refused(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    version = registry.publish(make_manifest(), sources, alias=CHAMPION)
    target = version.path / "predictor.onnx"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError) as info:
        registry.load("prostate")
    assert str(info.value) == S.MSG_TAMPERED.format(name="prostate", version=1, file="predictor.onnx")
    target.unlink()
    with pytest.raises(IntegrityError, match="listed in the manifest is missing"):
        registry.load("prostate")
    with pytest.raises(IntegrityError):
        registry.promote("prostate", 1)


def test_bad_publishes_leave_nothing(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="must be letters"):
        registry.publish(make_manifest("../escape"), sources)
    with pytest.raises(RegistryError, match="does not exist"):
        registry.publish(make_manifest(), {"controller.onnx": tmp_path / "nope.onnx"})
    with pytest.raises(RegistryError, match="not among the published files"):
        registry.publish(make_manifest(), {"controller.onnx": sources["controller.onnx"]})
    assert registry.names() == []


def test_publish_killed_half_way_leaves_no_visible_version(tmp_path: Path, sources: dict[str, Path]) -> None:
    root = tmp_path / "reg"
    # A real process is SIGKILLed after writing its first file into the temporary folder, before the rename.
    script = textwrap.dedent(
        f"""
        import os, shutil, signal
        from pathlib import Path
        from usqa.service.registry import ModelRegistry
        from tests.service.registry.test_store import make_manifest
        real_copy = shutil.copyfile
        def copy_then_die(src, dst):
            real_copy(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        shutil.copyfile = copy_then_die
        ModelRegistry(Path({str(root)!r})).publish(make_manifest(), {{
            "controller.onnx": Path({str(sources["controller.onnx"])!r}),
            "predictor.onnx": Path({str(sources["predictor.onnx"])!r}),
        }})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[3], check=False)
    assert proc.returncode == -9
    leftovers = [p.name for p in (root / "prostate").iterdir()]
    assert any(name.startswith(S.TMP_PREFIX) for name in leftovers)  # the kill happened mid-publish
    registry = ModelRegistry(root)
    assert registry.versions("prostate") == []
    with pytest.raises(RegistryError, match="no 'champion' alias"):
        registry.load("prostate")
    # The next publish cleans up and takes version 1.
    assert registry.publish(make_manifest(), sources).version == 1
    assert not [p for p in (root / "prostate").iterdir() if p.name.startswith(S.TMP_PREFIX)]


def test_promote_and_rollback_walk_the_history(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    for _ in range(3):
        registry.publish(make_manifest(), sources, alias=CHAMPION)
    assert registry.aliases("prostate").history[CHAMPION] == [1, 2, 3]
    assert registry.rollback("prostate") == 2
    assert registry.resolve("prostate", CHAMPION) == 2
    assert registry.rollback("prostate") == 1
    with pytest.raises(RegistryError, match="no earlier 'champion'"):
        registry.rollback("prostate")
    assert registry.promote("prostate", "latest") == 3
    assert registry.promote("prostate", 2, alias="challenger") == 2
    assert registry.aliases("prostate").current == {"champion": 3, "challenger": 2}
    with pytest.raises(RegistryError, match="has no version '9'"):
        registry.promote("prostate", "9")
    with pytest.raises(RegistryError, match="no model named 'other'"):
        registry.load("other")


def test_concurrent_readers_never_see_a_half_alias_switch(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    registry.publish(make_manifest(), sources)
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        reader = ModelRegistry(tmp_path / "reg")
        while not stop.is_set():
            try:
                seen.add(reader.load("prostate", CHAMPION).version)
            except BaseException as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(200):
        registry.promote("prostate", 1 + i % 2)
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert seen <= {1, 2} and seen


def test_publish_and_promote_are_announced_on_redis(
    tmp_path: Path, sources: dict[str, Path], redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(REGISTRY_CHANNEL)
    pubsub.get_message(timeout=1.0)
    announcer = RedisAnnouncer(redis_url)
    registry = ModelRegistry(tmp_path / "reg", announcer=announcer)
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    registry.publish(make_manifest(), sources)
    registry.promote("prostate", 2)
    events = []
    for _ in range(50):
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            events.append(Announcement.from_json(message["data"]))
        if len(events) == 3:
            break
    assert [(e.event, e.version, e.alias) for e in events] == [
        ("published", 1, "champion"),
        ("published", 2, None),
        ("promoted", 2, "champion"),
    ]
    pubsub.close()
    announcer.close()


def test_an_unreachable_redis_does_not_fail_a_publish(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(
        tmp_path / "reg", announcer=RedisAnnouncer("redis://127.0.0.1:1/0", timeout_s=0.2)
    )
    assert registry.publish(make_manifest(), sources, alias=CHAMPION).version == 1


def test_aliases_file_is_plain_json(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    registry.publish(make_manifest(), sources, alias=CHAMPION)
    data = json.loads((tmp_path / "reg" / "prostate" / S.ALIASES_FILE).read_text())
    assert data == {"aliases": {"champion": 1}, "history": {"champion": [1]}}


def test_a_job_publishes_at_most_once(tmp_path: Path, sources: dict[str, Path]) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    manifest = make_manifest("m").model_copy(update={"job_id": "a" * 32, "dataset": "ds-0123456789abcdef"})
    first = registry.publish(manifest, sources)
    again = registry.publish(manifest, sources)
    assert again.version == first.version and registry.versions("m") == [first.version]
    assert registry.find_job("m", "a" * 32) == first.version and registry.find_job("m", "b" * 32) is None
    assert registry.load("m", first.version).manifest.dataset == "ds-0123456789abcdef"


# -- read-only registries behind the root (the shipped model) -----------------------------------------------


def test_a_name_the_root_lacks_is_read_wholly_from_a_read_only_registry(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    shipped = ModelRegistry(tmp_path / "shipped")
    shipped.publish(make_manifest(), sources, alias=CHAMPION)
    registry = ModelRegistry(tmp_path / "writable", read_only=[shipped.root])
    assert registry.names() == ["prostate"] and registry.is_read_only("prostate")
    loaded = registry.load("prostate")
    assert loaded.version == 1 and loaded.path == shipped.root / "prostate" / "1"
    with pytest.raises(RegistryError, match="read-only"):
        registry.promote("prostate", 1)
    assert not (tmp_path / "writable").exists()
    # The first publish continues the shipped numbers, then the writable copy shadows the shipped one.
    assert registry.publish(make_manifest(), sources).version == 2
    with pytest.raises(RegistryError, match="has no 'champion' alias"):
        registry.resolve("prostate", CHAMPION)
    registry.promote("prostate", 2)
    assert registry.load("prostate").path == tmp_path / "writable" / "prostate" / "2"
    assert not registry.is_read_only("prostate") and shipped.resolve("prostate", CHAMPION) == 1


def test_a_missing_model_names_every_folder_searched_for_operators_only(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "writable", read_only=[tmp_path / "shipped"])
    with pytest.raises(S.ModelNotFoundError) as caught:
        registry.load("nothing")
    assert str(caught.value) == S.MSG_NO_MODEL.format(name="nothing")  # what an API client sees
    assert S.explain(caught.value) == MSG_LOOKED_IN.format(
        message=caught.value, places=f"{tmp_path / 'writable'}, {tmp_path / 'shipped'}"
    )
