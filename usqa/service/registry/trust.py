"""What the registry refuses to trust: model names, alias names, the file names a manifest gives, its hashes.

A version folder holds plain files; a manifest may name only those (no folders, no '..', no absolute path,
no link out of the folder), every graph must be among the hashed files (an empty `files` is no way around
the check), and every hash must match before a version is handed out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from usqa.service.registry.manifest import Manifest, sha256_file

MSG_NO_MODEL = "no model named {name!r} in the registry"
MSG_TAMPERED = "model {name!r} version {version}: {file} does not match its manifest sha256 (tampered or corrupt); refusing to load it"
MSG_MISSING_FILE = "model {name!r} version {version}: {file} listed in the manifest is missing"
MSG_BAD_NAME = "model name {name!r} must be letters, digits, '-', '_' or '.', and not start with '.'"
MSG_BAD_ALIAS = (
    "alias {alias!r} must be 1 to {max_chars} letters, digits, '-', '_' or '.', and not start with '.'"
)
MSG_FILE_OUTSIDE = (
    "model {name!r} version {version}: the manifest names {file!r}, which is not a file of the version folder "
    "(no folders, '..' or absolute paths); refusing to load it"
)
MSG_GRAPH_NOT_HASHED = (
    "model {name!r} version {version}: graph {role!r} ({file!r}) is not listed with a sha256 in the manifest's "
    "files; refusing to load it"
)
MSG_BAD_FILE_NAME = "cannot publish {file!r}: a version's files are plain names in its folder"
MSG_UNSERVABLE = (
    "model {name!r} version {version} cannot be served, so {alias!r} stays where it was: {reason}"
)
ALIAS_MAX_CHARS = 64
# For operators only (the CLI, the server log): where a missing model was looked for.
MSG_LOOKED_IN = "{message} (looked in: {places})"


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says what and why."""


class IntegrityError(RegistryError):
    """A version whose files do not match its manifest: never served."""


class UnservableError(RegistryError):
    """A version whose files are intact but whose graphs cannot be built or run: no alias moves to it."""


class ModelNotFoundError(RegistryError):
    """No registry holds the model name; `searched` keeps the folders for the operator, not the client."""

    def __init__(self, name: str, searched: Sequence[Path]) -> None:
        super().__init__(MSG_NO_MODEL.format(name=name))
        self.searched = tuple(searched)


def explain(exc: RegistryError) -> str:
    """The error for an operator: a missing model also names every folder that was searched."""
    if isinstance(exc, ModelNotFoundError):
        places = ", ".join(str(p.absolute()) for p in exc.searched)
        return MSG_LOOKED_IN.format(message=exc, places=places)
    return str(exc)


def refuse_unservable(name: str, version: int, alias: str, warm_up: Callable[[], None]) -> None:
    """Run `warm_up` (build the version's sessions, score a frame); UnservableError if it fails."""
    try:
        warm_up()
    except RegistryError:
        raise
    except Exception as exc:  # onnxruntime and the graph contract raise many kinds
        raise UnservableError(
            MSG_UNSERVABLE.format(name=name, version=version, alias=alias, reason=exc)
        ) from exc


def valid_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and all(c.isalnum() or c in "-_." for c in name)


def valid_alias(alias: str) -> bool:
    return len(alias) <= ALIAS_MAX_CHARS and valid_name(alias) and alias.isascii()


def check_alias(alias: str) -> None:
    if not valid_alias(alias):
        raise RegistryError(MSG_BAD_ALIAS.format(alias=alias[:ALIAS_MAX_CHARS], max_chars=ALIAS_MAX_CHARS))


def plain_file_name(name: str) -> bool:
    """A name of a file directly in a version folder: no separators, no '..', not absolute, not hidden."""
    return (
        bool(name)
        and "\\" not in name
        and "\x00" not in name
        and PurePosixPath(name).name == name
        and not name.startswith(".")
    )


def verify_files(name: str, version: int, path: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless every file `manifest` names is a hashed, intact file of `path`."""
    # Nothing the manifest names is trusted: every file is a plain name in this folder, every graph is
    # among the hashed files (an empty `files` no longer turns the check off), and every hash matches.
    for role, file in sorted(manifest.graphs.items()):
        if not plain_file_name(file):
            raise IntegrityError(MSG_FILE_OUTSIDE.format(name=name, version=version, file=file))
        if file not in manifest.files:
            raise IntegrityError(
                MSG_GRAPH_NOT_HASHED.format(name=name, version=version, role=role, file=file)
            )
    folder = path.resolve()
    for file, expected in sorted(manifest.files.items()):
        target = path / file
        if not plain_file_name(file) or target.resolve().parent != folder:  # a link out of the folder
            raise IntegrityError(MSG_FILE_OUTSIDE.format(name=name, version=version, file=file))
        if not target.is_file():
            raise IntegrityError(MSG_MISSING_FILE.format(name=name, version=version, file=file))
        if sha256_file(target) != expected:
            raise IntegrityError(MSG_TAMPERED.format(name=name, version=version, file=file))
