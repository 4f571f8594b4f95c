"""The HTTP and WebSocket API: `create_app(settings)` builds it; `usqa serve` runs it under uvicorn."""

from usqa.service.api.app import create_app

__all__ = ["create_app"]
