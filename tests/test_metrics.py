"""Prometheus metrics, the protected /metrics scrape, and the admin:metrics snapshot loop."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from synthia_rt.broker import create_broker
from synthia_rt.observability.metrics import Metrics
from synthia_rt.observability.snapshot import CHANNEL, SnapshotLoop, quantile, read
from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings
from tests.conftest import JWT_SECRET, running_app
from tests.nodes import start_node
from tests.opshelpers import (
    admin_in_process,
    admin_on_nodes,
    bearer,
    command,
    metric_value,
    open_socket,
    register,
)

INF = math.inf


# -- percentile arithmetic ----------------------------------------------------------------------
def test_quantile_interpolates_within_the_bucket_of_the_window() -> None:
    before = [(0.1, 5.0), (0.5, 5.0), (1.0, 5.0), (INF, 5.0)]  # 5 old observations, all < 0.1 s
    after = [(0.1, 7.0), (0.5, 11.0), (1.0, 15.0), (INF, 15.0)]  # 10 new ones in this window
    # rank 5 of the window's 10 falls in (0.1, 0.5]: 2 below, 4 inside → 0.1 + 0.4 * 3/4
    assert quantile(0.5, before, after) == 0.4
    assert quantile(0.95, before, after) == 0.5 + 0.5 * (9.5 - 6) / 4


def test_quantile_is_none_without_observations_and_capped_at_last_finite_bound() -> None:
    empty = [(0.1, 3.0), (INF, 3.0)]
    assert quantile(0.5, empty, empty) is None
    overflow = [(0.1, 0.0), (1.0, 0.0), (INF, 4.0)]
    assert quantile(0.5, [(0.1, 0.0), (1.0, 0.0), (INF, 0.0)], overflow) == 1.0


# -- registries ---------------------------------------------------------------------------------
def test_two_in_process_apps_do_not_share_metrics(tmp_path: Any) -> None:
    settings = Settings(data_dir=str(tmp_path))
    first, second = Metrics(Runtime(settings)), Metrics(Runtime(settings))
    first.frames_in.labels("ping").inc(3)
    first.sockets_open.inc()
    text_first = first.render()[0].decode()
    text_second = second.render()[0].decode()
    assert metric_value(text_first, "synthia_frames_in_total", {"kind": "ping"}) == 3
    assert metric_value(text_first, "synthia_sockets_open") == 1
    assert metric_value(text_second, "synthia_frames_in_total", {"kind": "ping"}) == 0
    assert metric_value(text_second, "synthia_sockets_open") == 0
    body, content_type = second.render()
    assert (
        content_type.startswith("text/plain") and b"# TYPE synthia_analyses_total counter" in body
    )


# -- /metrics access ------------------------------------------------------------------------------
async def test_metrics_scrape_needs_admin_or_metrics_token(settings_for: Any) -> None:
    scrape_token = "scrape-" + "s" * 30
    async with running_app(settings_for("redis", metrics_token=scrape_token)) as (_, client):
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer("not-a-token"))).status_code == 401
        user = await register(client)
        refused = await client.get("/metrics", headers=bearer(user["access_token"]))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert "synthia_" not in refused.text
        wrong_scrape = await client.get("/metrics", headers=bearer(scrape_token + "x"))
        assert wrong_scrape.status_code == 401

        admin = await admin_in_process(client)
        for token in (admin["access_token"], scrape_token):
            r = await client.get("/metrics", headers=bearer(token))
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            assert "synthia_sockets_open" in r.text


# -- snapshot loop --------------------------------------------------------------------------------
async def _first_snapshot(runtime: Runtime) -> dict[str, Any]:
    broker = runtime.need_broker()
    for _ in range(200):  # a safety bound, not a timing assertion
        history = await broker.history(CHANNEL, None)
        mine = [orjson.loads(e.frame) for e in history.events]
        mine = [s for s in mine if s.get("node") == runtime.node_id]
        if mine:
            return mine[-1]
        await asyncio.sleep(0.05)
    raise AssertionError("no metrics.snapshot was published")


async def test_snapshot_published_with_backend_status(settings_for: Any, backend: str) -> None:
    async with running_app(settings_for(backend, metrics_interval=0.2)) as (app, _):
        runtime: Runtime = app.state.runtime
        snapshot = await _first_snapshot(runtime)
    assert snapshot["event"] == "metrics.snapshot"
    assert snapshot["channel"] == CHANNEL and snapshot["offset"] >= 1
    assert snapshot["sockets"] == 0 and snapshot["analyses_in_flight"] == 0
    assert snapshot["frames_in_per_s"] == 0 and snapshot["frames_out_per_s"] == 0
    assert set(snapshot["latency_ms"]) == {"p50", "p95"}
    expected = "ok" if backend == "redis" else "embedded"
    assert snapshot["backends"] == {"redis": expected, "postgres": expected}


async def test_snapshot_counts_cache_ratio_and_frame_rate(settings_for: Any) -> None:
    async with running_app(settings_for("redis", metrics_interval=0.3)) as (app, _):
        runtime: Runtime = app.state.runtime
        metrics = runtime.metrics
        assert metrics is not None
        metrics.cache_ops.labels("analysis", "hit").inc(3)
        metrics.cache_ops.labels("analysis", "miss").inc(1)
        loop = SnapshotLoop(runtime, metrics)
        before = read(metrics)
        metrics.frames_in.labels("ping").inc(40)
        metrics.analyses.labels("facial", "done").inc(3)
        metrics.analyses.labels("facial", "failed").inc(1)
        after = read(metrics)
        snap = await loop.build(before, after)
    assert snap["cache"]["analysis"] == {"hit_ratio": 0.75, "ops": 4.0}
    assert snap["frames_in_per_s"] > 0
    assert snap["error_rate"] == 0.25


async def test_snapshot_loop_survives_an_unreachable_broker(tmp_path: Any) -> None:
    # A real Redis URL where nothing listens: every publish fails, the loop must go on.
    dead = "redis://127.0.0.1:1/0"
    settings = Settings(
        redis_url=dead,
        data_dir=str(tmp_path),
        metrics_interval=0.2,
        jwt_secret_key=JWT_SECRET,
        environment="development",
    )
    runtime = Runtime(settings)
    runtime.broker = create_broker(dead, settings, runtime.node_id)
    metrics = Metrics(runtime)
    runtime.metrics = metrics
    await metrics.start()
    try:
        for _ in range(200):
            if metric_value(metrics.render()[0].decode(), "synthia_snapshot_failures_total") >= 2:
                break
            await asyncio.sleep(0.05)
        assert metric_value(metrics.render()[0].decode(), "synthia_snapshot_failures_total") >= 2
        assert metrics._task is not None and not metrics._task.done()
    finally:
        await metrics.stop()
    assert metrics._task is None


# -- counters move with real traffic ----------------------------------------------------------------
async def test_socket_traffic_moves_the_counters(node_env: dict[str, str], pg_url: str) -> None:
    node = await start_node(node_env)
    try:
        async with httpx.AsyncClient(base_url=node.http) as client:
            admin = await admin_on_nodes(client, "", pg_url)

            async def scrape() -> str:
                r = await client.get("/metrics", headers=bearer(admin["access_token"]))
                assert r.status_code == 200
                return r.text

            before = await scrape()
            user = await register(client)
            ws, _ = await open_socket(node.ws, user["access_token"])
            during = await scrape()
            for i in range(1, 4):
                assert (await command(ws, i, "ping"))["ok"] is True
            await ws.close()
            after = await scrape()
            for _ in range(100):  # the server counts the close after our close handshake
                if metric_value(
                    after, "synthia_disconnects_total", {"code": "1000"}
                ) > metric_value(before, "synthia_disconnects_total", {"code": "1000"}):
                    break
                await asyncio.sleep(0.05)
                after = await scrape()
    finally:
        await node.stop()

    def delta(name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(after, name, labels) - metric_value(before, name, labels)

    assert delta("synthia_connects_total") == 1
    assert (
        metric_value(during, "synthia_sockets_open")
        == metric_value(before, "synthia_sockets_open") + 1
    )
    assert delta("synthia_sockets_open") == 0
    assert delta("synthia_frames_in_total", {"kind": "ping"}) == 3
    assert delta("synthia_frames_out_total") >= 4  # session.ready + three replies
    assert delta("synthia_disconnects_total", {"code": "1000"}) == 1


async def test_workers_share_one_exposition_in_multiprocess_mode(
    node_env: dict[str, str], pg_url: str, tmp_path: Any
) -> None:
    """Two uvicorn workers: whichever answers /metrics reports every worker's sockets."""
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    node = await start_node(
        {**node_env, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}, extra_args=["--workers", "2"]
    )
    sockets = []
    try:
        async with httpx.AsyncClient(base_url=node.http) as client:
            admin = await admin_on_nodes(client, "", pg_url)
            user = await register(client)
            for _ in range(4):
                ws, _ready = await open_socket(node.ws, user["access_token"])
                sockets.append(ws)
            scrapes = []
            for _ in range(6):  # new connections each time: the kernel spreads them over workers
                async with httpx.AsyncClient(base_url=node.http) as fresh:
                    r = await fresh.get("/metrics", headers=bearer(admin["access_token"]))
                assert r.status_code == 200
                scrapes.append(r.text)
    finally:
        for ws in sockets:
            await ws.close()
        await node.stop()
    for text in scrapes:
        assert metric_value(text, "synthia_sockets_open") == 4
        assert metric_value(text, "synthia_connects_total") == 4
    assert any(prom_dir.iterdir())  # values really lived in the shared directory


