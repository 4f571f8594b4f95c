"""The ONNX graph contract between the exporter (trainer) and the runtime (service).

Each published version holds two graphs. Both take `frame`: uint8 [N, 1, S, S] (batch axis dynamic; the
scaling to the network's input lives inside the graph). `controller.onnx` outputs `score`: float32 [N] in
[0, 1]. `predictor.onnx` outputs `probabilities`: float32 [N, C] (classify) or `mask_probability`: float32
[N, 1, S, S] (segment), and optionally `ood_distance`: float32 [N], the Mahalanobis distance of the frame's
features to the training frames (the runtime judges a frame out of scope when the manifest's `ood` section
names this output and the distance passes its threshold). docs/export.md states the same for readers.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["controller", "classifier", "segmenter"]
Task = Literal["classify", "segment"]

INPUT_NAME: Final = "frame"
INPUT_DTYPE: Final = "uint8"
OUTPUT_DTYPE: Final = "float32"
SCORE_OUTPUT: Final = "score"
PROBABILITIES_OUTPUT: Final = "probabilities"
MASK_OUTPUT: Final = "mask_probability"
# Optional second output of the predictor graph (schema_version 2 manifests with an `ood` section).
OOD_OUTPUT: Final = "ood_distance"
OUTPUT_BY_TASK: Final[dict[str, str]] = {"classify": PROBABILITIES_OUTPUT, "segment": MASK_OUTPUT}
OUTPUT_BY_ROLE: Final[dict[str, str]] = {
    "controller": SCORE_OUTPUT,
    "classifier": PROBABILITIES_OUTPUT,
    "segmenter": MASK_OUTPUT,
}
PREDICTOR_ROLE: Final[dict[str, Role]] = {"classify": "classifier", "segment": "segmenter"}

# The manifest's `graphs` keys and the files they name.
CONTROLLER: Final = "controller"
PREDICTOR: Final = "predictor"
CONTROLLER_FILE: Final = "controller.onnx"
PREDICTOR_FILE: Final = "predictor.onnx"
GRAPH_FILES: Final[dict[str, str]] = {CONTROLLER: CONTROLLER_FILE, PREDICTOR: PREDICTOR_FILE}
OPSET: Final = 18

# The rejectors a manifest may serve: formulas over the two graphs' outputs (usqa/service/inference/rejectors.py).
RejectorName = Literal["controller", "softmax", "doctor", "fused", "expected_metric"]
REJECTORS: Final[tuple[RejectorName, ...]] = get_args(RejectorName)


def int8_file(file: str) -> str:
    """The file name of a graph's int8-quantised twin (`predictor.onnx` -> `predictor.int8.onnx`)."""
    return file.removesuffix(".onnx") + ".int8.onnx"
