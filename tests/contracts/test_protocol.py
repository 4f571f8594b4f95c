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
