"""Schemas of the session routes (GET /sessions, /sessions/{id}); the data comes from `SessionRecord`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from usqa.service.api.scan_messages import DicomInstance, FrameCounts, ScanSummary


class CaptureOut(BaseModel):
    rank: int = Field(description="0 is the best; the PNG is at `url`")
    frame: int = Field(description="The frame's index in the stream (the result's `seq`)")
    time_s: float = Field(description="Seconds from the start of the session")
    score: float = Field(description="Display score of the frame")
    verdict: str
    url: str


class SessionReport(BaseModel):
    session: str
    status: Literal["live", "finished"]
    started_at: float = Field(description="Unix time of the stream's start")
    duration_s: float
    frames: FrameCounts
    verdict_seconds: dict[str, float] = Field(description="Time spent scanning in each verdict")
    usable_fraction: float | None = Field(description="Share of that time in `good`")
    captures: list[CaptureOut] = Field(description="Auto-captured best frames, best first")
    model_versions: list[int]
    dicom: list[DicomInstance] = Field(description="The DICOM instances the frames came from, if any")
    summary_text: str = Field(description="The report in words, for the sonographer")
    engineering: ScanSummary = Field(description="The stream's engineering figures (latency, drift)")


class SessionListItem(BaseModel):
    session: str
    status: Literal["live", "finished"]
    started_at: float
    frames_scored: int
    usable_fraction: float | None
    captures: int
    url: str


class SessionList(BaseModel):
    sessions: list[SessionListItem] = Field(description="Open and recent sessions, newest first")
