"""Secrets never reach the logs: bearer tokens in WebSocket query strings and headers, and configured secrets.

The same filter also keeps a client's mistake from reading as a server fault: uvicorn logs a text frame that
is not UTF-8 with a traceback at ERROR, although it answers exactly as RFC 6455 says (close 1007); that record
becomes one WARNING line without the traceback.

uvicorn logs each accepted WebSocket with its query string (the live page sends `?token=`) and, at debug
level, the handshake's headers (`authorization: Bearer ...`). A filter on the loggers that write those lines
masks them before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"
# Loggers whose records can carry a client's request line or headers.
REQUEST_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")
# Messages uvicorn logs with a traceback at ERROR for what is the client's fault (and answered correctly).
CLIENT_MISTAKES = frozenset({"Invalid UTF-8 sequence received from client."})
_PATTERNS = (
    re.compile(r"(?i)([?&]token=)[^&\s\"']+"),
    # The whole value of an Authorization header, whatever its scheme (Bearer, Basic, none).
    re.compile(r"(?i)(authorization:\s*)[^\r\n]+"),
    re.compile(r"(?i)(['\"]authorization['\"]\s*[:,]\s*['\"])[^'\"]+"),
)


class SecretRedactor(logging.Filter):
    """Rewrites a record's message with tokens and the given secrets masked; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("usqa-secrets")
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in CLIENT_MISTAKES and record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def secrets_of(api_token: str | None, urls: Iterable[str | None]) -> list[str]:
    """The configured token and the passwords inside broker/backend/Redis URLs."""
    found = [api_token] if api_token else []
    for url in urls:
        if url:
            password = urlsplit(url).password
            if password:
                found.append(password)
    return found


def install(secrets: Iterable[str], loggers: Iterable[str] = REQUEST_LOGGERS) -> SecretRedactor:
    """Attach one redactor to each logger. It replaces an earlier one from this module and keeps its secrets:
    several apps in one process (tests, embedded servers) all stay masked."""
    known = set(secrets)
    for name in loggers:
        for old in [f for f in logging.getLogger(name).filters if isinstance(f, SecretRedactor)]:
            known.update(old.secrets)
    redactor = SecretRedactor(known)
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, SecretRedactor)]:
            logger.removeFilter(old)
        logger.addFilter(redactor)
    return redactor
