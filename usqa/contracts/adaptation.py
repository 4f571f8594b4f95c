"""Adapting a published version to a new site with few labels: the modes, the model reference, the messages.

Torch-free on purpose: the API validates a retraining spec that adapts (`adapt_from`, `labels`, `adapt_mode`)
before anything is queued, and the trainer's `usqa adapt` parses the same reference with the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

AdaptMode = Literal["probe", "finetune", "controller"]
ADAPT_MODES: tuple[str, ...] = get_args(AdaptMode)
# NAME, NAME:VERSION or NAME@ALIAS; a bare NAME means its champion.
MODEL_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(:[0-9]{1,9}|@[A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$"
DEFAULT_ALIAS = "champion"

MSG_BAD_REF = "{ref!r} is not a model reference: use NAME, NAME:VERSION or NAME@ALIAS"


@dataclass(frozen=True)
class ModelRef:
    """A published version named by a user: a model name and a version number or alias."""

    name: str
    ref: str  # a version number as text, or an alias

    def __str__(self) -> str:
        return f"{self.name}:{self.ref}" if self.ref.isdigit() else f"{self.name}@{self.ref}"


def parse_model_ref(text: str) -> ModelRef:
    """`NAME[:VERSION|@ALIAS]` -> ModelRef; raises ValueError with `MSG_BAD_REF` otherwise."""
    if not re.fullmatch(MODEL_REF_PATTERN, text):
        raise ValueError(MSG_BAD_REF.format(ref=text))
    if ":" in text:
        name, version = text.split(":", 1)
        return ModelRef(name, str(int(version)))
    if "@" in text:
        name, alias = text.split("@", 1)
        return ModelRef(name, alias)
    return ModelRef(text, DEFAULT_ALIAS)
