from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from usqa.service.api.schemas import AssessResponse, PredictionOut, prediction_dict, prediction_out
from usqa.service.inference.batch_job import BatchTiming
from usqa.service.inference.geometry import FrameGeometry
from usqa.service.inference.model import LoadedModel
from usqa.service.inference.predictions import Prediction, classify, segment
from usqa.service.inference.scoring import ScoredBatch, ScoredFrame
from usqa.service.inference.verdict import FrameSignal, FrameVerdict

GEOMETRY = FrameGeometry(source_width=64, source_height=64, crop=(0, 64, 0, 64), input_size=64)
MASK = np.zeros((64, 64), dtype=np.float32)
MASK[10:20, 5:30] = 1.0


@pytest.mark.parametrize(
    "prediction",
    [
        classify(np.array([0.25, 0.75], dtype=np.float32), ["absent", "present"]),
        segment(MASK, GEOMETRY),
        segment(MASK, GEOMETRY, outline=True, png=True),
        segment(np.zeros_like(MASK), GEOMETRY, outline=True),
    ],
)
def test_the_fast_stream_dict_is_the_documented_schema(prediction: Prediction) -> None:
    fast = prediction_dict(prediction)
    assert TypeAdapter(PredictionOut).validate_python(fast) == prediction_out(prediction)


def test_an_assessment_gives_each_frame_its_share_of_decoding_and_its_batch_times(
    served_model: LoadedModel,
) -> None:
    prediction = classify(np.array([0.25, 0.75], dtype=np.float32), ["absent", "present"])
    signal = FrameSignal(50.0, 20.0, None, b"")
    verdicts = [FrameVerdict("adjust", "low_score"), FrameVerdict("good", "amenable")]
    frames = [
        ScoredFrame(i, 0.4 + i / 10, 0.45, prediction, signal, 0.4 + i / 10, 0.45, verdicts[i])
        for i in range(2)
    ]
    timing = BatchTiming(queue_s=0.001, prepare_s=0.004, inference_s=0.003, batch_frames=2)
    response = AssessResponse.of(ScoredBatch(served_model, frames, timing), total_s=0.0101)
    assert response.frame_count == 2 and [f.amenable for f in response.frames] == [False, True]
    assert [(f.verdict, f.reason) for f in response.frames] == [("adjust", "low_score"), ("good", "amenable")]
    assert (response.model.version, response.threshold) == (served_model.number, served_model.threshold)
    per_frame = {"decode_ms": 2.0, "queue_ms": 1.0, "inference_ms": 3.0, "total_ms": 10.1}
    assert all(frame.timings.model_dump() == per_frame for frame in response.frames)
    assert response.timings.decode_ms == 4.0
