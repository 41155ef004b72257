"""One bench run: set up (database, fake model, client workers), run scenarios, save, summarise."""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import time
from contextlib import AsyncExitStack
from typing import Any

from bench import deploy, machine
from bench.context import Context
from bench.limits import raise_nofile
from bench.pool import Pool
from bench.summary import dumps, summarize, summary_table
from bench.targets import SYNTHIA

# Settings of the bench's own synthia_rt nodes beyond the defaults, and why (see
# docs/performance.md). Nothing here touches a measured path.
BENCH_SERVER_ENV = {
    "ARGON2_MEMORY_KIB": "1024",  # registration of thousands of bench users is setup, not measured
    "ARGON2_TIME_COST": "1",
}
PEER_SCENARIOS = {"idle", "fanout"}


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
        "machine": {**machine.describe(options.redis), "client_nofile": nofile},
        "settings": _settings(options),
        "server_env": {},
        "scenarios": {},
    }
    raw_dir = options.results_dir / "raw"  # git-ignored; the summary beside it is what gets committed
    raw_dir.mkdir(parents=True, exist_ok=True)
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    path = raw_dir / f"{options.name}.json"
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        stack.callback(ctx.pool.close)
        wants_model = SYNTHIA in options.targets and {"upload", "analysis"} & set(options.scenarios)
        if wants_model and (not options.node or options.model_port):
            from bench.fake_model import start_fake_model

            fake = await start_fake_model(options.model_latency_ms / 1000, options.model_port or 0)
            stack.push_async_callback(fake.stop)
            ctx.gemini_url = fake.base_url
            ctx.fake_model = fake
        if SYNTHIA in options.targets and not options.node:
            database = await deploy.fresh_database(options.pg_admin, options.database)
            extra = dict(BENCH_SERVER_ENV)
            for item in options.server_env:
                key, _, value = item.partition("=")
                extra[key] = value
            ctx.synthia = deploy.SynthiaConfig(database, options.redis, gemini_url=ctx.gemini_url, extra=extra)
            stack.push_async_callback(deploy.clear_namespace, options.redis, ctx.synthia.namespace)
            results["server_env"] = {k: v for k, v in ctx.synthia.env().items() if k not in {"JWT_SECRET_KEY", "DATABASE_URL"}}
        for name in options.scenarios:
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
            path.write_text(json.dumps(results, indent=1, default=str))  # partial results survive a crash
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
