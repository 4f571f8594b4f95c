"""usqa: real-time ultrasound quality feedback by task amenability."""

from usqa.contracts.version import __version__

__all__ = ["__version__"]
