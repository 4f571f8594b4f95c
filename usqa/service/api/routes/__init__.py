"""HTTP and WebSocket routes: thin handlers over the plain classes in `usqa.service.api` and `usqa.service.live`."""
