"""The one version string: the package metadata (pyproject.toml) and `usqa --version` both read it."""

__version__ = "0.1.0"