# -- HTTP metrics by route template -----------------------------------------------------------------
async def test_http_requests_are_counted_by_route_template_never_raw_path(
    settings_for: Any,
) -> None:
    async with running_app(settings_for("memory")) as (app, client):
        user = await register(client)
        for analysis_id in (
            "0190a1b2-0000-7000-8000-000000000001",
            "0190a1b2-0000-7000-8000-000000000002",
        ):
            r = await client.get(
                f"/api/v1/analyses/{analysis_id}", headers=bearer(user["access_token"])
            )
            assert r.status_code == 404
        for junk in ("/wp-admin/one", "/etc/passwd", "/x/y/z"):
            assert (await client.get(junk)).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/static/app.js")).status_code == 200
        runtime: Runtime = app.state.runtime
        assert runtime.metrics is not None
        text = runtime.metrics.render()[0].decode()
    name = "synthia_http_requests_total"
    assert (
        metric_value(
            text,
            name,
            {"route": "/api/v1/analyses/{analysis_id}", "method": "GET", "status": "404"},
        )
        == 2
    )
    assert metric_value(text, name, {"route": "unmatched", "status": "404"}) == 3
    assert metric_value(text, name, {"route": "/healthz", "status": "200"}) == 1
    assert metric_value(text, name, {"route": "/static/{path}", "status": "200"}) == 1
    assert metric_value(text, name, {"route": "/api/v1/auth/register", "method": "POST"}) == 1
    assert (
        metric_value(
            text,
            "synthia_http_request_duration_seconds_count",
            {"route": "/healthz", "method": "GET"},
        )
        == 1
    )
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }
    assert not any("0190a1b2" in route or "passwd" in route for route in routes), routes
