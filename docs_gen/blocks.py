"""Generated blocks in the pages of docs/: the one marker convention and the one writer of those pages.

A generator owns the lines between its two markers; everything around them is prose that people edit:

    <!-- generated:NAME begin (python -m MODULE) -->
    ...the generator's lines...
    <!-- generated:NAME end -->

`replace_block` rewrites the markers and the lines between them and nothing else. A page without exactly one
begin and one end line for NAME, in that order, is refused with `MarkerError` rather than given a second copy
of the block. Generators that take minutes call `check_block` before they start, so a page that cannot take
their output fails in seconds. Every page and figure is replaced atomically (`write_atomically`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


class MarkerError(ValueError):
    """A page whose markers for a generated block are missing, duplicated or out of order."""


def begin_marker(name: str, module: str) -> str:
    return f"<!-- generated:{_checked(name)} begin (python -m {module}) -->"


def end_marker(name: str) -> str:
    return f"<!-- generated:{_checked(name)} end -->"


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"block name {name!r}: lowercase letters, digits and '-' only")
    return name


def _span(text: str, name: str, where: str) -> tuple[int, int, int, int]:
    """(start, end) of the begin marker's line and (start, end) of the end marker's line."""
    # The begin marker's command is not part of the match: a block stays found when its generator moves.
    begin = rf"^<!-- generated:{re.escape(name)} begin(?: \(.*\))? -->[ \t]*$"
    begins = list(re.finditer(begin, text, re.MULTILINE))
    ends = list(re.finditer(rf"^<!-- generated:{re.escape(name)} end -->[ \t]*$", text, re.MULTILINE))
    expected = f"`<!-- generated:{name} begin (python -m ...) -->` and `{end_marker(name)}`"
    if not begins or not ends:
        missing = " and ".join(kind for kind, found in (("begin", begins), ("end", ends)) if not found)
        raise MarkerError(
            f"{where}: generated block {name!r} has no {missing} marker; add the lines {expected}, each on "
            "its own line, where the block belongs"
        )
    if len(begins) > 1 or len(ends) > 1:
        raise MarkerError(
            f"{where}: generated block {name!r} is marked {len(begins)} x begin and {len(ends)} x end; "
            f"keep exactly one of each ({expected})"
        )
    first, last = begins[0], ends[0]
    if last.start() < first.end():
        raise MarkerError(
            f"{where}: the end marker of generated block {name!r} comes before its begin marker"
        )
    return first.start(), first.end(), last.start(), last.end()


def splice(text: str, name: str, body: str, *, module: str, where: str = "the page") -> str:
    """`text` with the block `name` (markers included) replaced by markers around `body`."""
    begin_start, _, _, end_end = _span(text, name, where)
    lines = [begin_marker(name, module), *([body] if body else []), end_marker(name)]
    return text[:begin_start] + "\n".join(lines) + text[end_end:]


def block_body(text: str, name: str, *, where: str = "the page") -> str:
    """The lines between the markers of block `name`, without the newline before the end marker."""
    _, begin_end, end_start, _ = _span(text, name, where)
    return text[begin_end + 1 : end_start].removesuffix("\n")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MarkerError(f"{path}: no such page, so no place for its generated block") from None


def check_block(path: Path, name: str) -> None:
    """Raise `MarkerError` now if `path` cannot take block `name` (before a long run, not after it)."""
    _span(_read(path), name, str(path))


def replace_block(path: Path, name: str, body: str, *, module: str) -> None:
    """Rewrite the generated block `name` of the page `path` with `body`; the rest of the page is kept."""
    text = _read(path)
    updated = splice(text, name, body, module=module, where=str(path))
    if updated != text:
        write_atomically(path, updated)


def write_atomically(path: Path, content: str | bytes) -> None:
    """Replace `path` with `content` (text as UTF-8) in one rename, readable by everyone like a checkout."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        Path(temporary).chmod(0o644)  # mkstemp's file is private; a committed page or figure is not
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
