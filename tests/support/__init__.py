"""Helpers the test packages share (imported as `tests.support`; pytest's pythonpath includes the root)."""
