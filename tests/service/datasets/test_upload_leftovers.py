"""No leftovers, no bare 500 (issue 28): staging left by a killed upload is swept at start-up and after a failed
upload; a full disk or another OSError on the upload path is a JSON error that names no server path."""

from __future__ import annotations

import errno
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from usqa.service.api import create_app
from usqa.service.datasets.uploads import (
    INCOMING_PREFIX,
    MSG_NO_SPACE,
    STALE_STAGING_S,
    TMP_PREFIX,
    DatasetStore,
    StorageError,
    sweep_staging,
)
from usqa.service.simulator import write_dataset

from ..conftest import LiveServer, make_settings, serve

TOKEN = "upload-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leftovers")
    folder = root / "set"
    write_dataset(folder, frames=12, subjects=4, seed=0, size=32, preset="transrectal_prostate")
    path = root / "set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "set/" + str(p.relative_to(folder)))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leave(root: Path, name: str, *, age_s: float = 0.0, folder: bool = True) -> Path:
    path = root / name
    if folder:
        (path / "set").mkdir(parents=True)
        (path / "set" / "frame.png").write_bytes(b"x" * 1024)
    else:
        path.write_bytes(b"x" * 1024)
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def test_the_sweep_removes_what_gone_writers_left_and_keeps_live_uploads(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead, alive, me = _dead_pid(), os.getppid(), os.getpid()
    gone = [
        _leave(tmp_path, f"{TMP_PREFIX}{host}-{dead}-0a"),
        _leave(tmp_path, f"{INCOMING_PREFIX}{host}-{dead}-0b", folder=False),
        _leave(tmp_path, f"{TMP_PREFIX}0c", age_s=STALE_STAGING_S + 60),  # unnamed, and old
        _leave(tmp_path, f"{TMP_PREFIX}elsewhere-12-0d", age_s=STALE_STAGING_S + 60),
    ]
    kept = [
        _leave(tmp_path, f"{TMP_PREFIX}{host}-{alive}-1a"),
        _leave(tmp_path, f"{TMP_PREFIX}elsewhere-12-1b"),  # another host's, young: maybe uploading now
        _leave(tmp_path, f"{TMP_PREFIX}1c"),
        _leave(tmp_path, "ds-0123456789abcdef"),
    ]
    mine = _leave(tmp_path, f"{TMP_PREFIX}{host}-{me}-2a")
    assert sweep_staging(tmp_path) == len(gone)
    assert not any(p.exists() for p in gone) and all(p.exists() for p in kept) and mine.exists()
    # At start-up this process has no uploads yet: its own id is a previous life's (a restarted container).
    assert sweep_staging(tmp_path, at_start=True) == 1 and not mine.exists()


def test_storage_errors_name_no_path() -> None:
    full = StorageError(OSError(errno.ENOSPC, "No space left on device", "/srv/secret/data/.upload-x"))
    assert (full.status, str(full)) == (507, MSG_NO_SPACE)
    other = StorageError(OSError(errno.EIO, "Input/output error", "/srv/secret/data"))
    assert other.status == 500 and "/srv" not in str(other) and "Input/output error" in str(other)


def test_a_failed_write_while_unpacking_is_the_servers_error(tmp_path: Path, archive: Path) -> None:
    store = DatasetStore(tmp_path / "data", max_unpacked_bytes=1 << 30, max_members=1000)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, limits[1]))  # every write past 200 bytes: EFBIG
    try:
        with pytest.raises(StorageError) as raised:
            store.add_archive(archive, "set.zip")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert raised.value.status == 500 and str(tmp_path) not in str(raised.value)
    assert list((tmp_path / "data").iterdir()) == []


@pytest.fixture
def server(source_registry: Path, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(source_registry, api_token=TOKEN, data_root=tmp_path / "data")
    with serve(create_app(settings)) as live:
        yield live


def test_start_up_sweeps_a_killed_uploads_staging(source_registry: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    left = _leave(data, f"{TMP_PREFIX}{socket.gethostname()}-{_dead_pid()}-ff")
    with serve(create_app(make_settings(source_registry, api_token=TOKEN, data_root=data))):
        assert not left.exists()


def test_a_full_disk_is_a_json_507_and_leaves_nothing(
    server: LiveServer, archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usqa.service.api.routes import datasets

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / ".incoming-x"))

    monkeypatch.setattr(datasets.shutil, "copyfileobj", full)
    with archive.open("rb") as file:
        answer = httpx.post(
            f"{server.http}/datasets", files={"file": ("set.zip", file)}, headers=AUTH, timeout=30
        )
    assert answer.status_code == 507
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {"detail": MSG_NO_SPACE, "code": "storage_full"}
    data = tmp_path / "data"
    assert not data.exists() or list(data.iterdir()) == []
