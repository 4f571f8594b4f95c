"""`python -m experiments.captures`: the picture difference (mean absolute grey level of 32x32 thumbnails of
the model's input) between frames of simulated sweeps at least 1 s apart, and between a frame and its JPEG
re-encoding; what the auto-capture level `SAME_PICTURE_LEVEL` is set between."""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from usqa.contracts.frames import FrameSpec
from usqa.service.api.cine import DEMO_FPS
from usqa.service.frames.preprocess import prepare_frame
from usqa.service.live.captures import SAME_PICTURE_LEVEL, picture_difference, thumbnail
from usqa.service.simulator import simulate_cine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--size", type=int, default=64, help="the model's input size (the shipped model's: 64)"
    )
    args = parser.parse_args()
    spec = FrameSpec(size=args.size)
    apart, reencoded = [], []
    for seed in range(args.seeds):
        images = [f.image for f in simulate_cine("transrectal_prostate", args.frames, seed=seed)]
        pictures = [thumbnail(prepare_frame(image, spec)) for image in images]
        for i, image in enumerate(images):
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            again = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
            assert again is not None
            reencoded.append(picture_difference(pictures[i], thumbnail(prepare_frame(again, spec))))
            step = int(DEMO_FPS)  # frames at least 1 s apart at the demo's frame rate
            apart += [picture_difference(pictures[i], pictures[j]) for j in range(i + step, len(images))]
    a, r = np.array(apart), np.array(reencoded)
    print(
        f"simulated sweeps: {args.seeds} seeds x {args.frames} frames, transrectal_prostate, {args.size} px input"
    )
    print(
        f"frames >= 1 s apart ({a.size} pairs): min {a.min():.2f}, 0.1 % {np.percentile(a, 0.1):.2f}, "
        f"1 % {np.percentile(a, 1):.2f}, median {np.median(a):.2f} grey levels"
    )
    print(
        f"a frame and its JPEG (quality 80) re-encoding ({r.size}): median {np.median(r):.2f}, max {r.max():.2f}"
    )
    print(
        f"SAME_PICTURE_LEVEL {SAME_PICTURE_LEVEL}: pairs apart below it {(a < SAME_PICTURE_LEVEL).sum()}, "
        f"re-encodings at or above it {(r >= SAME_PICTURE_LEVEL).sum()}"
    )


if __name__ == "__main__":
    main()
