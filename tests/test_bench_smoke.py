"""The load generator cannot rot: a tiny ``python -m bench --smoke`` against nodes this test starts.

Every scenario and every peer runs with a handful of sockets for a few seconds; the test checks
that results were written and that nothing was lost — never how fast anything was (performance
figures belong to the full run and docs/performance.md).  The ``synthia-cluster`` target starts
its own nodes and Redis Cluster (not with ``--node``): a second, self-contained smoke run covers
it beside ``synthia``, up to the report's cluster-vs-one-Redis table.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.nodes import free_port, start_node

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
async def test_bench_smoke_run_produces_results_without_loss(
    node_env: dict[str, str], tmp_path: Path
) -> None:
    model_port = free_port()
    env = {
        **node_env,
        "ANALYZER": "gemini",
        "GEMINI_API_KEY": "bench-fake-key",
        "GEMINI_BASE_URL": f"http://127.0.0.1:{model_port}",
        "ARGON2_MEMORY_KIB": "1024",  # registering bench users is setup, not what is tested
        "ARGON2_TIME_COST": "1",
        "FREE_ANALYSES_PER_MONTH": "1000000",  # bench users measure load, not the plan's quota
    }
    a = await start_node(env)
    try:
        b = await start_node(env)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench",
                "--smoke",
                "--quiet",
                "--name",
                "smoke",
                "--node",
                a.http,
                "--node",
                b.http,
                "--namespace",
                node_env["REDIS_NAMESPACE"],
                "--model-port",
                str(model_port),
                "--results-dir",
                str(tmp_path),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
            assert process.returncode == 0, output.decode(errors="replace")[-4000:]
        finally:
            await b.stop()
    finally:
        await a.stop()

    results = json.loads((tmp_path / "raw" / "smoke.json").read_text())
    scenarios = results["scenarios"]
    summary = json.loads(
        (tmp_path / "smoke.json").read_text()
    )  # what a run commits: no raw samples
    assert set(summary["scenarios"]) == set(scenarios)
    assert summary["scenarios"]["fanout"]["synthia"]["load"][
        "delivery_cdf"
    ]  # the plots' series stay
    assert "delivery_cdf" not in summary["scenarios"]["fanout"]["synthia"]["burst"]
    assert "error_samples" not in summary["scenarios"]["idle"]["synthia"]
    assert set(scenarios) == {"idle", "fanout", "upload", "analysis", "churn", "storm"}
    # synthia-cluster is a default target, but it runs its own nodes: not with --node.
    assert "synthia-cluster" in results["skipped_targets"], results.get("skipped_targets")
    assert "synthia-cluster" not in scenarios["fanout"] and "redis_cluster" not in results
    # The storm seeds users into the bench's own database and kills a node: not on --node.
    assert "skipped" in scenarios["storm"] and "handshakes" not in scenarios["storm"], scenarios[
        "storm"
    ]

    for target in ("synthia", "socketio", "broadcaster", "websockets"):
        idle = scenarios["idle"][target]
        assert idle["sockets"] == 40 and idle["connect_errors"] == 0, idle
        assert idle["rss_after_kib"] > 0
        fan = scenarios["fanout"][target]
        assert fan["subscribers"] == 30 and fan["connect_errors"] == 0, fan
        assert fan["deliveries"] == fan["expected_deliveries"] > 0, fan
        assert fan["lost"] == 0 and fan["duplicates"] == 0, fan
    assert scenarios["fanout"]["synthia"]["offset_gaps"] == 0
    assert scenarios["fanout"]["synthia"]["nodes"] == 2

    upload = scenarios["upload"]
    assert upload["single"] and upload["concurrent"], upload
    assert set(upload["analysis_outcomes"]) == {"result"}, (
        upload
    )  # every uploaded image was analysed

    analysis = scenarios["analysis"]
    assert analysis["fresh"] == 2 and analysis["failed"] == 0, analysis
    assert analysis["cached"]["count"] == 3, analysis

    churn = scenarios["churn"]
    assert churn["reconnects"] > 0 and churn["failures"] == 0, churn
    assert churn["missed"] == 0, churn


async def _bench(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.mark.timeout(120)
async def test_bench_smoke_cluster_target_runs_beside_single_redis(tmp_path: Path) -> None:
    database = f"synthia_bench_smoke_{secrets.token_hex(3)}"  # never the bench's default one
    try:
        await _bench(
            "--smoke",
            "--quiet",
            "--name",
            "smoke-cluster",
            "--scenarios",
            "idle,fanout",
            "--targets",
            "synthia,synthia-cluster",
            "--database",
            database,
            "--pg-admin",
            PG_ADMIN_URL,
            "--redis",
            REDIS_URL,
            "--results-dir",
            str(tmp_path),
            "--report",
            "--docs-dir",
            str(tmp_path / "docs"),
        )
    finally:
        await _drop_database(database)

    results = json.loads((tmp_path / "raw" / "smoke-cluster.json").read_text())
    scenarios = results["scenarios"]
    assert results["redis_cluster"]["primaries"] == 3
    assert results["redis_cluster"]["replicas_per_primary"] == 1
    assert scenarios["idle"]["synthia-cluster"]["sockets"] == 40
    for target in ("synthia", "synthia-cluster"):
        fan = scenarios["fanout"][target]
        assert fan["subscribers"] == 30 and fan["connect_errors"] == 0, fan
        assert fan["deliveries"] == fan["expected_deliveries"] > 0, fan
        assert fan["lost"] == fan["duplicates"] == fan["offset_gaps"] == 0, fan
        assert fan["nodes"] == 2
    ratios = scenarios["fanout"]["synthia-cluster"]["ratio_to_single_redis"]
    assert ratios["deliveries/s per node (burst)"]["ratio"] > 0, ratios
    assert ratios["p99 delivery ms (steady)"]["ratio"] > 0, ratios
    assert {lg["target"] for lg in results["server_logs"]} == {"synthia", "synthia-cluster"}

    summary = json.loads((tmp_path / "smoke-cluster.json").read_text())
    assert summary["scenarios"]["fanout"]["synthia-cluster"]["ratio_to_single_redis"] == ratios
    doc = (tmp_path / "docs" / "performance.md").read_text()
    assert "synthia_rt on Redis Cluster (3+3) vs one Redis" in doc
    assert "fanout Redis Cluster ÷ one Redis: deliveries/s per node (burst)" in doc

    # The run stopped its cluster: nothing listens on its ports any more.
    for address in results["redis_cluster"]["url"].removeprefix("redis+cluster://").split(","):
        host, port = address.rsplit(":", 1)
        with socket.socket() as probe, pytest.raises(OSError):
            probe.connect((host, int(port)))
