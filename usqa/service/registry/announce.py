"""Registry announcements over Redis pub/sub, so running services swap without polling delay."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

REGISTRY_CHANNEL = "usqa:registry"


@dataclass(frozen=True)
class Announcement:
    event: str  # "published", "promoted", "rolled_back"
    name: str
    version: int
    alias: str | None
    at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> Announcement:
        raw = json.loads(data)
        return cls(
            event=str(raw["event"]),
            name=str(raw["name"]),
            version=int(raw["version"]),
            alias=None if raw.get("alias") is None else str(raw["alias"]),
            at=float(raw["at"]),
        )


class RedisAnnouncer:
    """Publishes one JSON message per registry change on `usqa:registry`."""

    def __init__(self, redis_url: str, channel: str = REGISTRY_CHANNEL, timeout_s: float = 2.0) -> None:
        import redis  # the `service` extra; imported here so the registry itself needs no Redis

        self.channel = channel
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def announce(self, event: str, name: str, version: int, alias: str | None) -> None:
        message = Announcement(event=event, name=name, version=version, alias=alias, at=time.time())
        self._client.publish(self.channel, message.to_json())

    def close(self) -> None:
        self._client.close()


def announcer_from_url(redis_url: str | None) -> RedisAnnouncer | None:
    return RedisAnnouncer(redis_url) if redis_url else None
