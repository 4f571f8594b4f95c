"""The model registry (versions, manifests, aliases) shared by the trainer, the jobs and the service."""

from service.registry.announce import REGISTRY_CHANNEL, Announcement, RedisAnnouncer
from service.registry.manifest import MANIFEST_FILE, InputSpec, Manifest, ScoreHistogram, sha256_file
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
    "InputSpec",
    "IntegrityError",
    "Manifest",
    "ModelRegistry",
    "ModelVersion",
    "RedisAnnouncer",
    "RegistryError",
    "ScoreHistogram",
    "sha256_file",
]
