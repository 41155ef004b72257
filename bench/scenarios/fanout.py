"""Scenario 2, fan-out: M subscribers of ``broadcast`` spread over the nodes, events published.

Phases, for each target in turn, on fresh servers:

1. **connect** M sockets round-robin over the nodes from every client process;
2. **steady**: ``--fanout-rate`` events/s (default 2/s: announcements, the machine far from
   saturation) → per-delivery latency (publish → this socket) and per-event publish → *last*
   delivery: how long one event takes to reach everyone (the figure the target is about);
3. **load**: ``--fanout-load-rate`` events/s (default 10/s: 50,000 deliveries/s in all, close to
   what 2 shared cores carry) → the same latencies under load;
4. **burst**: ``burst`` events back to back → deliveries/s per node, the fan-out capacity
   (time from the first publish of the burst to the node's last delivery);
5. every socket must have every event exactly once: ``lost`` and ``duplicates`` must be 0.

CPU seconds of every server process, Redis and the client processes are sampled around each
phase, so a figure can be read against what was saturated.

``synthia-cluster`` runs the same synthia_rt nodes on a private 3+3 Redis Cluster (its six
processes are the ``redis`` CPU group); with ``synthia`` in the same run, its result carries
``ratio_to_single_redis``: each headline figure on the cluster ÷ the same figure on one Redis.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import numpy as np

from bench import procstat
from bench.context import Context, Deployment
from bench.pool import split
from bench.publishers import publisher_for
from bench.recorder import Recorder
from bench.stats import cdf_points, ms_summary, ratio
from bench.targets import SYNTHIA, SYNTHIA_CLUSTER, SYNTHIA_TARGETS, open_many

SETTLE = 1.0  # seconds between the last socket's ready frame and the first publish


# -- worker side -----------------------------------------------------------------------------
async def worker(args: dict[str, Any], ctl: Any) -> None:
    target, urls = args["target"], args["urls"]
    recorder = Recorder(target, args["max_events"])
    opened, errors = await open_many(
        target, args["plan"], args["concurrency"], on_opened=lambda: ctl.progress(1)
    )
    for o in opened:
        recorder.attach(o.socket, urls.index(o.url))
    ctl.send({"connected": len(opened), "errors": errors[:3], "error_count": len(errors)})
    watch = LagWatch()
    watch.start()
    while True:
        message = await ctl.recv()
        if message["op"] == "await":  # every socket has seqs [first, last), or the deadline passed
            deadline = time.monotonic() + message["timeout"]
            # Polling on purpose: deliveries are recorded synchronously in data_received.
            while (  # noqa: ASYNC110
                recorder.missing(message["first"], message["last"]) and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
            ctl.send({"missing": recorder.missing(message["first"], message["last"])})
        elif message["op"] == "collect":
            ctl.send({**recorder.export(), "client": watch.stop()})
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
        return {
            name: round(100 * (_cpu(pids) - self._start[name]) / elapsed, 1)
            for name, pids in self.groups.items()
        }


def _cpu_groups(ctx: Context, dep: Deployment) -> dict[str, list[int]]:
    groups = {f"node{i}": pids for i, pids in enumerate(dep.node_pids())}
    groups["redis"] = dep.redis_pids or procstat.pids_listening(6379)
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


def _phase_stats(
    data: dict[str, np.ndarray], sent: dict[int, float], nodes: int, burst: bool
) -> dict[str, Any]:
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
        span = (
            float(node_times.max() - first_sent)
            if burst
            else float(max(sent.values()) - first_sent) or 1.0
        )
        per_node.append(
            {
                "deliveries": int(node_times.size),
                "deliveries_per_s": round(node_times.size / max(span, 1e-6), 1),
            }
        )
    return {
        "events": len(sent),
        "delivery_latency": ms_summary(latency),
        "last_delivery_latency": ms_summary(per_event_last),
        "delivery_cdf": cdf_points(latency),
        "per_node": per_node,
        "deliveries_per_s_per_node": round(
            float(np.mean([p["deliveries_per_s"] for p in per_node])), 1
        ),
        "duration_s": round(float(times.max() - first_sent), 3) if times.size else None,
        # publish → last delivery of each event, in publish order (the time series behind p99)
        "per_event_last_ms": [round(float(v) * 1000, 2) for v in per_event_last],
    }


def _phases(o: Any) -> list[tuple[str, int, float | None]]:
    """(name, events, rate or None for back to back) in publish order."""
    return [
        ("steady", int(o.fanout_rate * o.fanout_seconds), o.fanout_rate),
        ("load", int(o.fanout_load_rate * o.fanout_seconds), o.fanout_load_rate),
        ("burst", o.fanout_burst, None),
    ]


async def run_target(ctx: Context, target: str) -> dict[str, Any]:
    o = ctx.options
    subscribers, phases = o.fanout_subscribers, _phases(o)
    total_events = sum(n for _, n, _ in phases)
    async with ctx.deploy(target, nodes=o.fanout_nodes) as dep:
        if target in SYNTHIA_TARGETS:
            await ctx.ensure_accounts(subscribers, dep.urls)
        plan = ctx.plan(target, dep.urls, subscribers)
        job = ctx.pool.start(
            "bench.scenarios.fanout:worker",
            [
                {
                    "target": target,
                    "urls": dep.urls,
                    "plan": part,
                    "concurrency": o.connect_concurrency,
                    "max_events": total_events,
                }
                for part in split(plan, ctx.pool.size)
            ],
        )
        with ctx.bar(subscribers, f"fanout {dep.label}: connecting") as bar:
            job.on_progress = bar.update
            connected = await job.recv_all()
        total = sum(c["connected"] for c in connected)
        await ctx.census(target, len(dep.urls))
        publisher = publisher_for(target, dep.redis_url, dep.channel)
        await publisher.start()
        result: dict[str, Any] = {
            "target": target,
            "label": dep.label,
            "subscribers": total,
            "nodes": len(dep.urls),
            "connect_errors": sum(c["error_count"] for c in connected),
            "error_samples": [e for c in connected for e in c["errors"]],
        }
        sent: dict[str, dict[int, float]] = {}
        windows: dict[str, tuple[float, float, dict[str, float]]] = {}
        missing = 0
        try:
            await asyncio.sleep(SETTLE)
            groups = _cpu_groups(ctx, dep)
            first = 0
            for name, count, rate in phases:
                ctx.say(
                    f"fanout {dep.label}: {name}, {count} events"
                    + (f" at {rate}/s" if rate else " back to back")
                )
                meter, t0 = CpuMeter(groups), time.time()
                if rate:
                    sent[name] = await _publish_steady(publisher, first, count, rate)
                else:
                    sent[name] = await _publish_burst(publisher, first, count)
                job.send_all({"op": "await", "first": first, "last": first + count, "timeout": 60})
                missing += sum(m["missing"] for m in await job.recv_all())
                windows[name] = (t0, time.time(), meter.read())
                first += count
        finally:
            await publisher.stop()
        job.send_all({"op": "collect"})
        exports = await job.recv_all()
        job.send_all({"op": "close"})
        await job.finish()
    merged = {key: np.concatenate([e[key] for e in exports]) for key in ("seqs", "times", "nodes")}
    for name, _, rate in phases:
        t0, t1, cpu = windows[name]
        result[name] = {
            **_phase_stats(merged, sent[name], len(dep.urls), burst=rate is None),
            "rate": rate,
            "cpu_pct": cpu,
            "server_stalls": ctx.stalls_in(target, len(dep.urls), t0, t1),
        }
    result["expected_deliveries"] = total * total_events
    result["deliveries"] = int(merged["seqs"].size)
    result["lost"] = missing  # over the sockets that connected; refused connects are connect_errors
    result["duplicates"] = sum(e["duplicates"] for e in exports)
    result["offset_gaps"] = sum(e["offset_gaps"] for e in exports)
    result["client_workers"] = [e["client"] for e in exports]  # did the measuring side stall?
    return result


# Redis Cluster vs one Redis: (figure, path in a target's result); lower is better but for the first.
CLUSTER_FIGURES = (
    ("deliveries/s per node (burst)", ("burst", "deliveries_per_s_per_node")),
    ("p50 delivery ms (steady)", ("steady", "delivery_latency", "p50_ms")),
    ("p99 delivery ms (steady)", ("steady", "delivery_latency", "p99_ms")),
    ("p99 publish→last delivery ms (steady)", ("steady", "last_delivery_latency", "p99_ms")),
    ("p50 delivery ms (load)", ("load", "delivery_latency", "p50_ms")),
    ("p99 delivery ms (load)", ("load", "delivery_latency", "p99_ms")),
    ("p99 publish→last delivery ms (load)", ("load", "last_delivery_latency", "p99_ms")),
)


def cluster_ratios(single: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Per figure: its value on one Redis, on the cluster, and cluster ÷ one Redis."""

    def get(result: dict[str, Any], path: tuple[str, ...]) -> Any:
        for key in path:
            result = result.get(key) or {}
        return result if isinstance(result, int | float) else None

    out: dict[str, Any] = {}
    for figure, path in CLUSTER_FIGURES:
        a, b = get(single, path), get(cluster, path)
        out[figure] = {"single_redis": a, "cluster": b, "ratio": ratio(b, a)}
    return out


async def run(ctx: Context) -> dict[str, Any]:
    results = {target: await run_target(ctx, target) for target in ctx.options.targets}
    if SYNTHIA in results and SYNTHIA_CLUSTER in results:
        results[SYNTHIA_CLUSTER]["ratio_to_single_redis"] = cluster_ratios(
            results[SYNTHIA], results[SYNTHIA_CLUSTER]
        )
    return results


# Event-loop lag and GC pauses inside a client worker: is the CLIENT the one stalling?
#
# A latency spike can come from the server or from the process that measures it. Every fan-out
# worker runs this watcher and reports it next to the latency figures.

LAG_TICK = 0.02


class LagWatch:
    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_start = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif info["generation"] == 2:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            self.lags.append(time.perf_counter() - before - LAG_TICK)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> dict[str, Any]:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
        lags = sorted(self.lags) or [0.0]
        return {
            "loop_lag_p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 2),
            "loop_lag_max_ms": round(lags[-1] * 1000, 2),
            "gc_full_pauses": len(self.gc_pauses),
            "gc_full_max_ms": round(max(self.gc_pauses, default=0.0) * 1000, 2),
        }
