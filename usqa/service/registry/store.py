"""The model registry: a folder of immutable, verified versions and one small file of aliases.

Layout: `ROOT/NAME/VERSION/{*.onnx, manifest.json}` and `ROOT/NAME/aliases.json`. Versions are integers that
only grow. A publish writes into a hidden temporary folder, fsyncs it and renames it into place, so a reader
never sees half a version; an alias switch replaces `aliases.json` atomically. Writers of one model name take
an exclusive lock (`NAME/.lock`), so several processes (workers, CLI) may publish to one registry.

Read-only registries (the model shipped inside the package, `usqa.service.registry.locate`) may stand behind the
writable root. A model name is read from the first registry that holds it, root first, and then wholly from
there (versions and aliases never mix across registries, so "version 2" always names one folder); writes go to
the root only. A first publish of a name that a read-only registry holds continues its version numbers, so a
number never names two different weights and a service that compares version numbers sees the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from usqa.service.registry.manifest import MANIFEST_FILE, Manifest, sha256_file
from usqa.service.registry.trust import (
    MSG_BAD_FILE_NAME,
    MSG_BAD_NAME,
    check_alias,
    plain_file_name,
    refuse_unservable,
    valid_name,
    verify_files,
)
from usqa.service.registry.trust import MSG_MISSING_FILE as MSG_MISSING_FILE
from usqa.service.registry.trust import MSG_NO_MODEL as MSG_NO_MODEL
from usqa.service.registry.trust import MSG_TAMPERED as MSG_TAMPERED
from usqa.service.registry.trust import IntegrityError as IntegrityError
from usqa.service.registry.trust import ModelNotFoundError as ModelNotFoundError
from usqa.service.registry.trust import RegistryError as RegistryError
from usqa.service.registry.trust import explain as explain

log = logging.getLogger(__name__)

ALIASES_FILE = "aliases.json"
LOCK_FILE = ".lock"
COUNTER_FILE = ".last_version"
TMP_PREFIX = ".tmp-"
CHAMPION = "champion"
CHALLENGER = "challenger"
LATEST = "latest"

# The registry's folder is not named: the API answers with these messages, and paths are the server's business.
MSG_NO_VERSION = "model {name!r} has no version {ref!r} (versions: {versions})"
MSG_NO_ALIAS = "model {name!r} has no {alias!r} alias yet"
MSG_BAD_MANIFEST = "model {name!r} version {version}: manifest.json is unreadable: {reason}"
MSG_NO_ROLLBACK = "model {name!r}: no earlier {alias!r} to roll back to"
MSG_MISSING_SOURCE = "cannot publish: {file} does not exist"
MSG_GRAPH_NOT_IN_FILES = "manifest graph {role!r} names {file!r}, which is not among the published files"
MSG_READ_ONLY = (
    "model {name!r} is only in a read-only registry (the shipped model); publish a version of it to the "
    "writable registry before moving its aliases"
)


# Builds a version's sessions and runs a warm-up frame; raises when it cannot (usqa.service.registry.warmup).
Verifier = Callable[["ModelVersion"], None]


class Announcer(Protocol):
    def announce(self, event: str, name: str, version: int, alias: str | None) -> None: ...


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    manifest: Manifest

    def graph_path(self, role: str) -> Path:
        return self.path / self.manifest.graphs[role]


@dataclass(frozen=True)
class Aliases:
    current: dict[str, int]
    # Every version an alias has pointed to, oldest first: what `rollback` walks back through.
    history: dict[str, list[int]]

    def to_json(self) -> str:
        return json.dumps({"aliases": self.current, "history": self.history}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Aliases:
        data = json.loads(text)
        return cls(
            current={k: int(v) for k, v in data.get("aliases", {}).items()},
            history={k: [int(x) for x in v] for k, v in data.get("history", {}).items()},
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


class ModelRegistry:
    """Read and write model versions under `root`; the Python API behind `usqa models` and the service.

    `read_only` registries are read, in order, for a name that `root` does not hold; nothing writes to them.
    """

    def __init__(
        self, root: Path | str, announcer: Announcer | None = None, *, read_only: Sequence[Path | str] = ()
    ) -> None:
        self.root = Path(root)
        self.announcer = announcer
        self.read_only = tuple(Path(p) for p in read_only)

    # -- reading ---------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        found: set[str] = set()
        for root in (self.root, *self.read_only):
            if root.is_dir():
                found.update(p.name for p in root.iterdir() if p.is_dir() and valid_name(p.name))
        return sorted(found)

    def source(self, name: str) -> Path:
        """The registry folder `name` is read from: `root`, or the first read-only one that holds it."""
        return self._model_dir(name).parent

    def is_read_only(self, name: str) -> bool:
        return self.source(name) != self.root

    def versions(self, name: str) -> list[int]:
        model_dir = self._model_dir(name)
        return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())

    def aliases(self, name: str) -> Aliases:
        path = self._model_dir(name) / ALIASES_FILE
        return Aliases.from_json(path.read_text()) if path.exists() else Aliases({}, {})

    def resolve(self, name: str, ref: str | int) -> int:
        """A version number from a number, `latest`, or an alias such as `champion`."""
        versions = self.versions(name)
        if isinstance(ref, int) or str(ref).isdigit():
            version = int(ref)
            if version not in versions:
                raise RegistryError(MSG_NO_VERSION.format(name=name, ref=ref, versions=versions or "none"))
            return version
        if ref == LATEST:
            if not versions:
                raise RegistryError(MSG_NO_VERSION.format(name=name, ref=ref, versions="none"))
            return versions[-1]
        current = self.aliases(name).current
        if ref not in current:
            raise RegistryError(MSG_NO_ALIAS.format(name=name, alias=ref))
        return current[ref]

    def manifest(self, name: str, version: int) -> Manifest:
        path = self._model_dir(name) / str(version) / MANIFEST_FILE
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise IntegrityError(MSG_BAD_MANIFEST.format(name=name, version=version, reason=exc)) from exc

    def find_job(self, name: str, job_id: str) -> int | None:
        """The version a retraining job published, if it did."""
        model_dir = self.root / name
        if not valid_name(name) or not model_dir.is_dir():
            return None
        for version in self.versions(name):
            try:
                if self.manifest(name, version).job_id == job_id:
                    return version
            except IntegrityError:
                continue
        return None

    def load(self, name: str, ref: str | int = CHAMPION) -> ModelVersion:
        """Resolve `ref` and verify every file's sha256 against the manifest before handing it out."""
        version = self.resolve(name, ref)
        path = self._model_dir(name) / str(version)
        manifest = self.manifest(name, version)
        verify_files(name, version, path, manifest)
        if path.parent.parent != self.root:  # never a silent fallback: say which copy is used
            log.info(
                "%s version %d: not in the registry %s; using the read-only copy in %s",
                name,
                version,
                self.root.absolute(),
                path.parent.parent,
            )
        return ModelVersion(name=name, version=version, path=path, manifest=manifest)

    # -- writing ---------------------------------------------------------------------------------------

    def publish(
        self, manifest: Manifest, files: Mapping[str, Path], *, alias: str | None = None
    ) -> ModelVersion:
        """Copy `files` (name in the version folder -> source path) in as the next version, atomically.

        A manifest with a `job_id` is published at most once: if that job already published a version, it is
        returned instead (a redelivered job never publishes twice).
        """
        name = manifest.name
        if not valid_name(name):
            raise RegistryError(MSG_BAD_NAME.format(name=name))
        for source in files.values():
            if not Path(source).is_file():
                raise RegistryError(MSG_MISSING_SOURCE.format(file=source))
        for file in files:
            if not plain_file_name(file):
                raise RegistryError(MSG_BAD_FILE_NAME.format(file=file))
        if alias is not None:
            check_alias(alias)
        for role, graph_file in manifest.graphs.items():
            if graph_file not in files:
                raise RegistryError(MSG_GRAPH_NOT_IN_FILES.format(role=role, file=graph_file))
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(model_dir):
            self._remove_stale_tmp(model_dir)
            if manifest.job_id is not None and (done := self.find_job(name, manifest.job_id)) is not None:
                log.info(
                    "%s version %d already holds job %s; not publishing again", name, done, manifest.job_id
                )
                return self.load(name, done)
            version = max(self._next_version(model_dir), self._first_after_read_only(name))
            tmp = model_dir / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex}"
            try:
                tmp.mkdir()
                hashes: dict[str, str] = {}
                for target_name, source in sorted(files.items()):
                    target = tmp / target_name
                    shutil.copyfile(source, target)
                    with target.open("rb") as f:
                        os.fsync(f.fileno())
                    hashes[target_name] = sha256_file(target)
                final = manifest.model_copy(update={"version": version, "files": hashes})
                with (tmp / MANIFEST_FILE).open("w") as f:
                    f.write(final.model_dump_json(indent=2))
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(tmp)
                tmp.rename(model_dir / str(version))
                _fsync_dir(model_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _write_atomic(model_dir / COUNTER_FILE, str(version))
            if alias is not None:
                self._set_alias_locked(name, alias, version)
        log.info("published %s version %d%s", name, version, f" as {alias}" if alias else "")
        self._announce("published", name, version, alias)
        return ModelVersion(name=name, version=version, path=model_dir / str(version), manifest=final)

    def promote(
        self, name: str, ref: str | int, alias: str = CHAMPION, *, verify: Verifier | None = None
    ) -> int:
        """Point `alias` at the version `ref` names (a number, `latest` or another alias).

        With `verify`, the version's sessions are built and run on a warm-up frame first; a version that
        fails is refused with UnservableError and the alias stays where it was.
        """
        check_alias(alias)
        model_dir = self._writable_model_dir(name)
        with self._locked(model_dir):
            version = self.resolve(name, ref)
            loaded = self.load(name, version)  # never point an alias at a version that would be refused
            if verify is not None:
                refuse_unservable(loaded.name, version, alias, lambda: verify(loaded))
            self._set_alias_locked(name, alias, version)
        log.info("promoted %s version %d to %s", name, version, alias)
        self._announce("promoted", name, version, alias)
        return version

    def rollback(self, name: str, alias: str = CHAMPION, *, verify: Verifier | None = None) -> int:
        """Point `alias` back at the version it named before the current one (verified as `promote` does)."""
        check_alias(alias)
        model_dir = self._writable_model_dir(name)
        with self._locked(model_dir):
            aliases = self.aliases(name)
            history = list(aliases.history.get(alias, []))
            existing = set(self.versions(name))
            while len(history) > 1:
                history.pop()
                if history[-1] in existing:
                    break
            else:
                raise RegistryError(MSG_NO_ROLLBACK.format(name=name, alias=alias))
            version = history[-1]
            loaded = self.load(name, version)
            if verify is not None:
                refuse_unservable(name, version, alias, lambda: verify(loaded))
            current = {**aliases.current, alias: version}
            _write_atomic(
                model_dir / ALIASES_FILE, Aliases(current, {**aliases.history, alias: history}).to_json()
            )
        log.info("rolled %s %s back to version %d", name, alias, version)
        self._announce("rolled_back", name, version, alias)
        return version

    # -- internals -------------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        roots = (self.root, *self.read_only)
        if valid_name(name):
            for root in roots:
                if (root / name).is_dir():
                    return root / name
        raise ModelNotFoundError(name, roots)

    def _writable_model_dir(self, name: str) -> Path:
        model_dir = self._model_dir(name)
        if model_dir.parent != self.root:
            raise RegistryError(MSG_READ_ONLY.format(name=name))
        return model_dir

    def _first_after_read_only(self, name: str) -> int:
        versions = [
            int(p.name)
            for root in self.read_only
            if (root / name).is_dir()
            for p in (root / name).iterdir()
            if p.name.isdigit()
        ]
        return max(versions, default=0) + 1

    @staticmethod
    @contextlib.contextmanager
    def _locked(model_dir: Path) -> Iterator[None]:
        with (model_dir / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _next_version(model_dir: Path) -> int:
        # The counter survives deleted versions, so a number is never reused for different weights.
        counter = model_dir / COUNTER_FILE
        last = int(counter.read_text().strip() or 0) if counter.exists() else 0
        existing = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
        return max([last, *existing]) + 1

    @staticmethod
    def _remove_stale_tmp(model_dir: Path) -> None:
        # Under the writers' lock no publish is in flight, so any temporary folder is from a killed one.
        for p in model_dir.iterdir():
            if p.name.startswith(TMP_PREFIX):
                log.warning("removing %s left by an interrupted publish", p)
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def _set_alias_locked(self, name: str, alias: str, version: int) -> None:
        aliases = self.aliases(name)
        history = list(aliases.history.get(alias, []))
        if not history or history[-1] != version:
            history.append(version)
        current = {**aliases.current, alias: version}
        _write_atomic(
            self.root / name / ALIASES_FILE, Aliases(current, {**aliases.history, alias: history}).to_json()
        )

    def _announce(self, event: str, name: str, version: int, alias: str | None) -> None:
        if self.announcer is None:
            return
        try:
            self.announcer.announce(event, name, version, alias)
        except Exception as exc:  # the registry on disk is the truth; services also poll it
            log.warning("could not announce %s of %s v%d: %s", event, name, version, exc)
