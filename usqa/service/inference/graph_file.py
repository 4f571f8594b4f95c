"""Exported graph files run the way the runtime runs them: onnxruntime sessions fed by the graph contract.

The release path checks what it is about to publish by running the files themselves, before they are in the
registry: export's torch parity, the out-of-scope calibration's distances, the thresholds from the validation
scores and the quantisation gate's evaluation. They all open a file with `open_graph` and feed it with
`run_graph_file` (prepared uint8 frames [N, S, S] as `frame` [N, 1, S, S], usqa/contracts/graphs.py, in
batches), so no check runs a graph differently from another. Torch-free: the runtime owns how a graph runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from usqa.contracts.graphs import INPUT_NAME
from usqa.service.inference.model import ModelOutputs, run_graphs
from usqa.service.inference.providers import session_options
from usqa.service.registry import RejectorSpec

CPU = ("CPUExecutionProvider",)
GRAPH_BATCH = 64


def open_graph(
    path: Path | str, providers: Sequence[str] = CPU, intra_op_threads: int | None = None
) -> ort.InferenceSession:
    """A session for one graph file (default: CPU, onnxruntime's own threading; `intra_op_threads`: the service's
    session options with that many threads, as a worker runs it)."""
    options = None if intra_op_threads is None else session_options(intra_op_threads)
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


def run_graph_file(
    graph: Path | str | ort.InferenceSession,
    frames: np.ndarray,
    outputs: Sequence[str],
    *,
    batch: int = GRAPH_BATCH,
) -> list[np.ndarray]:
    """The named `outputs` of a graph (a file or an open session) on uint8 frames [N, S, S], batch by batch,
    in the order named (as `InferenceSession.run` gives them)."""
    session = graph if isinstance(graph, ort.InferenceSession) else open_graph(graph)
    parts: list[list[np.ndarray]] = [[] for _ in outputs]
    for start in range(0, len(frames), batch):
        feed = {INPUT_NAME: np.ascontiguousarray(frames[start : start + batch])[:, None]}
        for part, value in zip(parts, session.run(list(outputs), feed), strict=True):
            part.append(np.asarray(value))
    return [np.concatenate(part) for part in parts]


@dataclass(frozen=True)
class GraphPair:
    """A controller and a predictor graph opened from files, e.g. an export's graphs before they are published."""

    controller: ort.InferenceSession
    predictor: ort.InferenceSession
    task: str
    rejector: RejectorSpec | None = None  # the served rejector's score in `scores` (the controller's: None)

    def run(self, frames: np.ndarray) -> ModelOutputs:
        return run_graphs(self.controller, self.predictor, self.task, frames, rejector=self.rejector)


def open_graphs(
    controller: Path | str,
    predictor: Path | str,
    task: str,
    providers: Sequence[str] = CPU,
    rejector: RejectorSpec | None = None,
    intra_op_threads: int | None = None,
) -> GraphPair:
    """Sessions for two graph files that follow the contract, run as a served version's pair."""
    return GraphPair(
        open_graph(controller, providers, intra_op_threads),
        open_graph(predictor, providers, intra_op_threads),
        task,
        rejector,
    )
