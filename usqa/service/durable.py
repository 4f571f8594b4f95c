"""A folder of files that appears whole or not at all: built aside, each file fsynced, then renamed into place.

The session archive and the PACS outbox both write patient data that a reader (a person, the sender) must
never see half-written, and that must survive a crash once written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_folder(parent: Path, name: str, files: Mapping[str, bytes], *, staging_prefix: str) -> Path:
    """`parent/name/` holding `files` (replacing a folder of that name), built in a staging sibling."""
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / name
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix, dir=parent))
    try:
        for file_name, data in files.items():
            with (staging / file_name).open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable, where the file system allows opening a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
