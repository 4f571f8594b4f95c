"""Uploaded data sets: a zip or tar of the data-set folder format, unpacked safely into the data root.

Each upload is unpacked into a hidden folder under the data root, validated with the loader's row-level report
and only then renamed to `ROOT/<id>`; a refused or interrupted upload leaves nothing visible, and what a killed
process left behind (staging folders and incoming archives, named after their host and process) is swept at
start-up and after every failed upload (`sweep_staging`). The id is the
archive's content hash, so uploading the same archive twice gives the same data set. No member may leave the
folder (absolute paths, `..`, links and devices are refused: zip slip), and the unpacked size and member count
are capped before anything big is written (zip bombs).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import stat
import tarfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar

from pydantic import BaseModel, ConfigDict

from usqa.service.datasets.labels import LABELS_FILE, DatasetError, load_dataset
from usqa.service.registry.manifest import sha256_file

T = TypeVar("T")

log = logging.getLogger(__name__)

META_FILE = "dataset.json"
TMP_PREFIX = ".upload-"
INCOMING_PREFIX = ".incoming-"
# Another host's leftovers (a shared data root) are swept once they are this old: no upload takes that long.
STALE_STAGING_S = 6 * 3600
COPY_CHUNK = 1 << 20
ID_PREFIX = "ds-"
# `ds-` and the first 16 hex digits of the archive's sha256.
DATASET_ID_PATTERN = r"^ds-[0-9a-f]{16}$"

MSG_NOT_ARCHIVE = "the upload is not a zip or tar archive (tar may be gzip, bzip2 or xz compressed)"
MSG_ESCAPES = "archive member {name!r} would be written outside the data-set folder; nothing was stored"
MSG_LINK = "archive member {name!r} is a link or special file; only files and folders are accepted"
MSG_TOO_BIG = "the archive unpacks to more than {limit} bytes (USQA_MAX_UNPACKED_BYTES); nothing was stored"
MSG_TOO_MANY = "the archive has more than {limit} members (USQA_MAX_ARCHIVE_MEMBERS); nothing was stored"
MSG_NO_LABELS = (
    "the archive holds no labels.csv at its top level or in its single top-level folder (see docs/data.md)"
)
MSG_CORRUPT = "the archive is corrupt: {reason}"
MSG_NO_DATASET = "no data set {id!r} (GET /datasets lists them)"
MSG_NO_SPACE = "the server's data storage is full; the upload was not stored (nothing was kept)"
MSG_STORAGE = "the server could not store the upload ({reason}); nothing was kept"


class UploadError(ValueError):
    """An archive refused before it became a data set; `status` is the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UnknownDataset(LookupError):
    pass


class StorageError(Exception):
    """Writing the upload failed on the server's side (a full disk, a quota, an I/O error): not the client's."""

    def __init__(self, cause: OSError) -> None:
        full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
        # strerror only: an OSError's text names the server's paths.
        super().__init__(MSG_NO_SPACE if full else MSG_STORAGE.format(reason=cause.strerror or "I/O error"))
        self.status = 507 if full else 500


def staging_name(prefix: str) -> str:
    """A staging entry's name: its host and process, so a sweep knows whether its writer is gone."""
    return f"{prefix}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


def sweep_staging(root: Path, *, at_start: bool = False) -> int:
    """Remove staging folders and incoming archives whose writer is gone; how many were removed.

    Gone: a process of this host that no longer runs (at start-up also this very process id, which a
    restarted container reuses), or anything older than STALE_STAGING_S (another host's, or unnamed).
    """
    if not root.is_dir():
        return 0
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    removed = 0
    for entry in root.iterdir():
        prefix = next((p for p in (TMP_PREFIX, INCOMING_PREFIX) if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        writer_host, _, rest = entry.name[len(prefix) :].rpartition("-")[0].rpartition("-")
        writer = int(rest) if rest.isdigit() else None
        try:
            old = now - entry.lstat().st_mtime > STALE_STAGING_S
        except FileNotFoundError:
            continue
        mine = writer_host == host and writer is not None
        if old or (mine and ((at_start and writer == pid) or (writer != pid and not _running(writer)))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("swept %d staging entries left by interrupted uploads in %s", removed, root)
    return removed


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatasetInfo(BaseModel):
    """An uploaded data set (`dataset.json`, and the API's answer): its id and what the loader found in it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    uploaded: str
    sha256: str
    archive_bytes: int
    frames: int
    has_masks: bool
    classes: list[int]
    splits: dict[str, int]


@dataclass(frozen=True)
class Member:
    name: str
    is_dir: bool
    size: int


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of an archive member, or `UploadError` if it could leave the folder."""
    if "\\" in name or "\x00" in name:
        raise UploadError(MSG_ESCAPES.format(name=name))
    path = PurePosixPath(name)
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise UploadError(MSG_ESCAPES.format(name=name))
    return parts


class _Unpacker:
    """Counts members and bytes while writing, so declared sizes are never trusted."""

    def __init__(self, target: Path, max_bytes: int, max_members: int) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.written = 0
        self.members = 0

    def add(self, member: Member, stream: IO[bytes] | None) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise UploadError(MSG_TOO_MANY.format(limit=self.max_members), 413)
        parts = _safe_parts(member.name)
        if not parts:
            return
        path = self.target.joinpath(*parts)
        if member.is_dir:
            _written(path.mkdir, parents=True, exist_ok=True)
            return
        if self.written + member.size > self.max_bytes:
            raise UploadError(MSG_TOO_BIG.format(limit=self.max_bytes), 413)
        _written(path.parent.mkdir, parents=True, exist_ok=True)
        assert stream is not None
        try:
            with path.open("wb") as out:
                while chunk := stream.read(COPY_CHUNK):
                    self.written += len(chunk)
                    if self.written > self.max_bytes:
                        raise UploadError(MSG_TOO_BIG.format(limit=self.max_bytes), 413)
                    out.write(chunk)
        except OSError as exc:  # the write (or its flush at close) failed on the server's disk
            raise StorageError(exc) from exc


def _written(write: Callable[..., T], *args: object, **kwargs: object) -> T:
    """A write to the server's disk: its OSError is the server's (StorageError), not a corrupt archive."""
    try:
        return write(*args, **kwargs)
    except OSError as exc:
        raise StorageError(exc) from exc


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, zipfile.ZipInfo]]:
    for info in archive.infolist():
        # Unix file-type bits, when the zip tool stored them (many store only permissions: a plain file).
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise UploadError(MSG_LINK.format(name=info.filename))
        yield Member(info.filename, info.is_dir(), info.file_size), info


def _unpack(archive_path: Path, unpacker: _Unpacker) -> None:
    try:
        if zipfile.is_zipfile(archive_path):
            with zipfile.ZipFile(archive_path) as archive:
                for member, info in _zip_members(archive):
                    if member.is_dir:
                        unpacker.add(member, None)
                    else:
                        with archive.open(info) as stream:
                            unpacker.add(member, stream)
            return
        if not tarfile.is_tarfile(archive_path):
            raise UploadError(MSG_NOT_ARCHIVE, 415)
        with tarfile.open(archive_path, mode="r:*") as tar:
            for entry in tar:
                if not (entry.isfile() or entry.isdir()):
                    raise UploadError(MSG_LINK.format(name=entry.name))
                member = Member(entry.name, entry.isdir(), entry.size)
                unpacker.add(member, None if entry.isdir() else tar.extractfile(entry))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, UploadError):
            raise
        # An OSError's text names the server's paths: only its reason is shown.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UploadError(MSG_CORRUPT.format(reason=reason or type(exc).__name__)) from exc


