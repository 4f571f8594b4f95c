"""Static checks of the scale-out and monitoring files: the proxy in front of the API replicas, Prometheus
and Grafana."""

from __future__ import annotations

import json

import yaml

from tests.support.containers import (
    DASHBOARD_METRICS,
    GRAFANA_PROVISIONING,
    METRIC_NAME,
    PROMETHEUS_CONFIG,
    PROXY_DOCKERFILE,
    REPO_ROOT,
    arguments,
    container_ports,
    datasource_uids,
    dockerfile_of,
    exported_series,
    expressions,
    grafana_dashboards,
    haproxy_sections,
    host_path,
    prometheus_rule_files,
    services,
)


def test_only_the_proxy_publishes_the_api_port_so_api_replicas_scale() -> None:
    proxy, api = services()["proxy"], services()["api"]
    assert dockerfile_of(proxy) == PROXY_DOCKERFILE
    assert [str(port).rsplit(":", 1)[-1] for port in proxy["ports"]] == ["8000"]
    # A fixed host port on a service stops `--scale` at one replica, and a container name stops it too.
    for name in ("api", "worker"):
        assert "ports" not in services()[name] and "container_name" not in services()[name], name
    assert "8000" in [str(port) for port in api["expose"]]


def test_proxy_image_copies_its_config_checks_it_and_probes_its_replicas() -> None:
    copies = arguments(PROXY_DOCKERFILE, "COPY")
    assert any(copy.split()[0] == "docker/proxy/haproxy.cfg" for copy in copies), copies
    target = next(copy.split()[-1] for copy in copies if copy.split()[0] == "docker/proxy/haproxy.cfg")
    assert any("haproxy -c" in run and target in run for run in arguments(PROXY_DOCKERFILE, "RUN"))
    assert target in arguments(PROXY_DOCKERFILE, "CMD")[0]
    assert "/proxyz" in arguments(PROXY_DOCKERFILE, "HEALTHCHECK")[0]
    assert "haproxy" in next(run for run in arguments(PROXY_DOCKERFILE, "RUN") if "apt-get install" in run)


def test_haproxy_balances_ready_replicas_found_by_name_and_passes_websockets() -> None:
    sections = haproxy_sections()
    frontend = sections["frontend http"]
    assert "bind :8000" in frontend and "monitor-uri /proxyz" in frontend
    assert "monitor fail if { nbsrv(api) lt 1 }" in frontend
    backend = sections["backend api"]
    assert "balance roundrobin" in backend
    assert "option httpchk GET /readyz" in backend and "http-check expect status 200" in backend
    defaults = next(line for line in backend if line.startswith("default-server"))
    # Active checks, passive marking down on connection errors, and DNS discovery of every replica.
    for word in ("check", "observe layer4", "on-error mark-down", "resolvers compose", "init-addr none"):
        assert word in defaults, word
    templates = {line.split()[3] for line in backend if line.startswith("server-template")}
    assert templates == {"api:8000", "api-gpu:8000"}
    for host in templates:
        assert host.split(":")[0] in services() and 8000 in container_ports(host.split(":")[0])
    assert "nameserver docker 127.0.0.11:53" in sections["resolvers compose"]
    # WebSocket (/ws/scan) is an upgraded connection: HAProxy's tunnel timeout governs it, not client/server.
    tunnel = next(line for line in sections["defaults"] if line.startswith("timeout tunnel"))
    assert tunnel.split()[-1] in {"1h", "3600s"}
    assert "option redispatch 1" in sections["defaults"]


# -- monitoring -------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_api_replica_on_an_existing_port_and_route() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert host_path(services()["prometheus"], "/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    ops_routes = (REPO_ROOT / "usqa" / "service" / "api" / "routes" / "ops.py").read_text()
    targets: list[tuple[str, int]] = []
    for job in config["scrape_configs"]:
        assert f'@router.get("{job.get("metrics_path", "/metrics")}"' in ops_routes
        for static in job.get("static_configs", []):
            targets += [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in static["targets"]]
        # DNS discovery: one target per replica of each named service (`--scale api=N`), not one of them.
        for dns in job.get("dns_sd_configs", []):
            assert dns["type"] == "A"
            targets += [(name, int(dns["port"])) for name in dns["names"]]
    assert ("api", 8000) in targets
    for host, port in targets:
        assert host in services(), f"scrape target {host}: no compose service"
        assert port in container_ports(host), f"scrape target {host}:{port}: {host} does not listen there"


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    uids = set()
    for datasource_file in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.yml")):
        for datasource in yaml.safe_load(datasource_file.read_text())["datasources"]:
            host, port = datasource["url"].removeprefix("http://").split(":")
            assert host in services() and int(port) in container_ports(host), datasource["url"]
            uids.add(datasource["uid"])
    dashboards = grafana_dashboards()
    assert dashboards, "no dashboard JSON is provisioned"
    for dashboard in dashboards:
        used = set(datasource_uids(json.loads(dashboard.read_text())))
        assert used <= uids, f"{dashboard.name} names datasources {used - uids} that are not provisioned"


def test_dashboards_and_alert_rules_use_only_exported_metrics() -> None:
    exported = exported_series()
    dashboard_metrics: set[str] = set()
    for dashboard in grafana_dashboards():
        dashboard_metrics |= {
            m for expr in expressions(json.loads(dashboard.read_text())) for m in METRIC_NAME.findall(expr)
        }
    rule_metrics = {
        m
        for path in prometheus_rule_files()
        for expr in expressions(yaml.safe_load(path.read_text()))
        for m in METRIC_NAME.findall(expr)
    }
    assert dashboard_metrics >= DASHBOARD_METRICS, f"dashboard lacks {DASHBOARD_METRICS - dashboard_metrics}"
    assert dashboard_metrics | rule_metrics <= exported, (
        f"not exported: {(dashboard_metrics | rule_metrics) - exported}"
    )
