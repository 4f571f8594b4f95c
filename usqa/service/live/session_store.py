"""Session records: what each /ws/scan stream did, in words and numbers, with its best frames.

A `SessionRecord` follows one stream while it runs (time per verdict, auto-captures, DICOM identity) and
keeps its report after it ends. The `SessionStore` holds the records in memory, bounded: every open stream
(at most USQA_MAX_SCAN_SESSIONS) plus the most recently used `max_sessions` finished ones, and finished
ones are also evicted, oldest first, while their captures hold more than `max_bytes`.

Disk, only when a folder is configured: a finished session is written to `<folder>/<session id>/`
(`report.json` and `capture-<k>.png`, k = rank, 0 the best) by building it in a temporary sibling folder,
fsyncing each file, then renaming it into place, so a reader sees a whole session or none. The folder is an
archive for people and other tools; the routes serve memory only.

Retention: a finished session is kept `retention_s` after it ended, then it is gone from memory and its
folder from disk (swept on every read and new session, and periodically by `sweep_periodically`; the disk
sweep goes by the folder's modification time, so folders an earlier process left expire too). `delete`
removes one session now, from memory and disk. A session deleted or expired while its archive is being
written never reaches the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from usqa.contracts.protocol import VERDICTS, Verdict
from usqa.service.durable import write_folder
from usqa.service.frames.dicom_uids import InstanceUids
from usqa.service.live.captures import SAME_PICTURE_LEVEL, Capture, CaptureKeeper, FrameBytes, thumbnail
from usqa.service.live.results import StreamResult
from usqa.service.live.sessions import ScanSessionStats

log = logging.getLogger(__name__)

# A pause longer than this between two results (the probe parked, the client stalled) counts only this
# long towards the verdict that was showing: "time in each verdict" means time spent scanning.
MAX_VERDICT_GAP_S = 2.0
# Distinct DICOM instances remembered per session (a folder of files streams several).
MAX_DICOM_INSTANCES = 64
REPORT_FILE = "report.json"
CAPTURE_URL = "/sessions/{session}/captures/{rank}.png"
CAPTURE_FILE = "capture-{rank}.png"
LIVE, FINISHED = "live", "finished"
DEFAULT_RETENTION_S = 24 * 3600.0
# The disk is swept at most this often (and at least once per retention): each sweep lists the folder.
MAX_SWEEP_INTERVAL_S = 300.0
# What a session id may look like on disk (ours are 12 hex digits): nothing else names a folder to delete.
SESSION_FOLDER_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


class SessionRecord:
    """One stream's record: fed each result by its `ScanSession`, read by the session routes."""

    def __init__(
        self,
        stats: ScanSessionStats,
        *,
        captures: int,
        spacing_s: float,
        max_pixels: int,
        same_picture_level: float = SAME_PICTURE_LEVEL,
    ) -> None:
        self.stats = stats
        self.session_id = stats.session_id
        self.started_at = time.time()
        self._started = time.perf_counter()
        self.keeper = CaptureKeeper(captures, spacing_s, same_picture_level)
        self.max_pixels = max_pixels
        self.verdict_seconds: dict[Verdict, float] = dict.fromkeys(VERDICTS, 0.0)
        self.dicom: list[InstanceUids] = []
        # The study the client named in its hello (validated DICOM values by field name; docs/pacs.md).
        self.study_fields: dict[str, str] = {}
        self.model_name: str | None = None  # the exam's model (the last one, after a switch)
        self.finished_after_s: float | None = None
        self.finished_at: float | None = None  # wall clock, for retention
        self.removed = False  # deleted or expired: never archived, never held again
        self._last: tuple[float, Verdict] | None = None

    @property
    def status(self) -> str:
        return LIVE if self.finished_after_s is None else FINISHED

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.keeper.captures)

    def seconds_since_start(self, perf_time: float) -> float:
        return max(0.0, perf_time - self._started)

    def add_dicom(self, uids: InstanceUids) -> None:
        if uids not in self.dicom and len(self.dicom) < MAX_DICOM_INSTANCES:
            self.dicom.append(uids)

    def on_result(self, result: StreamResult, time_s: float, frame: FrameBytes) -> bool:
        """Account a scored frame (it arrived `time_s` after the start); True when captured."""
        verdict = result.stream_verdict
        self._advance(time_s)
        self._last = (time_s, verdict)
        if not result.capturable:
            return False
        score = round(result.scored.display_score, 6)  # as the result message says it
        if not self.keeper.would_keep(time_s, score):
            return False  # the common case decides by time and score, without building anything
        pixels = result.scored.pixels
        capture = Capture(
            frame=result.seq,
            time_s=round(time_s, 3),
            score=score,
            verdict=verdict,
            source=frame,
            max_pixels=self.max_pixels,
            picture=None if pixels is None else thumbnail(pixels),
        )
        return self.keeper.offer(capture)

    def finish(self) -> None:
        now = self.seconds_since_start(time.perf_counter())
        self._advance(now)
        self._last = None
        self.finished_after_s = now
        self.finished_at = time.time()

    def _advance(self, time_s: float) -> None:
        if self._last is not None:
            since, verdict = self._last
            gap = min(max(0.0, time_s - since), MAX_VERDICT_GAP_S)
            self.verdict_seconds[verdict] = self.verdict_seconds.get(verdict, 0.0) + gap

    def capture_frames(self) -> list[int]:
        """The seqs of the kept frames, best first (what a result message's `captured` lists)."""
        return [c.frame for c in self.keeper.captures]

    def capture(self, rank: int) -> Capture | None:
        captures = self.keeper.captures
        return captures[rank] if 0 <= rank < len(captures) else None

    def report(self) -> dict[str, Any]:
        """The report as JSON-ready data (`SessionReport` in usqa/service/api/session_schemas.py)."""
        engineering = self.stats.summary()
        duration = self.finished_after_s
        if duration is None:
            duration = self.seconds_since_start(time.perf_counter())
        seconds = {k: round(v, 3) for k, v in self.verdict_seconds.items()}
        usable = usable_fraction(self.verdict_seconds)
        captures = [
            {
                "rank": rank,
                "frame": c.frame,
                "time_s": c.time_s,
                "score": c.score,
                "verdict": c.verdict,
                "url": CAPTURE_URL.format(session=self.session_id, rank=rank),
            }
            for rank, c in enumerate(self.keeper.captures)
        ]
        return {
            "session": self.session_id,
            "status": self.status,
            "started_at": round(self.started_at, 3),
            "duration_s": round(duration, 3),
            "frames": engineering["frames"],
            "verdict_seconds": seconds,
            "usable_fraction": None if usable is None else round(usable, 4),
            "captures": captures,
            "model_versions": list(self.stats.versions),
            "dicom": [vars(uids).copy() for uids in self.dicom],
            "summary_text": summary_text(duration, self.verdict_seconds, captures, engineering["frames"]),
            "engineering": engineering,
        }

    def listing(self) -> dict[str, Any]:
        usable = usable_fraction(self.verdict_seconds)
        return {
            "session": self.session_id,
            "status": self.status,
            "started_at": round(self.started_at, 3),
            "frames_scored": self.stats.scored,
            "usable_fraction": None if usable is None else round(usable, 4),
            "captures": len(self.keeper.captures),
            "url": f"/sessions/{self.session_id}",
        }


