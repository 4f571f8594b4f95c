from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from service.api.schemas import PredictionOut, prediction_dict, prediction_out
from service.inference.geometry import FrameGeometry
from service.inference.predictions import Prediction, classify, segment

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
