"""FastAPI's request-validation errors as one sentence for the client: where each problem is, what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from usqa.service.api.errors import INVALID_REQUEST, INVALID_REQUEST_MORE

# Problems listed in one message; more are counted, not listed (a body can hold thousands of bad fields).
VALIDATION_PROBLEMS_SHOWN: Final = 5
VALIDATION_MESSAGE_CHARS: Final = 200
_LOCATIONS: Final = {
    "query": "query parameter",
    "path": "path parameter",
    "header": "header",
    "cookie": "cookie",
}


def validation_message(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one sentence: where each problem is and what pydantic says of it."""
    problems = [_validation_problem(error) for error in errors[:VALIDATION_PROBLEMS_SHOWN]]
    message = INVALID_REQUEST.format(problems="; ".join(problems) or "the request does not match its schema")
    if len(errors) > VALIDATION_PROBLEMS_SHOWN:
        message += INVALID_REQUEST_MORE.format(count=len(errors) - VALIDATION_PROBLEMS_SHOWN)
    return message


def _validation_problem(error: Any) -> str:
    location = [str(part) for part in error.get("loc", ())] if isinstance(error, dict) else []
    what = str(error.get("msg", "invalid value")) if isinstance(error, dict) else str(error)
    if isinstance(error, dict) and error.get("type") == "json_invalid":
        what = f"not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
        location = location[:1]
    if not location:
        where = "request"
    elif location[0] == "body":
        where = "body" if len(location) == 1 else f"body field {'.'.join(location[1:])!r}"
    else:
        kind = _LOCATIONS.get(location[0], location[0])
        where = f"{kind} {'.'.join(location[1:])!r}" if len(location) > 1 else kind
    return f"{where}: {what}"[:VALIDATION_MESSAGE_CHARS]
