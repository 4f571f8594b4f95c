"""The model registry (versions, manifests, aliases) shared by the trainer, the jobs and the service."""

from service.registry.announce import REGISTRY_CHANNEL, Announcement, RedisAnnouncer
from service.registry.manifest import (
    MANIFEST_FILE,
    Calibration,
    DriftReference,
    InputSpec,
    Manifest,
    OodCalibration,
    ScoreHistogram,
    sha256_file,
)
from service.registry.store import (
    CHALLENGER,
    CHAMPION,
    LATEST,
    IntegrityError,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LATEST",
    "MANIFEST_FILE",
    "REGISTRY_CHANNEL",
    "Announcement",
    "Calibration",
    "DriftReference",
    "InputSpec",
    "IntegrityError",
    "Manifest",
    "ModelRegistry",
    "ModelVersion",
    "OodCalibration",
    "RedisAnnouncer",
    "RegistryError",
    "ScoreHistogram",
    "sha256_file",
]
