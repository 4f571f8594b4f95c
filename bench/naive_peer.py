"""The naive peer for the service benchmark: a plain FastAPI endpoint running the same networks in PyTorch
eager mode, one request at a time per thread, no batching, no ONNX.

The networks are the trainer's (`usqa.trainer.networks`), built from the served version's manifest
(`training_config` when the exporter recorded it, else the trainer's defaults for the manifest's task and
frame size). Weights come from a training run folder when `--run` is given; without one they are the seeded
initial weights, which cost the same time per frame. Run: `python -m bench.naive_peer --registry models
--name usqa-prostate --port 8101`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import torch
from fastapi import Body, FastAPI, HTTPException

from usqa.contracts.training import TrainConfig
from usqa.service.frames import FrameSpec, prepare_frame
from usqa.service.registry import ModelRegistry
from usqa.trainer.amenability.run import build_networks, load_run

log = logging.getLogger(__name__)


def peer_config(manifest_config: dict[str, Any], task: str, size: int, classes: int) -> TrainConfig:
    if manifest_config:
        try:
            return TrainConfig.from_dict(manifest_config)
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("manifest training_config unusable (%s); using the trainer's defaults", exc)
    return replace(TrainConfig(), task=task, frame=FrameSpec(size=size), num_classes=classes)  # type: ignore[arg-type]


def create_peer(registry: Path, name: str, run: Path | None = None) -> FastAPI:
    version = ModelRegistry(registry).load(name)
    manifest = version.manifest
    spec = FrameSpec.from_dict(manifest.preprocessing)
    if run is not None:
        _, controller, predictor, _ = load_run(run)
    else:
        config = peer_config(manifest.training_config, manifest.task, spec.size, len(manifest.class_names))
        predictor, controller = build_networks(config)
    controller.eval()
    predictor.eval()
    with torch.no_grad():  # first-call set-up is not what the benchmark compares
        warm = torch.zeros((1, 1, spec.size, spec.size), dtype=torch.uint8)
        controller(warm)
        predictor(warm)
    app = FastAPI(title="naive PyTorch peer")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # A plain blocking endpoint, as FastAPI's docs suggest for blocking work: it runs in the thread pool,
    # one request per thread, each with torch's default intra-op threads.
    @app.post("/assess")
    def assess(data: Annotated[bytes, Body(media_type="image/png")]) -> dict[str, Any]:
        return _score(data)

    def _score(data: bytes) -> dict[str, Any]:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise HTTPException(400, "not an image")
        frame = torch.from_numpy(prepare_frame(image, spec))[None, None]
        with torch.no_grad():
            score = float(controller(frame)[0])
            output = predictor(frame)
        if manifest.task == "classify":
            probabilities = torch.softmax(output, dim=1)[0]
            best = int(probabilities.argmax())
            return {
                "score": score,
                "label": manifest.class_names[best],
                "probability": float(probabilities[best]),
            }
        mask = torch.softmax(output, dim=1)[0, 1] >= 0.5
        return {"score": score, "mask_area_fraction": float(mask.float().mean())}

    return app


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--name", default="usqa-prostate")
    parser.add_argument("--run", type=Path, help="training run folder with the networks' weights")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's own)")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    uvicorn.run(
        create_peer(args.registry, args.name, args.run), host=args.host, port=args.port, log_level="warning"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
