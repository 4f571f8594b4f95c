"""The /ws/scan protocol as an AsyncAPI 3.0 document, generated from the schemas in `scan_messages`.

Generated, never written by hand, so it cannot drift from what the server sends: every server message type
in `SERVER_MESSAGES` and both client text messages appear with their pydantic JSON schema. In AsyncAPI the
document describes the application (the service): `send` operations are what it sends to clients,
`receive` operations what it reads from them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from usqa.contracts.protocol import CloseCode
from usqa.contracts.version import __version__
from usqa.service.api.scan_messages import CLIENT_MESSAGES, PROTOCOL_VERSION, SERVER_MESSAGES

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "scan"
SCHEMA_REF = "#/components/schemas/{model}"
FRAME_MESSAGE = "frame"
CLOSE_CODES = {
    CloseCode.NORMAL: "normal: after the summary",
    CloseCode.POLICY: "bearer token missing or wrong",
    CloseCode.TOO_BIG: "a message over USQA_MAX_WS_MESSAGE_BYTES",
    CloseCode.SERVER_ERROR: "server error",
    CloseCode.TRY_AGAIN: "session limit (all streams, or this address's) reached or no model loaded yet: "
    "try again later",
}
DESCRIPTION = (
    "Live feedback per frame. The client sends frames as binary messages (one encoded image or raw 8-bit "
    "grayscale frame each) and text messages `hello` / `end`; the server answers `ready` once, a `result` "
    "per scored frame (newest frame wins: frames that arrive while one is being scored replace each other, "
    "counted in `dropped`), and `summary` last. Authentication: `Authorization: Bearer <token>` or "
    "`?token=` when the server requires it. Close codes: "
    + "; ".join(f"{code} {text}" for code, text in CLOSE_CODES.items())
    + "."
)


def _message(name: str, model: type[BaseModel], direction: str) -> dict[str, Any]:
    doc = (model.__doc__ or "").strip().splitlines()
    return {
        "name": name,
        "title": f"{name} ({direction})",
        "summary": doc[0] if doc else name,
        "contentType": "application/json",
        "payload": {"$ref": SCHEMA_REF.format(model=model.__name__)},
    }


@cache
def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document of /ws/scan (built once per process)."""
    models = [*SERVER_MESSAGES.values(), *CLIENT_MESSAGES.values()]
    _, definitions = models_json_schema([(m, "serialization") for m in models], ref_template=SCHEMA_REF)
    messages: dict[str, dict[str, Any]] = {
        name: _message(name, model, "server to client") for name, model in SERVER_MESSAGES.items()
    }
    messages |= {name: _message(name, model, "client to server") for name, model in CLIENT_MESSAGES.items()}
    messages[FRAME_MESSAGE] = {
        "name": FRAME_MESSAGE,
        "title": "frame (client to server)",
        "summary": "One frame: PNG, JPEG, BMP, TIFF or single-frame DICOM bytes, or raw pixels after a raw hello",
        "contentType": "application/octet-stream",
        "payload": {"type": "string", "format": "binary"},
    }

    def refs(names: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in names]

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "usqa live scan protocol",
            "version": __version__,
            "description": DESCRIPTION + f" Protocol version {PROTOCOL_VERSION} (sent in `ready`).",
        },
        "channels": {
            CHANNEL: {
                "address": "/ws/scan",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "sendFeedback": {
                "action": "send",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": refs(list(SERVER_MESSAGES)),
            },
            "receiveFrames": {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "messages": refs([FRAME_MESSAGE, *CLIENT_MESSAGES]),
            },
        },
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }
