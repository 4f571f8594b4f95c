"""HTTP and WebSocket routes: thin handlers over the plain classes in `service.api` and `service.live`."""
