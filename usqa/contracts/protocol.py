"""The words of the /ws/scan stream protocol, each defined once: the server, the live page and the client share them.

- `Verdict`: the one verdict of a frame (and of a stream, after guidance), `Reason`: why.
- `MessageType`: the `type` of every JSON message; binary messages are frames.
- `CloseCode`: how the server closes a stream (RFC 6455 and the IANA registry).
- `StreamErrorCode`: the `code` of an `error` message about a message rather than a frame (a frame the
  server cannot use says the frame error's own code).

The live page does not re-type them: the service serves `page_constants()` as a script the page loads first.
`verdict_of` and `display_score_of` read a frame's verdict and display score out of a message (the client's
way in; the service reads its own typed results).
Standard library only: this is the floor every layer imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Any, Final


class Verdict(StrEnum):
    """The one verdict of a frame, and of a stream after guidance smooths it."""

    GOOD = "good"
    ADJUST = "adjust"
    NO_SIGNAL = "no_signal"
    OUT_OF_SCOPE = "out_of_scope"


class Reason(StrEnum):
    """Why a frame has its verdict: the stable part of the answer (the words beside it may change)."""

    AMENABLE = "amenable"
    LOW_SCORE = "low_score"
    BLANK = "blank"
    SATURATED = "saturated"
    NO_CONTACT = "no_contact"
    FROZEN = "frozen"
    OUT_OF_DISTRIBUTION = "out_of_distribution"


class MessageType(StrEnum):
    """The `type` of a JSON message of /ws/scan."""

    HELLO = "hello"  # client: the frame format
    END = "end"  # client: finish the stream
    READY = "ready"
    CONFIGURED = "configured"
    RESULT = "result"
    ERROR = "error"
    MODEL_SWAP = "model_swap"
    SUMMARY = "summary"


class CloseCode(IntEnum):
    """How the server closes a stream."""

    NORMAL = 1000  # after the summary
    POLICY = 1008  # bearer token missing or wrong, a foreign Origin, or silence
    TOO_BIG = 1009  # a message over USQA_MAX_WS_MESSAGE_BYTES
    SERVER_ERROR = 1011
    TRY_AGAIN = 1013  # session limit reached, or no model loaded yet


class StreamErrorCode(StrEnum):
    """The `code` of an `error` message the stream itself raises (frames that fail say their own code)."""

    BAD_MESSAGE = "bad_message"
    BAD_HELLO = "bad_hello"
    MESSAGE_TOO_BIG = "message_too_big"
    INTERNAL_ERROR = "internal_error"


# Every verdict, in the order reports show them (the best first).
VERDICTS: Final[tuple[Verdict, ...]] = tuple(Verdict)
REASONS: Final[tuple[Reason, ...]] = tuple(Reason)
# Verdicts of frames that show the anatomy the model judges: their score means something.
IN_SCOPE: Final[frozenset[Verdict]] = frozenset({Verdict.GOOD, Verdict.ADJUST})
CLIENT_MESSAGE_TYPES: Final[tuple[MessageType, ...]] = (MessageType.HELLO, MessageType.END)
SERVER_MESSAGE_TYPES: Final[tuple[MessageType, ...]] = tuple(
    m for m in MessageType if m not in CLIENT_MESSAGE_TYPES
)

# A sentence per reason, for documents and logs.
REASON_TEXT: Final[dict[Reason, str]] = {
    Reason.AMENABLE: "the frame is amenable to the task",
    Reason.LOW_SCORE: "below the amenability threshold: adjust the probe",
    Reason.BLANK: "the frame is blank (too dark or too flat)",
    Reason.SATURATED: "the frame is saturated (mostly white)",
    Reason.NO_CONTACT: "most scan lines are dark: no probe contact",
    Reason.FROZEN: "the frame has not changed: the image is frozen",
    Reason.OUT_OF_DISTRIBUTION: "this does not look like the anatomy the model was trained on",
}
# The few words the live page prints under the verdict word.
REASON_LABELS: Final[dict[Reason, str]] = {
    Reason.AMENABLE: "amenable to the task",
    Reason.LOW_SCORE: "below the threshold: adjust the probe",
    Reason.BLANK: "blank frame",
    Reason.SATURATED: "saturated frame",
    Reason.NO_CONTACT: "no probe contact",
    Reason.FROZEN: "image frozen",
    Reason.OUT_OF_DISTRIBUTION: "not the trained anatomy",
}


def page_constants() -> dict[str, object]:
    """The protocol as plain JSON data for the live page (served as `USQA_PROTOCOL`)."""
    return {
        "verdict": {v.name: v.value for v in Verdict},
        "verdicts": [v.value for v in VERDICTS],
        "inScope": [v.value for v in VERDICTS if v in IN_SCOPE],
        "reason": {r.name: r.value for r in Reason},
        "reasonLabels": {r.value: text for r, text in REASON_LABELS.items()},
        "messageType": {m.name: m.value for m in MessageType},
        "closeCode": {c.name: c.value for c in CloseCode},
    }


def verdict_of(message: Mapping[str, Any]) -> str:
    """A frame's verdict in a /ws/scan result or an /assess frame: its `verdict`; from servers older than the
    one verdict, a stream result's `guidance`, else (an /assess frame) whether it is amenable. As sent: a
    newer server's verdict this client does not know is passed on, not refused."""
    for key in ("verdict", "guidance"):
        if message.get(key) is not None:
            return str(message[key])
    return Verdict.GOOD if message["amenable"] else Verdict.ADJUST


def display_score_of(message: Mapping[str, Any]) -> float:
    """The score people see: `display_score`; from older servers the raw `score` (stream) or
    `amenability_score` (/assess)."""
    for key in ("display_score", "score", "amenability_score"):
        if message.get(key) is not None:
            return float(message[key])
    raise KeyError("display_score")
