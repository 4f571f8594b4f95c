from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import Request

from usqa.service.api.errors import BODY_TOO_LARGE, MALFORMED_MULTIPART, NO_FILE_PART, ApiError
from usqa.service.api.request_body import file_part, media_type_of, read_body

BOUNDARY = "usqa-boundary"
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def request_of(chunks: list[bytes], headers: dict[str, str]) -> tuple[Request, list[int]]:
    """A request whose body arrives in `chunks`, and the count of chunks the app asked for so far."""
    pending = list(chunks)
    asked = [0]

    async def receive() -> dict[str, Any]:
        asked[0] += 1
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/assess",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive), asked


def form(*parts: tuple[str, str | None, str | None, bytes]) -> bytes:
    """A multipart body of (field, filename, content type, bytes) parts."""
    out = b""
    for field, filename, content_type, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        head += f"Content-Type: {content_type}\r\n" if content_type else ""
        out += head.encode() + b"\r\n" + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def test_the_body_is_read_in_chunks_up_to_the_limit() -> None:
    request, _ = request_of([b"ab", b"cd", b"e"], {})
    assert asyncio.run(read_body(request, 5)) == b"abcde"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request, asked = request_of([b"x" * 10], {"content-length": "10"})
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(request, 9))
    assert (refused.value.status, refused.value.code) == (413, "body_too_large")
    assert refused.value.message == BODY_TOO_LARGE.format(limit=9)
    assert asked == [0]


def test_an_undeclared_body_is_refused_once_it_passes_the_limit() -> None:
    request, asked = request_of([b"x" * 4] * 100, {})
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(request, 9))
    assert refused.value.status == 413 and asked == [3]


@pytest.mark.parametrize(
    ("content_type", "media_type"),
    [
        (None, None),
        ("", None),
        ("image/PNG", "image/png"),
        ("multipart/form-data; boundary=x", "multipart/form-data"),
        (" ; charset=utf-8", None),
    ],
)
def test_media_type_of(content_type: str | None, media_type: str | None) -> None:
    assert media_type_of(content_type) == media_type


def test_the_file_part_is_read_with_its_media_type_beside_other_fields() -> None:
    body = form(("note", None, None, b"hello"), ("file", "frame.png", "image/PNG; q=1", b"png bytes"))
    request, _ = request_of([body], {"content-type": MULTIPART_TYPE})
    assert asyncio.run(file_part(request, body)) == (b"png bytes", "image/png")


def test_a_file_under_another_name_is_taken() -> None:
    body = form(("upload", "frame.jpg", "image/jpeg", b"jpeg bytes"))
    request, _ = request_of([body], {"content-type": MULTIPART_TYPE})
    assert asyncio.run(file_part(request, body)) == (b"jpeg bytes", "image/jpeg")


def test_a_form_without_a_file_is_400() -> None:
    body = form(("note", None, None, b"hello"))
    request, _ = request_of([body], {"content-type": MULTIPART_TYPE})
    with pytest.raises(ApiError) as refused:
        asyncio.run(file_part(request, body))
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        400,
        "no_file_part",
        NO_FILE_PART,
    )


def test_a_malformed_form_is_400() -> None:
    body = form(("a", "1.bin", None, b"1"), ("b", "2.bin", None, b"2"))  # over the parser's one file
    request, _ = request_of([body], {"content-type": MULTIPART_TYPE})
    with pytest.raises(ApiError) as refused:
        asyncio.run(file_part(request, body))
    assert (refused.value.status, refused.value.code) == (400, "malformed_multipart")
    assert refused.value.message.startswith(MALFORMED_MULTIPART.format(reason=""))
