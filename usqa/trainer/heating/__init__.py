"""The heated backbone of seed 000: policy-gradient noise masks (pre-training), fine-tuning, backbone files.

`usqa heat` trains a classifier on frames multiplied by noise masks that a light policy network samples
(Algorithm 1); its backbone (`backbone.pt`, see `backbone_io`) initialises `usqa finetune` and the RL trainer's
predictor and controller (`usqa train --backbone`). The policy is never exported or served.

`heat` and `finetune` are imported from `usqa.trainer.heating.heat` and `usqa.trainer.heating.finetune`, not from here:
they build on `usqa.trainer.engine`, whose engines build on the modules re-exported here.
"""

from usqa.trainer.heating.backbone_io import load_backbone, read_backbone_meta, save_backbone
from usqa.trainer.heating.config import (
    FinetuneConfig,
    HeatConfig,
    MaskConfig,
    PolicyConfig,
    finetune_preset,
    heat_preset,
)
from usqa.trainer.heating.data import ClassData, load_class_data
from usqa.trainer.heating.loss import heating_loss, mask_log_likelihood
from usqa.trainer.heating.masks import NoiseMaskSampler, apply_mask, gaussian_blur
from usqa.trainer.heating.policy import NoisePolicy

__all__ = [
    "ClassData",
    "FinetuneConfig",
    "HeatConfig",
    "MaskConfig",
    "NoiseMaskSampler",
    "NoisePolicy",
    "PolicyConfig",
    "apply_mask",
    "finetune_preset",
    "gaussian_blur",
    "heat_preset",
    "heating_loss",
    "load_backbone",
    "load_class_data",
    "mask_log_likelihood",
    "read_backbone_meta",
    "save_backbone",
]
