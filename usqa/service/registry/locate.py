"""Which registries a command reads: the configured one (`USQA_REGISTRY`, writable) and the shipped model.

The shipped default model must work from any folder, also from an installed wheel, while publishing and
promotion keep writing to a registry the operator chose. So there are two places, never merged per name:

1. `settings.registry` (`USQA_REGISTRY`, default `models/` relative to the working directory, as in a
   checkout and the images): read first, and the only one written.
2. The shipped registry, read-only: `usqa/service/registry/shipped/` inside an installed wheel (a copy of the
   repository's `models/` made when the wheel is built, see setup.py), or the `models/` folder of the
   checkout this code runs from (editable installs, `PYTHONPATH`). `USQA_SHIPPED_REGISTRY=false` turns it off.

A name found in the first is read wholly from there; a missing name lists both folders (`explain`).
"""

from __future__ import annotations

from pathlib import Path

from usqa.service.registry.store import Announcer, ModelRegistry
from usqa.service.settings import Settings

# Where setup.py's build step puts the copy of models/ inside the wheel (package data of usqa.service.registry).
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
# A source checkout: this file is usqa/service/registry/locate.py under the repository root.
CHECKOUT_ROOT = Path(__file__).resolve().parents[3]


def shipped_registry() -> Path | None:
    """The read-only registry that ships with this installation, if there is one."""
    if SHIPPED_DIR.is_dir():
        return SHIPPED_DIR
    checkout_models = CHECKOUT_ROOT / "models"
    # pyproject.toml beside it: a checkout, not a `models` folder some other package left in site-packages.
    if (CHECKOUT_ROOT / "pyproject.toml").is_file() and checkout_models.is_dir():
        return checkout_models
    return None


def read_only_registries(settings: Settings) -> list[Path]:
    """The registries read behind `settings.registry`: the shipped one, unless off or the same folder."""
    shipped = shipped_registry() if settings.shipped_registry else None
    if shipped is None or shipped.resolve() == settings.registry.resolve():
        return []
    return [shipped]


def open_registry(settings: Settings, announcer: Announcer | None = None) -> ModelRegistry:
    """The registry every command and the service use: writable `settings.registry`, shipped model behind."""
    return ModelRegistry(settings.registry, announcer, read_only=read_only_registries(settings))
