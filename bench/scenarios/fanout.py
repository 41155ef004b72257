"""Scenario 2, fan-out: M subscribers of ``broadcast`` spread over the nodes, events published.

Phases, for each target in turn, on fresh servers:

1. **connect** M sockets round-robin over the nodes from every client process;
2. **steady**: ``rate`` events/s for ``seconds`` → per-delivery latency (publish → this socket)
   and per-event publish → *last* delivery (the figure the target is about);
3. **burst**: ``burst`` events back to back → deliveries/s per node, the fan-out capacity
   (time from the first publish of the burst to the node's last delivery);
4. every socket must have every event exactly once: ``lost`` and ``duplicates`` must be 0.

CPU seconds of every server process, Redis and the client processes are sampled around each
phase, so a figure can be read against what was saturated.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from bench import procstat
from bench.context import Context, Deployment
from bench.pool import split
from bench.publishers import publisher_for
from bench.recorder import Recorder
from bench.stats import cdf_points, ms_summary
from bench.targets import open_many

SETTLE = 1.0  # seconds between the last socket's ready frame and the first publish


# -- worker side -----------------------------------------------------------------------------
async def worker(args: dict[str, Any], ctl: Any) -> None:
    target, urls = args["target"], args["urls"]
    recorder = Recorder(target, args["max_events"])
    opened, errors = await open_many(target, args["plan"], args["concurrency"], on_opened=lambda: ctl.progress(1))
    for o in opened:
        recorder.attach(o.socket, urls.index(o.url))
    ctl.send({"connected": len(opened), "errors": errors[:3], "error_count": len(errors)})
    while True:
        message = await ctl.recv()
        if message["op"] == "await":  # every socket has seqs [first, last), or the deadline passed
            deadline = time.monotonic() + message["timeout"]
            while recorder.missing(message["first"], message["last"]) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            ctl.send({"missing": recorder.missing(message["first"], message["last"])})
        elif message["op"] == "collect":
            ctl.send(recorder.export())
        elif message["op"] == "close":
            await asyncio.gather(*(o.socket.close(timeout=5) for o in opened))
            return


# -- coordinator side ------------------------------------------------------------------------
def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += procstat.cpu_seconds(pid)
        except OSError:
            pass
    return total


class CpuMeter:
    """CPU seconds of server nodes, Redis and client workers over a phase, as % of one core."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start = {name: _cpu(pids) for name, pids in groups.items()}
        self._t0 = time.monotonic()

    def read(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        return {name: round(100 * (_cpu(pids) - self._start[name]) / elapsed, 1) for name, pids in self.groups.items()}


def _cpu_groups(ctx: Context, dep: Deployment) -> dict[str, list[int]]:
    groups = {f"node{i}": pids for i, pids in enumerate(dep.node_pids())}
    groups["redis"] = procstat.pids_listening(6379)
    groups["client"] = ctx.pool.pids()
    return groups


async def _publish_steady(publisher: Any, first: int, count: int, rate: float) -> dict[int, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: dict[int, float] = {}
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[first + i] = await publisher.publish(first + i)
    return sent


async def _publish_burst(publisher: Any, first: int, count: int) -> dict[int, float]:
    return {first + i: await publisher.publish(first + i) for i in range(count)}


def _phase_stats(data: dict[str, np.ndarray], sent: dict[int, float], nodes: int, burst: bool) -> dict[str, Any]:
    seqs, times, node_of = data["seqs"], data["times"], data["nodes"]
    lo, hi = min(sent), max(sent) + 1
    mask = (seqs >= lo) & (seqs < hi)
    seqs, times, node_of = seqs[mask], times[mask], node_of[mask]
    sent_at = np.zeros(hi, dtype=np.float64)
    for seq, t in sent.items():
        sent_at[seq] = t
    latency = times - sent_at[seqs]
    last = np.zeros(hi, dtype=np.float64)
    np.maximum.at(last, seqs, times)
    per_event_last = np.array([last[s] - sent_at[s] for s in sent if last[s] > 0])
    first_sent = min(sent.values())
    per_node: list[dict[str, Any]] = []
    for n in range(nodes):
        node_times = times[node_of == n]
        if node_times.size == 0:
            per_node.append({"deliveries": 0, "deliveries_per_s": 0.0})
            continue
        span = float(node_times.max() - first_sent) if burst else float(max(sent.values()) - first_sent) or 1.0
        per_node.append({"deliveries": int(node_times.size), "deliveries_per_s": round(node_times.size / max(span, 1e-6), 1)})
    return {
        "events": len(sent),
        "delivery_latency": ms_summary(latency),
        "last_delivery_latency": ms_summary(per_event_last),
        "delivery_cdf": cdf_points(latency),
        "per_node": per_node,
        "deliveries_per_s_per_node": round(float(np.mean([p["deliveries_per_s"] for p in per_node])), 1),
        "duration_s": round(float(times.max() - first_sent), 3) if times.size else None,
    }


async def run_target(ctx: Context, target: str) -> dict[str, Any]:
    o = ctx.options
    subscribers, steady, burst = o.fanout_subscribers, int(o.fanout_rate * o.fanout_seconds), o.fanout_burst
    async with ctx.deploy(target, nodes=o.fanout_nodes) as dep:
        if target == "synthia":
            await ctx.ensure_accounts(subscribers, dep.urls)
        plan = ctx.plan(target, dep.urls, subscribers)
        parts = split(list(range(len(plan))), ctx.pool.size)
        job = ctx.pool.start(
            "bench.scenarios.fanout:worker",
            [
                {
                    "target": target,
                    "urls": dep.urls,
                    "plan": [plan[i] for i in idx],
                    "concurrency": o.connect_concurrency,
                    "max_events": steady + burst,
                }
                for idx in parts
            ],
        )
        with ctx.bar(subscribers, f"fanout {dep.label}: connecting") as bar:
            job.on_progress = bar.update
            connected = await job.recv_all()
        total = sum(c["connected"] for c in connected)
        errors = [e for c in connected for e in c["errors"]]
        publisher = publisher_for(target, ctx.redis_url, dep.channel)
        await publisher.start()
        result: dict[str, Any] = {"target": target, "label": dep.label, "subscribers": total, "nodes": len(dep.urls),
                                  "connect_errors": sum(c["error_count"] for c in connected), "error_samples": errors}
        try:
            await asyncio.sleep(SETTLE)
            groups = _cpu_groups(ctx, dep)
            meter = CpuMeter(groups)
            ctx.say(f"fanout {dep.label}: {total} subscribers, steady {o.fanout_rate}/s for {o.fanout_seconds}s")
            sent_steady = await _publish_steady(publisher, 0, steady, o.fanout_rate)
            job.send_all({"op": "await", "first": 0, "last": steady, "timeout": 30})
            await job.recv_all()
            cpu_steady = meter.read()
            meter = CpuMeter(groups)
            ctx.say(f"fanout {dep.label}: burst of {burst}")
            sent_burst = await _publish_burst(publisher, steady, burst)
            job.send_all({"op": "await", "first": steady, "last": steady + burst, "timeout": 60})
            missing = sum(m["missing"] for m in await job.recv_all())
            cpu_burst = meter.read()
        finally:
            await publisher.stop()
        job.send_all({"op": "collect"})
        exports = await job.recv_all()
        job.send_all({"op": "close"})
        await job.finish()
    merged = {key: np.concatenate([e[key] for e in exports]) for key in ("seqs", "times", "nodes")}
    result["steady"] = {**_phase_stats(merged, sent_steady, len(dep.urls), burst=False), "rate": o.fanout_rate, "cpu_pct": cpu_steady}
    result["burst"] = {**_phase_stats(merged, sent_burst, len(dep.urls), burst=True), "cpu_pct": cpu_burst}
    result["expected_deliveries"] = total * (steady + burst)
    result["deliveries"] = int(merged["seqs"].size)
    result["lost"] = missing  # over the sockets that connected; refused connects are connect_errors
    result["duplicates"] = sum(e["duplicates"] for e in exports)
    result["offset_gaps"] = sum(e["offset_gaps"] for e in exports)
    return result


async def run(ctx: Context) -> dict[str, Any]:
    return {target: await run_target(ctx, target) for target in ctx.options.targets}