def _dataset_folder(unpacked: Path) -> Path:
    """labels.csv at the top, or inside the archive's one top-level folder (what zipping a folder gives)."""
    if (unpacked / LABELS_FILE).is_file():
        return unpacked
    entries = [p for p in unpacked.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / LABELS_FILE).is_file():
        return entries[0]
    raise UploadError(MSG_NO_LABELS, 422)


class DatasetStore:
    """Data sets under `root`, one folder per id, each with `dataset.json` beside its `labels.csv`."""

    def __init__(self, root: Path, *, max_unpacked_bytes: int, max_members: int) -> None:
        self.root = Path(root)
        self.max_unpacked_bytes = max_unpacked_bytes
        self.max_members = max_members

    def path(self, dataset_id: str) -> Path:
        if not re.fullmatch(DATASET_ID_PATTERN, dataset_id):
            raise UnknownDataset(MSG_NO_DATASET.format(id=dataset_id))
        folder = self.root / dataset_id
        if not (folder / META_FILE).is_file():
            raise UnknownDataset(MSG_NO_DATASET.format(id=dataset_id))
        return folder

    def info(self, dataset_id: str) -> DatasetInfo:
        return DatasetInfo.model_validate_json((self.path(dataset_id) / META_FILE).read_bytes())

    def list(self) -> list[DatasetInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(ID_PREFIX) and (folder / META_FILE).is_file():
                found.append(self.info(folder.name))
        return sorted(found, key=lambda d: d.uploaded, reverse=True)

    def add_archive(self, archive_path: Path, name: str) -> tuple[DatasetInfo, bool]:
        """Unpack, validate and store an archive; (info, created). Raises `UploadError` or `DatasetError`."""
        digest = sha256_file(archive_path)
        dataset_id = f"{ID_PREFIX}{digest[:16]}"
        try:
            return self.info(dataset_id), False
        except UnknownDataset:
            pass
        staging = self.root / staging_name(TMP_PREFIX)
        try:
            _written(self.root.mkdir, parents=True, exist_ok=True)
            _written(staging.mkdir)
            _unpack(archive_path, _Unpacker(staging, self.max_unpacked_bytes, self.max_members))
            folder = _dataset_folder(staging)
            dataset = load_dataset(folder)
            info = DatasetInfo(
                id=dataset_id,
                name=PurePosixPath(name).name[:200] or "upload",
                uploaded=datetime.now(UTC).isoformat(timespec="seconds"),
                sha256=digest,
                archive_bytes=archive_path.stat().st_size,
                frames=len(dataset.records),
                has_masks=dataset.has_masks,
                classes=sorted({r.label for r in dataset.records}),
                splits={split: len(dataset.split(split)) for split in ("train", "val", "holdout")},
            )
            _written((folder / META_FILE).write_text, info.model_dump_json(indent=2))
            final = self.root / dataset_id
            try:
                folder.rename(final)
            except OSError as exc:
                if (final / META_FILE).is_file():  # the same archive, uploaded at the same time elsewhere
                    return self.info(dataset_id), False
                raise StorageError(exc) from exc
            return info, True
        except DatasetError as exc:
            # The loader's report names the temporary folder; the client knows its archive, not our disk.
            raise DatasetError(Path(name), exc.problems) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
