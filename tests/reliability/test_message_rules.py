"""The suite's rules for what a client may see: a clear error message and the documented error shape."""

from __future__ import annotations

import pytest

from .conftest import error_body_problem, unclear_reason


@pytest.mark.parametrize(
    ("message", "clear"),
    [
        ("frame too large: 100000x100000 pixels exceeds the limit of 16777216 pixels per frame", True),
        ("invalid request: query parameter 'width': Input should be greater than 0", True),
        ("", False),
        ("   ", False),
        ("ValueError", False),
        ("KeyError: 'type'", False),
        ("Traceback (most recent call last):\n  File ...", False),
        ("<usqa.service.frames.errors.FrameError object at 0x7f00>", False),
        ("x" * 5000, False),
        ("bad \x00 byte", False),
        (None, False),
    ],
)
def test_what_counts_as_a_clear_message(message: object, clear: bool) -> None:
    assert (unclear_reason(message) is None) == clear


@pytest.mark.parametrize(
    ("content_type", "body", "shaped"),
    [
        ("application/json", b'{"detail": "no such job", "code": "not_found"}', True),
        ("application/json", b'{"detail": [{"loc": ["query"], "msg": "x"}]}', False),
        ("application/json", b'{"detail": "Not Found"}', False),
        ("application/json", b'{"detail": "x y z", "code": "Not Found"}', False),
        ("text/plain", b"Internal Server Error", False),
        ("application/json", b"[1, 2]", False),
    ],
)
def test_what_counts_as_the_error_shape(content_type: str, body: bytes, shaped: bool) -> None:
    assert (error_body_problem(404, content_type, body) is None) == shaped
