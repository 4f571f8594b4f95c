"""An upload's bytes: the request body read within a size limit, and the file part of a multipart form."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from usqa.service.api.errors import BODY_TOO_LARGE, MALFORMED_MULTIPART, NO_FILE_PART, ApiError

MULTIPART = "multipart/form-data"
FILE_FIELD = "file"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", BODY_TOO_LARGE.format(limit=limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", BODY_TOO_LARGE.format(limit=limit))
        chunks.append(chunk)
    return b"".join(chunks)


def media_type_of(content_type: str | None) -> str | None:
    return None if not content_type else content_type.split(";", 1)[0].strip().lower() or None


async def file_part(request: Request, body: bytes) -> tuple[bytes, str | None]:
    """The bytes and declared type of a multipart upload's file part (field `file`, else the first file)."""

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "malformed_multipart", MALFORMED_MULTIPART.format(reason=exc)) from exc
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        named = form.get(FILE_FIELD)
        upload = named if isinstance(named, UploadFile) else (files[0] if files else None)
        if upload is None:
            raise ApiError(400, "no_file_part", NO_FILE_PART)
        return await upload.read(), media_type_of(upload.content_type)
    finally:
        await form.close()
