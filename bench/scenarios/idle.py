"""Scenario 1, idle: N authenticated sockets held open on ONE server process.

Reports connects/s (N sockets from every client process, ``--connect-concurrency`` handshakes
in flight each, until the last ready frame) and the server's RSS growth per socket: VmRSS after
all N are open and quiet, minus VmRSS after a warm-up round (so imports and pools first touched
by a connection are not charged to the sockets), divided by N.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import procstat
from bench.context import Context
from bench.pool import split
from bench.stats import ratio
from bench.targets import SYNTHIA, SYNTHIA_TARGETS, open_many

WARMUP = 20
SETTLE = 3.0  # seconds for the server to finish per-connection work (tasks, buffers) before RSS


async def worker(args: dict[str, Any], ctl: Any) -> None:
    started = time.monotonic()
    opened, errors = await open_many(
        args["target"], args["plan"], args["concurrency"], on_opened=lambda: ctl.progress(1)
    )
    ctl.send(
        {
            "connected": len(opened),
            "seconds": time.monotonic() - started,
            "errors": errors[:3],
            "error_count": len(errors),
        }
    )
    await ctl.recv()  # hold until the coordinator has read the server's memory
    closed = await asyncio.gather(*(o.socket.close(timeout=10) for o in opened))
    ctl.send({"abnormal_closes": sum(1 for code in closed if code == 1006)})
    await ctl.recv()


async def _rss(pids: list[int]) -> int:
    return procstat.total_rss_kib(pids)


async def run_target(ctx: Context, target: str) -> dict[str, Any]:
    o = ctx.options
    n = o.idle_sockets
    async with ctx.deploy(target, nodes=1) as dep:
        if target in SYNTHIA_TARGETS:
            await ctx.ensure_accounts(n, dep.urls)
        pids = dep.node_pids()[0]
        warm, _ = await open_many(target, ctx.plan(target, dep.urls, WARMUP), WARMUP)
        await asyncio.gather(*(w.socket.close() for w in warm))
        await asyncio.sleep(1.0)
        rss_before = await _rss(pids)
        plan = ctx.plan(target, dep.urls, n)
        job = ctx.pool.start(
            "bench.scenarios.idle:worker",
            [
                {"target": target, "plan": part, "concurrency": o.connect_concurrency}
                for part in split(plan, ctx.pool.size)
            ],
        )
        started = time.monotonic()
        with ctx.bar(n, f"idle {dep.label}: connecting") as bar:
            job.on_progress = bar.update
            reports = await job.recv_all()
        elapsed = time.monotonic() - started
        connected = sum(r["connected"] for r in reports)
        await asyncio.sleep(SETTLE)
        rss_after = await _rss(pids)
        await ctx.census(target, 1)
        cpu = procstat.total_cpu(pids)
        job.send_all("close")
        closes = await job.recv_all()
        job.send_all("done")
        await job.finish()
    per_socket = (rss_after - rss_before) / connected if connected else None
    result = {
        "target": target,
        "label": dep.label,
        "sockets": connected,
        "connect_errors": sum(r["error_count"] for r in reports),
        "error_samples": [e for r in reports for e in r["errors"]],
        "connect_seconds": round(elapsed, 3),
        "connects_per_s": round(connected / elapsed, 1) if elapsed else None,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_socket_kib": round(per_socket, 2) if per_socket is not None else None,
        "server_cpu_s_total": round(cpu, 2),
        "abnormal_closes": sum(c["abnormal_closes"] for c in closes),
    }
    ctx.say(
        f"idle {dep.label}: {connected} sockets, {result['connects_per_s']} connects/s, "
        f"{result['rss_per_socket_kib']} KiB/socket"
    )
    return result


async def run(ctx: Context) -> dict[str, Any]:
    results = {target: await run_target(ctx, target) for target in ctx.options.targets}
    base = results.get(SYNTHIA)
    if base is not None:
        for r in results.values():
            r["rss_ratio_to_synthia"] = ratio(r["rss_per_socket_kib"], base["rss_per_socket_kib"])
            r["connects_ratio_to_synthia"] = ratio(r["connects_per_s"], base["connects_per_s"])
    return results
