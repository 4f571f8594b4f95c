"""The figures of the heated-backbone analysis: (d) noise masks like the paper's Figure 6, and the heating curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from usqa.trainer.heating.config import HeatConfig
from usqa.trainer.heating.data import ClassData
from usqa.trainer.heating.heat import HeatingEngine, policy_masks
from usqa.trainer.heating.masks import NoiseMaskSampler, apply_mask


def mask_figure(
    data: ClassData, clean: set[str], heated: HeatingEngine, config: HeatConfig, path: Path
) -> None:
    """(d) Figure 6: a holdout frame per preset with its noise mask and masked frame, and their histograms."""
    presets = sorted({n.split("/")[0] for n in data.class_names})
    picks: list[int] = []
    for prefix in presets:
        wanted = data.class_names.index(f"{prefix}/label 1")
        candidates = [
            i for i in np.flatnonzero(data.holdout.labels.numpy() == wanted) if data.holdout.names[i] in clean
        ]
        picks.append(int(candidates[len(candidates) // 2]))
    frames = data.holdout.frames[picks]
    sampler = NoiseMaskSampler(config.mask, config.frame.size, seed=7)
    mask = policy_masks(heated.policy, sampler, frames)
    masked = apply_mask(frames, mask, config.mask.space, config.backbone.pixel_mean)
    fan = frames > 0
    fig, axes = plt.subplots(4, len(picks), figsize=(3.2 * len(picks), 11.5))
    for j, name in enumerate(presets):
        original, m, out = frames[j, 0].float(), mask[j, 0], masked[j, 0]
        for row, (image, title, vmax) in enumerate(
            ((original, name.replace("_", " "), 255.0), (m, "noise mask", 1.0), (out, "masked frame", 255.0))
        ):
            axes[row, j].imshow(image.numpy(), cmap="gray", vmin=0, vmax=vmax)
            axes[row, j].set_title(title, fontsize=9)
            axes[row, j].axis("off")
        inside = fan[j, 0]
        ax = axes[3, j]
        bins = np.linspace(0, 1, 41)
        ax.hist(original[inside].numpy() / 255, bins, alpha=0.55, color="tab:blue", label="original / 255")
        ax.hist(out[inside].numpy() / 255, bins, alpha=0.55, color="tab:red", label="masked / 255")
        ax.hist(m[inside].numpy(), bins, alpha=0.55, color="tab:green", label="noise mask")
        ax.set_xlabel("intensity (inside the field of view)", fontsize=8)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Policy noise masks on holdout frames (heated model, seed 0)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_figure(
    histories: dict[str, list[dict[str, float]]], concentrations: dict[str, np.ndarray], path: Path
) -> None:
    """Heating curves of both losses, and the final dataset-level Beta concentration of every grid cell."""
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.6))
    labels = {"heated": "eq. 8 (paper)", "heated_baseline": "eq. 8 + moving-average baseline"}
    for (tag, logs), colour in zip(histories.items(), ("tab:blue", "tab:orange"), strict=False):
        window = max(1, min(25, len(logs)))
        ce = np.convolve([h["cross_entropy"] for h in logs], np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window, len(logs) + 1), ce, color=colour, label=labels[tag])
        steps = [h["step"] for h in logs]
        axes[1].plot(steps, [h["mask_mean"] for h in logs], color=colour, label=f"{labels[tag]}: mean")
        axes[1].plot(steps, [h["mask_std"] for h in logs], "--", color=colour, label=f"{labels[tag]}: std")
    for (tag, values), colour in zip(concentrations.items(), ("tab:blue", "tab:orange"), strict=False):
        bins = np.logspace(np.log10(max(values.min(), 1e-2)), np.log10(values.max() + 1), 50)
        axes[2].hist(values, bins, color=colour, alpha=0.6, label=labels[tag])
    axes[0].set_title("heating: cross-entropy on masked frames (25-step mean)", fontsize=9)
    axes[1].set_title("noise mask: mean and std over pixels", fontsize=9)
    axes[2].set_title("after heating: exp(alpha_d) + exp(beta_d) per grid cell", fontsize=9)
    axes[2].set_xscale("log")
    axes[0].set_xlabel("step", fontsize=8)
    axes[1].set_xlabel("step", fontsize=8)
    axes[2].set_xlabel(
        "Beta concentration (2 = uniform Beta(1, 1); large = nearly deterministic)", fontsize=8
    )
    for ax in axes:
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
