"""One bench run: set up (database, fake model, client workers), run scenarios, save, summarise."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shlex
import subprocess
import time
from contextlib import AsyncExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import deploy
from bench.context import Context
from bench.limits import raise_nofile
from bench.pool import Pool
from bench.summary import dumps, summarize, summary_table
from bench.targets import SYNTHIA, SYNTHIA_CLUSTER, SYNTHIA_TARGETS

# Settings of the bench's own synthia_rt nodes beyond the defaults, and why (see
# docs/performance.md). Nothing here touches a measured path.
BENCH_SERVER_ENV = {
    "ARGON2_MEMORY_KIB": "1024",  # registration of thousands of bench users is setup, not measured
    "ARGON2_TIME_COST": "1",
}
PEER_SCENARIOS = {"idle", "fanout"}
CLUSTER_SCENARIOS = {"idle", "fanout"}  # where synthia-cluster runs; the others never see it


def _settings(options: argparse.Namespace) -> dict[str, Any]:
    keep = {k: v for k, v in vars(options).items() if k not in {"results_dir", "docs_dir"}}
    return dict(json.loads(json.dumps(keep, default=str)))


async def run(options: argparse.Namespace, argv: list[str]) -> int:
    nofile = raise_nofile()
    ctx = Context(options, Pool(options.procs))
    results: dict[str, Any] = {
        "name": options.name,
        "command": "python -m bench " + shlex.join(argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**describe_machine(options.redis), "client_nofile": nofile},
        "settings": _settings(options),
        "server_env": {},
        "scenarios": {},
    }
    raw_dir = (
        options.results_dir / "raw"
    )  # git-ignored; the summary beside it is what gets committed
    raw_dir.mkdir(parents=True, exist_ok=True)
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"{options.name}.json"
    started = time.monotonic()
    requested = list(options.targets)
    if SYNTHIA_CLUSTER in requested and options.node:
        requested.remove(SYNTHIA_CLUSTER)
        results["skipped_targets"] = {
            SYNTHIA_CLUSTER: "starts its own synthia_rt nodes on a private cluster: not with --node"
        }
        ctx.say(f"{SYNTHIA_CLUSTER} skipped: not with --node")
    if not CLUSTER_SCENARIOS & set(options.scenarios) and SYNTHIA_CLUSTER in requested:
        requested.remove(SYNTHIA_CLUSTER)
    async with AsyncExitStack() as stack:
        stack.callback(ctx.pool.close)
        wants_model = SYNTHIA in options.targets and {"upload", "analysis"} & set(options.scenarios)
        if wants_model and (not options.node or options.model_port):
            fake = await deploy.start_fake_model(
                options.model_latency_ms / 1000, options.model_port or 0
            )
            stack.push_async_callback(fake.stop)
            ctx.gemini_url = fake.base_url
            ctx.fake_model = fake
        if SYNTHIA_TARGETS & set(requested) and not options.node:
            database = await deploy.fresh_database(options.pg_admin, options.database)
            extra = dict(BENCH_SERVER_ENV)
            for item in options.server_env:
                key, _, value = item.partition("=")
                extra[key] = value
            ctx.synthia = deploy.SynthiaConfig(
                database, options.redis, gemini_url=ctx.gemini_url, extra=extra
            )
            stack.push_async_callback(deploy.clear_namespace, options.redis, ctx.synthia.namespace)
            results["server_env"] = {
                k: v
                for k, v in ctx.synthia.env().items()
                if k not in {"JWT_SECRET_KEY", "DATABASE_URL"}
            }
        if SYNTHIA_CLUSTER in requested:
            ctx.say("starting a Redis Cluster (3 primaries + 3 replicas) for synthia-cluster")
            cluster = await deploy.start_redis_cluster(ctx.log_dir / "redis-cluster")
            stack.callback(cluster.stop)  # at the end of the run, even a failed one
            ctx.redis_cluster = cluster
            results["redis_cluster"] = {
                "url": cluster.url,
                "primaries": cluster.primaries,
                "replicas_per_primary": cluster.replicas,
                "node_timeout_ms": cluster.node_timeout_ms,
            }
        for name in options.scenarios:
            options.targets = [
                t for t in requested if t != SYNTHIA_CLUSTER or name in CLUSTER_SCENARIOS
            ]
            scenario = importlib.import_module(f"bench.scenarios.{name}")
            if name not in PEER_SCENARIOS and SYNTHIA not in options.targets:
                continue
            ctx.say(f"== {name}")
            ctx.scenario = name
            t0 = time.monotonic()
            results["scenarios"][name] = await scenario.run(ctx)
            results["scenarios"][name]["_seconds"] = round(time.monotonic() - t0, 1)
            results["server_logs"] = ctx.server_logs
            if ctx.profiles:
                results["profiles"] = ctx.profiles
            path.write_text(
                json.dumps(results, indent=1, default=str)
            )  # partial results survive a crash
    options.targets = requested
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["server_logs"] = ctx.server_logs
    if ctx.profiles:
        results["profiles"] = ctx.profiles
    path.write_text(json.dumps(results, indent=1, default=str))
    summary = summarize(results)
    summary_path = options.results_dir / f"{options.name}.json"
    summary_path.write_text(dumps(summary))
    print(summary_table(summary))
    print(f"raw results: {path}\nsummary: {summary_path}")
    if options.report:
        from bench.report import write_report

        doc = write_report(summary, options.docs_dir)
        print(f"report: {doc}")
    return 0


# What the numbers were measured on: CPU, RAM, kernel, versions, git commit.

PACKAGES = (
    "uvicorn",
    "starlette",
    "websockets",
    "uvloop",
    "httptools",
    "redis",
    "asyncpg",
    "orjson",
    "python-socketio",
    "python-engineio",
    "broadcaster",
    "synthia-rt",
)


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    for line in _run("lscpu").splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def describe_machine(redis_url: str) -> dict[str, Any]:
    redis_version = ""
    for line in _run("redis-cli", "-u", redis_url, "info", "server").splitlines():
        if line.startswith("redis_version:"):
            redis_version = line.split(":", 1)[1].strip()
    repo = Path(__file__).resolve().parent.parent
    return {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
        "postgres": _run("psql", "--version").replace("psql (PostgreSQL) ", ""),
        "packages": {p: _version(p) for p in PACKAGES},
        "git_commit": _run("git", "-C", str(repo), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(
            _run("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")
        ),
    }