def usable_fraction(verdict_seconds: Mapping[Verdict, float]) -> float | None:
    total = sum(verdict_seconds.values())
    return verdict_seconds.get(Verdict.GOOD, 0.0) / total if total > 0 else None


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def summary_text(
    duration_s: float,
    verdict_seconds: Mapping[Verdict, float],
    captures: list[dict[str, Any]],
    frames: dict[str, int],
) -> str:
    """The report in the words a sonographer reads; the engineering figures stay in `engineering`."""
    if frames["scored"] == 0:
        return f"Scan of {_clock(duration_s)}: no frame could be assessed."
    total = sum(verdict_seconds.values())
    if total <= 0:
        parts = "usable time not measured (a single frame)"
    else:
        shares = {k: 100 * v / total for k, v in verdict_seconds.items()}
        others = ", ".join(
            f"{k.replace('_', ' ')} {shares[k]:.0f} %" for k in VERDICTS[1:] if shares.get(k, 0) >= 0.5
        )
        parts = f"usable {shares.get(Verdict.GOOD, 0.0):.0f} % of the time" + (
            f" ({others})" if others else ""
        )
    text = f"Scan of {_clock(duration_s)}: {parts}."
    if captures:
        best = "; ".join(f"at {_clock(c['time_s'])} (score {c['score']:.2f})" for c in captures)
        text += f" Best frames: {best}."
    else:
        text += " No frame was good enough to keep."
    return text


