"""usqa: real-time ultrasound quality feedback by task amenability."""

from contracts.version import __version__

__all__ = ["__version__"]
