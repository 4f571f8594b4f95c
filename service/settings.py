"""All runtime settings in one place, read from `USQA_*` environment variables through `get_settings()`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service and pipeline settings; tests build their own instance instead of patching the environment."""

    model_config = SettingsConfigDict(env_prefix="USQA_", env_file=None, extra="ignore")

    # Frame pipeline limits: a frame larger than this is refused before it is decoded into memory.
    max_frame_pixels: int = Field(default=4096 * 4096, gt=0)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Multi-frame inputs (DICOM cine, video) stop with a clear error past this many frames.
    max_frames_per_input: int = Field(default=5000, gt=0)

    registry: Path = Path("models")
    data_root: Path = Path("runs/data")
    redis_url: str | None = None
    api_token: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
