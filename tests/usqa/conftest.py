"""The service suite's real-server fixtures, for the client's tests."""

from ..service.conftest import fixture_server, registry_root, served_model, shared_server, source_registry

__all__ = ["fixture_server", "registry_root", "served_model", "shared_server", "source_registry"]
