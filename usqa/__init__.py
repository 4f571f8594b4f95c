"""usqa: real-time ultrasound quality feedback by task amenability."""

__version__ = "0.1.0"
