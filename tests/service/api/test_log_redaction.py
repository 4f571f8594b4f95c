"""Tokens and configured secrets are masked in log records before any handler sees them."""

from __future__ import annotations

import logging

import pytest

from usqa.service.api import log_redaction
from usqa.service.api.log_redaction import MASK, SecretRedactor, secrets_of


def test_query_tokens_headers_and_secrets_are_masked() -> None:
    redactor = SecretRedactor(["s3cr3t-pw", "the-api-token"])
    assert redactor.redact('127.0.0.1:5 - "WebSocket /ws/scan?token=abc&x=1" [accepted]') == (
        f'127.0.0.1:5 - "WebSocket /ws/scan?token={MASK}&x=1" [accepted]'
    )
    assert redactor.redact("< authorization: Bearer abc.def") == f"< authorization: {MASK}"
    assert redactor.redact("< Authorization: Basic abc\n< host: x") == f"< Authorization: {MASK}\n< host: x"
    assert redactor.redact("[('authorization', 'Bearer abc')]") == f"[('authorization', '{MASK}')]"
    assert redactor.redact("redis://:s3cr3t-pw@h/0 and the-api-token") == f"redis://:{MASK}@h/0 and {MASK}"
    assert secrets_of("tok", ["redis://:pw12@h/0", None, "redis://h/0"]) == ["tok", "pw12"]


def test_installed_filter_rewrites_uvicorn_records(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install(["the-api-token"])
    logger = logging.getLogger("uvicorn.error")
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/ws/scan?token=the-api-token")
    assert "the-api-token" not in caplog.text and f"token={MASK}" in caplog.text
    assert "the-api-token" in log_redaction.install(["another"]).secrets  # a later app keeps earlier secrets


def test_a_clients_bad_utf8_is_a_warning_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log_redaction.install([])
    logger = logging.getLogger("uvicorn.error")
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        try:
            b"\xff".decode()
        except UnicodeDecodeError:
            logger.exception("Invalid UTF-8 sequence received from client.")
    (record,) = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert record.levelno == logging.WARNING and record.exc_info is None
