"""The PACS outbox: a scan's DICOM objects wait on disk until the PACS has them, so none is lost while it is down.

Each finished scan is one *parcel*: a folder `<outbox>/<ns>-<session>/` holding its objects as Part 10 files
(`0.dcm`, `1.dcm`, ..., the SR last). A parcel is built in a hidden staging folder, each file fsynced, then
renamed into place, so the sender sees a whole parcel or none, and a crash mid-write leaves only staging that
the next start removes. The sender delivers the oldest parcel first in one STOW-RS request and removes it once
the PACS said it stored every instance. Until then it retries with exponential backoff (`retry_min_s`
doubling up to `retry_max_s`); a parcel the PACS refuses (a 4xx, an instance it cannot process) moves to
`<outbox>/refused/` for a person to look at, with the reason beside it. A parcel delivered but not yet removed
when the process dies is sent again: the PACS keeps one copy of an instance it already holds (same SOP
Instance UID: `dicom_objects.derived_uid`), so nothing arrives twice.

The outbox holds patient data: `discard(session)` removes a session's undelivered parcel (DELETE
/sessions/{id}); docs/privacy.md says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from usqa.service.durable import write_folder
from usqa.service.record.stow import StowClient, StowError

log = logging.getLogger(__name__)

REFUSED_DIR = "refused"
REASON_FILE = "refused.txt"
PARCEL_NAME = re.compile(r"(?P<ns>[0-9]{20})-(?P<session>[0-9A-Za-z_-]{1,64})")
STAGING_PREFIX = ".staging-"

PacsState = Literal["ok", "degraded"]


class Outbox:
    """Parcels on disk, oldest first (module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f"{STAGING_PREFIX}*"):  # an earlier process died mid-write
            shutil.rmtree(stale, ignore_errors=True)
        self.wakeup = asyncio.Event()

    def parcels(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and PARCEL_NAME.fullmatch(p.name))

    def count(self) -> int:
        return len(self.parcels())

    def put(self, session_id: str, instances: Sequence[bytes]) -> Path:
        """Write a parcel (atomically); runs in a thread. The sender is woken by `notify`."""
        if not PARCEL_NAME.fullmatch(f"{0:020d}-{session_id}"):
            raise ValueError(f"not a session id: {session_id!r}")
        files = {f"{k}.dcm": data for k, data in enumerate(instances)}
        name = f"{time.time_ns():020d}-{session_id}"
        target = write_folder(self.folder, name, files, staging_prefix=STAGING_PREFIX)
        return target

    def notify(self) -> None:
        """Wake the sender (call on its event loop)."""
        self.wakeup.set()

    def discard(self, session_id: str) -> int:
        """Remove a session's parcels that are still waiting; how many."""
        removed = 0
        for parcel in self.parcels():
            match = PARCEL_NAME.fullmatch(parcel.name)
            if match and match["session"] == session_id:
                shutil.rmtree(parcel, ignore_errors=True)
                removed += 1
        return removed

    @staticmethod
    def read(parcel: Path) -> list[bytes]:
        files = sorted(parcel.glob("*.dcm"), key=lambda p: int(p.stem))
        return [f.read_bytes() for f in files]

    def refuse(self, parcel: Path, reason: str) -> Path:
        refused = self.folder / REFUSED_DIR
        refused.mkdir(exist_ok=True)
        target = refused / parcel.name
        parcel.replace(target)
        (target / REASON_FILE).write_text(reason + "\n")
        return target


@dataclass
class DeliveryStatus:
    """What /readyz and /metrics say of the PACS."""

    url: str
    delivered: int = 0  # parcels
    refused: int = 0
    failing_since: float | None = None  # wall clock of the first failed try of the current parcel
    last_error: str | None = None

    @property
    def state(self) -> PacsState:
        return "degraded" if self.failing_since is not None else "ok"


class OutboxSender:
    """Delivers the outbox's parcels to the PACS, oldest first; `run` until cancelled."""

    def __init__(
        self,
        outbox: Outbox,
        client: StowClient,
        *,
        retry_min_s: float,
        retry_max_s: float,
        on_delivered: Callable[[int], None] = lambda instances: None,
        on_failure: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.on_delivered = on_delivered
        self.on_failure = on_failure
        self.status = DeliveryStatus(url=client.url)
        self._failures = 0

    def backoff_s(self) -> float:
        return float(min(self.retry_max_s, self.retry_min_s * 2 ** max(0, self._failures - 1)))

    async def run(self) -> None:
        while True:
            try:
                parcels = await asyncio.to_thread(self.outbox.parcels)
                if not parcels:
                    self.outbox.wakeup.clear()
                    await self.outbox.wakeup.wait()
                    continue
                delivered = await self.deliver(parcels[0])
            except Exception:  # a disk error: said, and tried again later; the sender must not die of it
                log.exception("PACS outbox: could not handle the oldest parcel")
                delivered = False
            if not delivered:
                # A new parcel does not cut the wait short: the PACS is what we are waiting for.
                await asyncio.sleep(self.backoff_s())

    async def deliver(self, parcel: Path) -> bool:
        """Send one parcel; True when it left the outbox (delivered, refused, or discarded meanwhile)."""
        try:
            instances = await asyncio.to_thread(self.outbox.read, parcel)
        except OSError:  # discarded (DELETE /sessions/{id}) between the listing and the read
            return True
        if not instances:  # the same, caught mid-listing
            return True
        try:
            await self.client.store(instances)
        except StowError as exc:
            self.status.last_error = str(exc)
            if exc.retry:
                self._failures += 1
                if self.status.failing_since is None:
                    self.status.failing_since = time.time()
                self.on_failure("retry")
                log.warning("PACS delivery of %s failed (try %d): %s", parcel.name, self._failures, exc)
                return False
            target = await asyncio.to_thread(self.outbox.refuse, parcel, str(exc))
            self.status.refused += 1
            self.on_failure("refused")
            log.error("PACS refused %s; kept in %s: %s", parcel.name, target, exc)
        else:
            await asyncio.to_thread(shutil.rmtree, parcel, True)
            self.status.delivered += 1
            self.on_delivered(len(instances))
            log.info("delivered %s to the PACS (%d instances)", parcel.name, len(instances))
        self._failures = 0
        self.status.failing_since = None
        return True
