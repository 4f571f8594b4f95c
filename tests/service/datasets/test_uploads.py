"""Data-set uploads: safe unpacking (zip slip, links, bombs), validation, content-hash ids, nothing half-stored."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from usqa.service.datasets import DatasetError
from usqa.service.datasets.uploads import DatasetStore, UnknownDataset, UploadError
from usqa.service.simulator import write_dataset

LIMIT = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upload-src") / "set"
    write_dataset(root, frames=24, subjects=4, seed=0, size=48, preset="transrectal_prostate")
    return root


def _zip(folder: Path, path: Path, *, prefix: str = "", extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and str(p.relative_to(folder)) not in (extra or {}):
                zf.write(p, prefix + str(p.relative_to(folder)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _store(tmp_path: Path, **limits: int) -> DatasetStore:
    return DatasetStore(
        tmp_path / "data",
        max_unpacked_bytes=limits.get("max_unpacked_bytes", LIMIT),
        max_members=limits.get("max_members", 1000),
    )


def _visible(store: DatasetStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.exists() else []


def test_zip_and_tar_are_stored_once_by_content(tmp_path: Path, folder: Path) -> None:
    store = _store(tmp_path)
    archive = _zip(
        folder, tmp_path / "a.zip", prefix="set/"
    )  # one top-level folder, as zipping a folder gives
    info, created = store.add_archive(archive, "a.zip")
    assert created and info.frames == 24 and info.has_masks and info.id.startswith("ds-")
    again, created_again = store.add_archive(archive, "again.zip")
    assert not created_again and again.id == info.id
    tgz = tmp_path / "b.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname=".")
    other, created_tar = store.add_archive(tgz, "b.tar.gz")
    assert created_tar and other.frames == 24
    assert [d.id for d in store.list()] and store.path(info.id).joinpath("labels.csv").is_file()
    assert _visible(store) == sorted([info.id, other.id])


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "c:/evil.txt", "a\\..\\evil"]
)
def test_zip_slip_is_refused_and_nothing_is_left(tmp_path: Path, folder: Path, name: str) -> None:
    store = _store(tmp_path)
    archive = _zip(folder, tmp_path / "slip.zip", extra={name: b"x"})
    with pytest.raises(UploadError, match="outside the data-set folder"):
        store.add_archive(archive, "slip.zip")
    assert _visible(store) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data" / "evil.txt").exists()


def test_tar_links_are_refused(tmp_path: Path, folder: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=".")
        link = tarfile.TarInfo("frames/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    store = _store(tmp_path)
    with pytest.raises(UploadError, match="link or special file"):
        store.add_archive(archive, "link.tar")
    assert _visible(store) == []


def test_bombs_are_stopped_by_bytes_written_and_member_count(tmp_path: Path, folder: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("labels.csv", "frame,label\n")
        zf.writestr("zeros.bin", b"\0" * (4 * 1024 * 1024))  # a few KB compressed
    with pytest.raises(UploadError, match="unpacks to more than") as exc:
        _store(tmp_path, max_unpacked_bytes=1024 * 1024).add_archive(bomb, "bomb.zip")
    assert exc.value.status == 413
    with pytest.raises(UploadError, match="more than 5 members"):
        _store(tmp_path, max_members=5).add_archive(_zip(folder, tmp_path / "many.zip"), "many.zip")
    assert _visible(_store(tmp_path)) == []


def test_not_an_archive_no_labels_and_bad_rows(tmp_path: Path, folder: Path) -> None:
    store = _store(tmp_path)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not an archive" * 10)
    with pytest.raises(UploadError, match="not a zip or tar") as exc:
        store.add_archive(junk, "junk.bin")
    assert exc.value.status == 415
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(UploadError, match=r"no labels\.csv"):
        store.add_archive(empty, "empty.zip")
    labels = (folder / "labels.csv").read_text().splitlines()
    broken = "\n".join([labels[0], *labels[1:3], labels[3].replace(",0,", ",zero,", 1), "missing.png,1"])
    bad = _zip(folder, tmp_path / "bad.zip", extra={"labels.csv": broken.encode()})
    with pytest.raises(DatasetError) as rows:
        store.add_archive(bad, "bad.zip")
    assert "bad.zip" in str(rows.value) and "missing.png" in str(rows.value)
    assert _visible(store) == []


def test_unknown_ids_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for dataset_id in ("ds-0123456789abcdef", "../models", "ds-../../x", ""):
        with pytest.raises(UnknownDataset):
            store.path(dataset_id)
