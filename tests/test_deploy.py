"""compose.yaml and deploy/: the wiring between services, and that the dashboard and alert
queries name metrics a running node really exports."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_support import ROOT
from tests.nodes import start_node
from tests.opshelpers import bearer, open_socket, register

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself, not scraped from a node


def _mounts(service: str) -> dict[str, Path]:
    """Container path → repository path of each bind mount of ``service``."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def _queries() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/synthia-rt.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    return exprs


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(synthia_[a-z0-9_]+)\b", expr)) | {
        name for name in PROMETHEUS_OWN if re.search(rf"\b{name}\{{", expr)
    }


def test_services_start_in_order_from_the_built_image() -> None:
    assert {"postgres", "redis", "migrate", "node", "balancer", "prometheus", "grafana"} <= set(
        SERVICES
    )
    for name in ("migrate", "node"):
        service = SERVICES[name]
        assert service["build"]["dockerfile"] == "Dockerfile" and (ROOT / "Dockerfile").is_file()
        words = " ".join(map(str, service.get("command", []))) + str(service.get("entrypoint", ""))
        assert "pip" not in words and "install" not in words  # nothing installed at start
    assert SERVICES["migrate"]["command"] == ["migrate"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    node = SERVICES["node"]
    assert node["command"][0] == "serve"
    assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert node["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(node["healthcheck"]["test"])
    for name in ("postgres", "redis", "node", "balancer", "prometheus", "grafana"):
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "ports" not in node  # reached only through the balancer


def test_balancer_routes_http_and_websockets_to_every_node() -> None:
    (config_path,) = _mounts("balancer").values()
    config = config_path.read_text()
    published = SERVICES["balancer"]["ports"][0].rsplit(":", 1)[1]
    assert re.search(rf"^\s*bind :{published}\s*$", config, re.M)
    assert re.search(r"acl (\w+) path /ws", config) and "hdr(upgrade) -i websocket" in config
    ws_backend = re.search(r"use_backend (\w+) if is_websocket", config)
    assert ws_backend is not None
    section = config.split(f"backend {ws_backend.group(1)}", 1)[1]
    assert "timeout tunnel" in config  # sockets outlive HTTP timeouts
    assert re.search(r"server-template \w+ \d+ node:8000 check", section)
    assert "GET /readyz" in section
    assert "node" in SERVICES and "8000" in SERVICES["node"]["expose"]


def test_prometheus_scrapes_every_node_with_the_metrics_token() -> None:
    mounts = _mounts("prometheus")
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    for rule_file in config["rule_files"]:
        assert rule_file in mounts and mounts[rule_file].is_file()
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["node"] and sd["port"] == 8000
    token_file = job["authorization"]["credentials_file"]
    secret = token_file.removeprefix("/run/secrets/")
    assert secret in SERVICES["prometheus"]["secrets"]
    assert COMPOSE["secrets"][secret]["environment"] == "METRICS_TOKEN"
    node_env = SERVICES["node"]["environment"]
    assert "METRICS_TOKEN" in node_env
    alerts = yaml.safe_load(mounts["/etc/prometheus/alerts.yml"].read_text())
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    assert {
        "SynthiaNodeDown",
        "SynthiaRedisDown",
        "SynthiaHttpErrorRate",
        "SynthiaModelFailures",
        "SynthiaSlowConsumers",
    } <= names


def test_grafana_provisioning_paths_exist_and_point_at_prometheus() -> None:
    mounts = _mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in SERVICES
    (provider,) = yaml.safe_load((provisioning / "dashboards/synthia.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "synthia-rt.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


async def test_every_queried_metric_is_exported_by_a_running_node(node_env: dict[str, str]) -> None:
    token = "scrape-" + "t" * 40
    node = await start_node({**node_env, "METRICS_TOKEN": token, "METRICS_INTERVAL": "0.2"})
    try:
        async with httpx.AsyncClient(base_url=node.http, timeout=10) as client:
            user = await register(client)
            ws, _ = await open_socket(node.ws, user["access_token"])
            await ws.close()
            await client.get("/api/v1/no-such-thing")
            text = ""
            for _ in range(100):  # until the backend probe has run once (a bound, not a timing)
                r = await client.get("/metrics", headers=bearer(token))
                assert r.status_code == 200
                text = r.text
                if "synthia_backend_up{" in text and "synthia_disconnects_total{" in text:
                    break
                await asyncio.sleep(0.1)
    finally:
        await node.stop()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {sample.name for family in families.values() for sample in family.samples}
    used = set().union(*map(_metric_names, _queries())) - PROMETHEUS_OWN
    assert used, "no metric found in the queries"
    for name in sorted(used):
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in families, f"{name} is queried but not exported"
        if families[base].samples:  # a labelled family has samples once it was used
            assert name in samples, (
                f"{name} is queried but the node exports {sorted(s.name for s in families[base].samples)[:5]}"
            )
    for exercised in (
        "synthia_http_requests_total",
        "synthia_http_request_duration_seconds_bucket",
        "synthia_connects_total",
        "synthia_disconnects_total",
        "synthia_backend_up",
        "synthia_sockets_open",
    ):
        assert exercised in samples and exercised in used
