"""Data-set archives with one hostile member (zip slip, links, devices), for the upload tests."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.service.conftest import frame_of_level, png_bytes
from usqa.service.datasets.uploads import MSG_ESCAPES, MSG_LINK


def dataset_files(seed: int = 0) -> dict[str, bytes]:
    """A valid little data set: labels.csv and four PNG frames."""
    files = {
        f"frames/f{i}.png": png_bytes(frame_of_level(50 + 40 * i, (32, 32), seed=seed + i)) for i in range(4)
    }
    files["labels.csv"] = b"frame,label\n" + b"".join(f"frames/f{i}.png,{i % 2}\n".encode() for i in range(4))
    return files


@dataclass(frozen=True)
class Hostile:
    """One hostile archive member: where it goes and what the refusal must name."""

    label: str
    name: str
    kind: str = "file"  # file, symlink, hardlink, fifo, chardev
    target: str = ""  # a link's target
    refusal: str = MSG_ESCAPES
    formats: tuple[str, ...] = ("zip", "tar", "tar.gz")


def hostile_members(data_root: Path, outside: Path) -> list[Hostile]:
    """Members that would land outside the data-set folder, or let a later member do so. Each lands, if
    written, where the test looks: the data root, its parent, or the empty folder `outside`."""
    # Up past the file-system root (where climbing stops), then down into `outside`.
    deep_climb = "../" * (len(data_root.parts) + 3) + f"{outside.relative_to(outside.anchor)}/escape.txt"
    return [
        Hostile("parent", "../escape.txt"),
        Hostile("grandparent", "../../escape.txt"),
        Hostile("deep climb", deep_climb),
        Hostile("climb inside a path", "frames/../../../escape.txt"),
        Hostile("absolute into the parent of the data root", f"{data_root.parent}/escape.txt"),
        Hostile("absolute elsewhere", str(outside / "escape.txt")),
        Hostile("backslash climb", "..\\..\\escape.txt"),
        Hostile("drive letter", "C:/escape.txt"),
        Hostile("symlink to the parent", "climb", "symlink", "../..", MSG_LINK),
        Hostile("symlink to an absolute file", "frames/f9.png", "symlink", "/etc/passwd", MSG_LINK),
        Hostile("hardlink out", "frames/f8.png", "hardlink", "../../escape.txt", MSG_LINK, ("tar", "tar.gz")),
        Hostile(
            "hardlink to an absolute file", "frames/f7.png", "hardlink", "/etc/passwd", MSG_LINK, ("tar",)
        ),
        Hostile("fifo", "frames/pipe", "fifo", "", MSG_LINK, ("tar",)),
        Hostile("character device", "frames/tty", "chardev", "", MSG_LINK, ("tar",)),
    ]


def build_archive(fmt: str, files: dict[str, bytes], hostile: Hostile, first: bool) -> bytes:
    """A valid data set plus one hostile member, first or last (after good files were unpacked)."""
    buffer = io.BytesIO()
    payload = b"escaped\n"
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            good = list(files.items())

            def add_hostile() -> None:
                info = zipfile.ZipInfo(hostile.name)
                info.create_system = 3  # Unix: the type bits below are read
                if hostile.kind == "symlink":
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(info, hostile.target)
                else:
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    archive.writestr(info, payload)
                if hostile.kind == "symlink":  # the second step of a link attack: write through it
                    archive.writestr(f"{hostile.name}/escape.txt", payload)

            if first:
                add_hostile()
            for name, data in good:
                archive.writestr(name, data)
            if not first:
                add_hostile()
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz" if fmt == "tar.gz" else "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        def add_hostile() -> None:
            info = tarfile.TarInfo(hostile.name)
            if hostile.kind == "file":
                add(hostile.name, payload)
                return
            info.type = {
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chardev": tarfile.CHRTYPE,
            }[hostile.kind]
            info.linkname = hostile.target
            tar.addfile(info)
            if hostile.kind == "symlink":
                add(f"{hostile.name}/escape.txt", payload)

        if first:
            add_hostile()
        for name, data in files.items():
            add(name, data)
        if not first:
            add_hostile()
    return buffer.getvalue()


def tree(folder: Path, skip: Path | None = None) -> dict[str, int]:
    """Every path under `folder` (but `skip`) with its size: what an escape would change."""
    found: dict[str, int] = {}
    for path in sorted(folder.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        found[str(path.relative_to(folder))] = path.lstat().st_size
    return found
