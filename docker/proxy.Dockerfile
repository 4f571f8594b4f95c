# The reverse proxy in front of the API replicas: Debian's HAProxy, configured by docker/proxy/haproxy.cfg
# (round robin over every `api` replica compose's DNS knows, /readyz health checks, WebSocket pass-through).
# Built on the same base as the other images, so it adds only HAProxy's own layer (apt's caches dropped).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

COPY docker/proxy/haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
# A config error fails the build, not the first start.
RUN haproxy -c -q -f /usr/local/etc/haproxy/haproxy.cfg

# The uid every usqa image runs as; the proxy listens on an unprivileged port and writes nothing.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent usqa
USER usqa

EXPOSE 8000
# /proxyz answers 503 when no API replica is ready, so the proxy is unhealthy exactly when it cannot serve.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/proxyz', timeout=2)" || exit 1
# SIGUSR1 is HAProxy's soft stop: it stops listening and lets open requests finish.
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