class SessionStore:
    """Open and recent finished sessions by id, bounded in count and capture bytes; optional disk archive."""

    def __init__(
        self,
        max_sessions: int,
        max_bytes: int,
        folder: Path | None = None,
        retention_s: float = DEFAULT_RETENTION_S,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.folder = folder
        self.retention_s = retention_s
        self.sweep_interval_s = min(MAX_SWEEP_INTERVAL_S, retention_s)
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()  # least recently used first
        self._disk = threading.Lock()  # an archive's last step against a deletion of the same folder
        self._disk_swept_at = 0.0

    def __len__(self) -> int:
        return len(self._records)

    def open(self, record: SessionRecord) -> None:
        self.expire()
        if time.monotonic() - self._disk_swept_at >= self.sweep_interval_s:
            self.sweep_disk()
        self._records[record.session_id] = record

    def get(self, session_id: str) -> SessionRecord | None:
        self.expire()
        record = self._records.get(session_id)
        if record is not None:
            self._records.move_to_end(session_id)
        return record

    def recent(self) -> list[SessionRecord]:
        """Every held session, newest start first."""
        self.expire()
        return sorted(self._records.values(), key=lambda r: r.started_at, reverse=True)

    def finish(self, record: SessionRecord) -> None:
        """The stream ended: its record joins the finished ones, and the oldest beyond the bounds go."""
        record.finish()
        if record.removed:
            return  # deleted while it streamed
        self._records[record.session_id] = record
        self._records.move_to_end(record.session_id)
        self.evict()

    def delete(self, session_id: str) -> bool:
        """Forget a session (open or finished) and remove its folder; False when neither existed."""
        record = self._records.pop(session_id, None)
        if record is not None:
            record.removed = True
        return self._remove_folder(session_id) or record is not None

    def expire(self, now: float | None = None) -> list[str]:
        """Forget the finished sessions older than the retention, and remove their folders; their ids."""
        now = time.time() if now is None else now
        expired = [
            r
            for r in self._records.values()
            if r.finished_at is not None and now - r.finished_at >= self.retention_s
        ]
        for record in expired:
            del self._records[record.session_id]
            record.removed = True
            self._remove_folder(record.session_id)
        if expired:
            log.info(
                "scan sessions expired after %.0f s: %s", self.retention_s, [r.session_id for r in expired]
            )
        return [r.session_id for r in expired]

    def sweep_disk(self, now: float | None = None) -> list[str]:
        """Remove the folder's sessions (and stale staging folders) last written before the retention."""
        self._disk_swept_at = time.monotonic()
        if self.folder is None or not self.folder.is_dir():
            return []
        now = time.time() if now is None else now
        removed = []
        with self._disk:
            for entry in self.folder.iterdir():
                with contextlib.suppress(OSError):  # gone already, or not ours to stat
                    if entry.is_dir() and now - entry.stat().st_mtime >= self.retention_s:
                        shutil.rmtree(entry)
                        removed.append(entry.name)
        if removed:
            log.info("scan session folders expired after %.0f s: %s", self.retention_s, removed)
        return removed

    def _remove_folder(self, session_id: str) -> bool:
        if self.folder is None or not SESSION_FOLDER_NAME.fullmatch(session_id):
            return False
        target = self.folder / session_id
        with self._disk:
            if not target.is_dir():
                return False
            shutil.rmtree(target)
        return True

    def evict(self) -> None:
        finished = [r for r in self._records.values() if r.finished_after_s is not None]
        held = sum(r.nbytes for r in finished)
        while finished and (len(finished) > self.max_sessions or held > self.max_bytes):
            oldest = finished.pop(0)
            held -= oldest.nbytes
            del self._records[oldest.session_id]

    def archive(self, record: SessionRecord) -> Path | None:
        """Write a finished session to the folder (atomically), if one is configured; runs in a thread."""
        if self.folder is None or record.removed:
            return None
        try:
            target = write_session(self.folder, record)
        except Exception:  # the report stays in memory; the archive is best effort, and says so
            log.exception("could not archive scan session %s to %s", record.session_id, self.folder)
            return None
        with self._disk:
            if record.removed:  # deleted or expired while it was being written
                shutil.rmtree(target, ignore_errors=True)
                return None
        return target


async def sweep_periodically(store: SessionStore) -> None:
    """Expire sessions even when nobody reads or streams (the disk part in a thread); cancel to stop."""
    while True:
        await asyncio.sleep(store.sweep_interval_s)
        try:
            store.expire()
            await asyncio.to_thread(store.sweep_disk)
        except Exception:  # a failing sweep must not end the sweeping
            log.exception("scan session sweep failed")


def write_session(folder: Path, record: SessionRecord) -> Path:
    """`<folder>/<id>/` with report.json and the captures as PNG, written whole or not at all."""
    files = {REPORT_FILE: json.dumps(record.report(), indent=2).encode()}
    for rank, capture in enumerate(record.keeper.captures):
        files[CAPTURE_FILE.format(rank=rank)] = capture.png()
    return write_folder(folder, record.session_id, files, staging_prefix=f".{record.session_id}.")
