"""The model registry (versions, manifests, aliases) shared by the trainer, the jobs and the service."""

from usqa.service.registry.announce import REGISTRY_CHANNEL, Announcement, RedisAnnouncer
from usqa.service.registry.locate import open_registry, shipped_registry
from usqa.service.registry.manifest import (
    MANIFEST_FILE,
    Calibration,
    Certification,
    DriftReference,
    FrameCost,
    InputSpec,
    Manifest,
    OodCalibration,
    RejectorSpec,
    ScoreHistogram,
    sha256_file,
)
from usqa.service.registry.store import (
    CHALLENGER,
    CHAMPION,
    LATEST,
    IntegrityError,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    explain,
)
from usqa.service.registry.trust import UnservableError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LATEST",
    "MANIFEST_FILE",
    "REGISTRY_CHANNEL",
    "Announcement",
    "Calibration",
    "Certification",
    "DriftReference",
    "FrameCost",
    "InputSpec",
    "IntegrityError",
    "Manifest",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "OodCalibration",
    "RedisAnnouncer",
    "RegistryError",
    "RejectorSpec",
    "ScoreHistogram",
    "UnservableError",
    "explain",
    "open_registry",
    "sha256_file",
    "shipped_registry",
]
