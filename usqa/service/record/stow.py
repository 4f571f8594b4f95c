"""DICOMweb STOW-RS (PS3.18 section 10.5): store DICOM instances in a PACS over HTTP.

One POST of `multipart/related; type="application/dicom"` to `<root>/studies`. The answer sorts into three:
delivered (2xx with no failed instance); refused, when the PACS says the objects themselves are wrong (400,
409, 413, 415, 422, or an instance it could not process), since sending them again would only repeat it;
and worth retrying, everything else: no connection, a timeout, 5xx, an instance failed for want of
resources, and also 401, 403 and 404, which say the URL or the credentials are wrong, something an operator
fixes while the objects wait.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import httpx

DICOM_JSON = "application/dicom+json"
REFUSED_STATUSES = frozenset({400, 409, 413, 415, 422})
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
# PS3.18 table I.2-1: 0xA7xx "out of resources" is transient; the rest (0xA9xx, 0xC000...) is not.
OUT_OF_RESOURCES = range(0xA700, 0xA800)
MSG_UNREACHABLE = "PACS unreachable at {url}: {error}"
MSG_STATUS = "PACS answered {status} at {url}: {body}"
MSG_FAILED_INSTANCES = "PACS failed {count} instance(s) (reasons {reasons}) at {url}"
SHOWN_BODY_CHARS = 200


class StowError(Exception):
    """The PACS did not store the instances; `retry` says whether sending them again may help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def multipart_body(instances: Sequence[bytes]) -> tuple[bytes, str]:
    """The request body and its content type for these Part 10 files."""
    boundary = f"usqa-{secrets.token_hex(12)}"
    parts = [
        b"".join((f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), data, b"\r\n"))
        for data in instances
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


class StowClient:
    """Stores instances at one DICOMweb root (e.g. http://orthanc:8042/dicom-web)."""

    def __init__(self, root: str, *, timeout_s: float) -> None:
        # Credentials in the URL become basic auth, and never appear in `url` (/readyz shows it).
        parsed = httpx.URL(root.rstrip("/") + "/studies")
        auth = (parsed.username, parsed.password) if parsed.username else None
        self.url = str(parsed.copy_with(username=None, password=None))
        self._client = httpx.AsyncClient(timeout=timeout_s, auth=auth)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def store(self, instances: Sequence[bytes]) -> None:
        body, content_type = multipart_body(instances)
        try:
            response = await self._client.post(
                self.url, content=body, headers={"Content-Type": content_type, "Accept": DICOM_JSON}
            )
        except httpx.HTTPError as exc:
            raise StowError(
                MSG_UNREACHABLE.format(url=self.url, error=exc or type(exc).__name__), retry=True
            ) from exc
        status = response.status_code
        if status >= 300:
            text = response.text[:SHOWN_BODY_CHARS]
            retry = status not in REFUSED_STATUSES
            raise StowError(MSG_STATUS.format(status=status, url=self.url, body=text), retry=retry)
        reasons = failure_reasons(response)
        if reasons:
            retry = all(r in OUT_OF_RESOURCES for r in reasons)
            shown = ", ".join(f"0x{r:04X}" for r in reasons)
            raise StowError(
                MSG_FAILED_INSTANCES.format(count=len(reasons), reasons=shown, url=self.url), retry=retry
            )


def failure_reasons(response: httpx.Response) -> list[int]:
    """The failure reason of each instance the STOW answer lists as failed (none when it lists none)."""
    try:
        answer: Any = response.json()
    except ValueError:
        return []  # a PACS that answers 200 without a DICOM JSON body stored what it was sent
    failed = answer.get(FAILED_SOP_SEQUENCE, {}) if isinstance(answer, dict) else {}
    reasons = []
    for item in failed.get("Value", []) if isinstance(failed, dict) else []:
        values = item.get(FAILURE_REASON, {}).get("Value", [0]) if isinstance(item, dict) else [0]
        reasons.append(int(values[0]) if values and isinstance(values[0], int) else 0)
    return reasons
