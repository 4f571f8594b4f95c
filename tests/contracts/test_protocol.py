"""The /ws/scan protocol's words: one definition each, every message type schematised, the page's copy whole."""

from __future__ import annotations

import json

from usqa.contracts.protocol import (
    CLIENT_MESSAGE_TYPES,
    IN_SCOPE,
    REASON_LABELS,
    REASON_TEXT,
    REASONS,
    SERVER_MESSAGE_TYPES,
    VERDICTS,
    MessageType,
    display_score_of,
    page_constants,
    verdict_of,
)
from usqa.service.api.scan_messages import CLIENT_MESSAGES, SERVER_MESSAGES


def test_every_message_type_has_its_schema_and_the_schema_its_type() -> None:
    assert set(SERVER_MESSAGES) == set(SERVER_MESSAGE_TYPES)
    assert set(CLIENT_MESSAGES) == set(CLIENT_MESSAGE_TYPES)
    assert set(CLIENT_MESSAGE_TYPES) | set(SERVER_MESSAGE_TYPES) == set(MessageType)
    for kind, schema in {**SERVER_MESSAGES, **CLIENT_MESSAGES}.items():
        assert schema.model_json_schema()["properties"]["type"]["const"] == kind


def test_every_reason_has_its_words() -> None:
    assert set(REASON_TEXT) == set(REASON_LABELS) == set(REASONS)


def test_the_page_gets_the_same_words_as_json() -> None:
    constants = json.loads(json.dumps(page_constants()))
    assert constants["verdicts"] == list(VERDICTS)
    assert set(constants["inScope"]) == IN_SCOPE
    assert constants["closeCode"]["TRY_AGAIN"] == 1013
    assert constants["messageType"]["RESULT"] == MessageType.RESULT
    assert set(constants["reasonLabels"]) == set(REASONS)


def test_the_verdict_reader_takes_todays_and_older_messages() -> None:
    stream = {"guidance": "adjust", "verdict": "out_of_scope", "score": 0.4, "display_score": 0.7}
    older_stream = {"guidance": "adjust", "score": 0.4}
    older_assess_frame = {"amenable": True, "amenability_score": 0.8}
    assert (verdict_of(stream), display_score_of(stream)) == ("out_of_scope", 0.7)
    assert (verdict_of(older_stream), display_score_of(older_stream)) == ("adjust", 0.4)
    assert (verdict_of(older_assess_frame), display_score_of(older_assess_frame)) == ("good", 0.8)


def test_each_protocol_word_is_spelled_once_in_python() -> None:
    """Issue #23: a verdict, reason or message type is a string literal only in usqa/contracts/protocol.py."""
    import ast
    from pathlib import Path

    import usqa
    from usqa.contracts.protocol import MessageType, Reason, Verdict

    package = Path(usqa.__file__).resolve().parent
    # Words that are also ordinary English or keys of another vocabulary ("summary" of an AsyncAPI operation,
    # a metric's "result" label, the data set's "amenable" column) are left out: only the protocol's own are
    # searched for.
    words = {str(w) for w in (*Verdict, *Reason) if str(w) != "amenable"} | {
        str(t) for t in MessageType if str(t) not in {"summary", "result", "error", "end"}
    }
    spelled: dict[str, list[str]] = {}
    for path in package.rglob("*.py"):
        if path.name == "protocol.py" and path.parent.name == "contracts":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words:
                spelled.setdefault(node.value, []).append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert spelled == {}
