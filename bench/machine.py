"""The machine a benchmark ran on, as its records name it (the runtime's own reading, which export records too)."""

from __future__ import annotations

from usqa.service.inference.capacity import cpu_model

__all__ = ["cpu_model"]
