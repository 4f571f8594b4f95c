"""The audit log: one line per access to patient data (a session's report, a capture, its DICOM export, a
deletion).

Logger `usqa.audit` (AUDIT_LOGGER), level INFO, so a deployment can route it to a file or a collector of its
own. Each line says who (the client's address as the server sees it, and whether a bearer token came with
the request: never the token), what (the action, the session id, the capture's rank), when (UTC, ISO 8601)
and how it ended (ok, or not_found). No pixel data and no report content is ever logged. The same fields go
in the record's `audit` attribute for structured handlers. docs/privacy.md says what it records.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request

from usqa.service.frames.errors import cut

AUDIT_LOGGER = "usqa.audit"
Action = Literal["list_sessions", "read_report", "read_capture", "export_dicom", "delete_session"]
Outcome = Literal["ok", "not_found"]

log = logging.getLogger(AUDIT_LOGGER)


def token_presented(request: Request) -> bool:
    """Whether the request carried a bearer token (valid, when the route was reached and one is set)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(credentials.strip())


def audit(
    request: Request,
    action: Action,
    outcome: Outcome,
    *,
    session: str | None = None,
    capture: int | None = None,
) -> None:
    """Log one access to patient data (who, what, when), at INFO on `usqa.audit`."""
    client = request.client
    fields = {
        "action": action,
        "session": None if session is None else cut(session),  # a client's id: bounded, and repr'd below
        "capture": capture,
        "outcome": outcome,
        "client": f"{client.host}:{client.port}" if client else "unknown",
        "token": token_presented(request),
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    log.info(
        "%s session=%r capture=%s outcome=%s client=%s token=%s at=%s",
        *(fields[k] for k in ("action", "session", "capture", "outcome", "client")),
        "yes" if fields["token"] else "no",
        fields["at"],
        extra={"audit": fields},
    )
