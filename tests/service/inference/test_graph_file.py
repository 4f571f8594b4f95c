"""Graph files run by the graph contract: named outputs, batch by batch, the same as one run of a pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usqa.contracts.graphs import PROBABILITIES_OUTPUT, SCORE_OUTPUT
from usqa.service.inference.graph_file import open_graph, open_graphs, run_graph_file

from ..conftest import FRAME_SIZE, write_graphs


def test_a_graph_file_runs_batch_by_batch_as_one_run_of_the_pair(tmp_path: Path) -> None:
    files = write_graphs(tmp_path, "classify")
    frames = np.random.default_rng(0).integers(0, 256, (7, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    (scores,) = run_graph_file(files["controller.onnx"], frames, [SCORE_OUTPUT], batch=3)
    (probabilities,) = run_graph_file(open_graph(files["predictor.onnx"]), frames, [PROBABILITIES_OUTPUT])
    pair = open_graphs(files["controller.onnx"], files["predictor.onnx"], "classify").run(frames)
    assert scores.shape == (7,) and probabilities.shape == (7, 2)
    np.testing.assert_array_equal(scores, pair.scores)
    assert pair.probabilities is not None
    np.testing.assert_array_equal(probabilities, pair.probabilities)
