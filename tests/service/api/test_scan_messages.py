from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from usqa.service.api.scan_messages import (
    MSG_UNKNOWN_TYPE,
    SERVER_MESSAGES,
    SHOWN_TYPE_CHARS,
    ScanHello,
    ShownType,
    configured_message,
    error_message,
    model_swap_message,
    ready_message,
    result_message,
)
from usqa.service.inference.batch_job import BatchTiming
from usqa.service.inference.geometry import FrameGeometry
from usqa.service.inference.guidance import GuidanceConfig, GuidanceUpdate
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.predictions import classify, segment
from usqa.service.inference.scoring import ScoredFrame
from usqa.service.inference.verdict import FrameSignal, FrameVerdict
from usqa.service.live.results import StreamResult

TIMING = BatchTiming(queue_s=0.0005, prepare_s=0.00125, inference_s=0.003, batch_frames=1)
GEOMETRY = FrameGeometry(source_width=64, source_height=64, crop=(0, 64, 0, 64), input_size=64)
MASK = np.zeros((64, 64), dtype=np.float32)
MASK[10:20, 5:30] = 1.0


def conforms(message: dict[str, Any]) -> bool:
    """Whether `message`, as sent (JSON), survives a round trip through its type's schema unchanged."""
    sent = json.loads(json.dumps(message))
    parsed = SERVER_MESSAGES[sent["type"]].model_validate(sent).model_dump(mode="json")
    return without_none(parsed) == without_none(sent)


def without_none(value: Any) -> Any:
    """`value` without None fields: a builder may leave out optional fields the schema fills in as None."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def test_every_builder_follows_its_schema(served_model: LoadedModel) -> None:
    messages = [
        ready_message("3f2a", served_model, GuidanceConfig(), 1 << 20),
        configured_message(ScanHello(format="raw", width=640, height=480)),
        configured_message(ScanHello()),
        error_message(None, "bad_message", "text messages must be JSON objects"),
        error_message(7, "corrupt_frame", "truncated PNG"),
        model_swap_message(None, served_model),
        model_swap_message(served_model, served_model),
    ]
    for message in messages:
        assert conforms(message), message


@pytest.mark.parametrize(
    "prediction",
    [
        classify(np.array([0.25, 0.75], dtype=np.float32), ["absent", "present"]),
        segment(MASK, GEOMETRY, outline=True),
    ],
)
@pytest.mark.parametrize("smoothed", [None, 0.61234567])
def test_the_result_built_per_frame_follows_its_schema(
    served_model: LoadedModel, prediction: Any, smoothed: float | None
) -> None:
    signal = FrameSignal(60.0, 20.0, None, b"")
    verdict = FrameVerdict("good", "amenable")
    scored = ScoredFrame(0, 0.71234567, 0.5, prediction, signal, 0.81234567, 0.05, verdict, 0.9, 3.25)
    update = GuidanceUpdate(
        state="good", reason="amenable", smoothed_score=smoothed, changed=True, has_signal=True
    )
    result = StreamResult(
        3, scored, verdict, update, TIMING, 0.004, 2, served_model.name, served_model.number
    )
    message = result_message(result)
    assert conforms(message), message
    assert message["captured"] is None and result_message(result, [3, 1])["captured"] == [3, 1]
    assert message["score"] == 0.712346 and message["seq"] == 3 and message["dropped"] == 2
    assert (message["verdict"], message["reason"], message["display_score"]) == ("good", "amenable", 0.812346)
    assert message["latency_ms"] == {"decode": 1.25, "queue": 0.5, "inference": 3.0, "total": 4.0}


def test_an_unknown_type_is_echoed_short() -> None:
    assert (
        MSG_UNKNOWN_TYPE.format(type=ShownType("ping"))
        == "unknown message type 'ping'; expected 'hello' or 'end'"
    )
    long = MSG_UNKNOWN_TYPE.format(type=ShownType("x" * 10_000))
    assert len(long) < 2 * SHOWN_TYPE_CHARS + len(MSG_UNKNOWN_TYPE)
    assert "..." in MSG_UNKNOWN_TYPE.format(type=ShownType([[[[["deep"]]]]]))
