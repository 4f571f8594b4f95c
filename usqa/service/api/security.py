"""Bearer tokens: control endpoints always need one; scoring endpoints when settings say so."""

from __future__ import annotations

import secrets

from usqa.service.api.errors import CONTROL_DISABLED, TOKEN_INVALID, TOKEN_MISSING, ApiError

BEARER = "bearer"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == BEARER else None


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())


def check_token(expected: str | None, given: str | None, *, control: bool) -> None:
    """Raise the right 401/403 unless `given` is the configured token (or none is needed)."""
    if expected is None:
        if control:
            raise ApiError(403, "control_disabled", CONTROL_DISABLED)
        return
    if given is None:
        raise ApiError(401, "token_missing", TOKEN_MISSING, CHALLENGE)
    if not token_matches(expected, given):
        raise ApiError(401, "token_invalid", TOKEN_INVALID, CHALLENGE)
