"""The ``admin:metrics`` snapshot: every ``metrics_interval`` seconds each node publishes what it
is doing now, so the admin dashboard shows every node without scraping Prometheus.

Rates and percentiles are computed over the last interval from differences of this process's
own counters and histogram buckets (Prometheus' ``histogram_quantile`` interpolation), so the
numbers move with traffic instead of averaging over the node's whole life. Cache hit ratios are
cumulative since the node started, because a two-second window is usually empty.

A failing tick (broker down, a bug in one reading) is logged and counted; the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from synthia_rt.observability.metrics import Metrics
    from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)

CHANNEL = "admin:metrics"
EVENT = "metrics.snapshot"
PING_TIMEOUT = 1.0  # a backend slower than this to answer SELECT 1 / PING counts as down
# Analysis statuses that are not failures; anything else helper code reports counts as an error.
SUCCESS_STATUSES = frozenset({"done", "ok", "success", "cached", "cancelled"})

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), ascending


class Percentiles(BaseModel):
    p50: float | None = Field(
        description="Median over the last interval, ms; null without observations."
    )
    p95: float | None


class CacheRatio(BaseModel):
    hit_ratio: float | None = Field(description="Since the node started; null before any lookup.")
    ops: float


class SnapshotFields(BaseModel):
    """The payload of ``metrics.snapshot`` (the broker adds ``channel``/``offset``/``epoch``)."""

    event: str = EVENT
    node: str = Field(description="The publishing node's id (as in `session.ready.node`).")
    ts: float = Field(description="Unix seconds when the snapshot was taken.")
    interval: float = Field(description="Seconds covered by the rates and percentiles.")
    sockets: int = Field(description="WebSockets open on this node now.")
    frames_in_per_s: float
    frames_out_per_s: float
    analyses_in_flight: int
    latency_ms: Percentiles = Field(description="Model call duration (Gemini analyzer only).")
    first_partial_ms: Percentiles = Field(description="Model call start to first streamed partial.")
    cache: dict[str, CacheRatio] = Field(
        description="Result cache hit ratio per namespace on this node."
    )
    error_rate: float | None = Field(
        description="Failed / finished analyses in the interval; null if none."
    )
    backend_errors_per_s: float
    backends: dict[str, str] = Field(description="`redis` and `postgres`: ok, down or embedded.")
    draining: bool


@dataclass(frozen=True)
class Reading:
    """Cumulative values of this process at one instant."""

    at: float
    frames_in: float
    frames_out: float
    analyses_ok: float
    analyses_failed: float
    backend_errors: float
    latency: Buckets
    first_partial: Buckets


def samples(metric: MetricWrapperBase) -> Iterable[tuple[str, dict[str, str], float]]:
    for family in metric.collect():
        for s in family.samples:
            yield s.name, s.labels, s.value


def total(metric: MetricWrapperBase) -> float:
    """Sum of a counter (all label sets) or the value of a gauge."""
    return sum(v for name, _, v in samples(metric) if not name.endswith("_created"))


def buckets(metric: MetricWrapperBase) -> Buckets:
    found = [
        (float(labels["le"]), v) for name, labels, v in samples(metric) if name.endswith("_bucket")
    ]
    return sorted(found)


def quantile(q: float, before: Buckets, after: Buckets) -> float | None:
    """The ``q`` quantile of observations made between two bucket readings, or None if none."""
    window = (
        [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=False)] if before else after
    )
    if not window or window[-1][1] <= 0:
        return None
    rank = q * window[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in window:
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            width = count - lower_count
            fraction = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (le - lower_bound) * fraction
        lower_bound, lower_count = le, count
    return None


def cache_ratios(metric: MetricWrapperBase) -> dict[str, CacheRatio]:
    counts: dict[str, dict[str, float]] = {}
    for name, labels, value in samples(metric):
        if name.endswith("_total"):
            per = counts.setdefault(labels["namespace"], {"hit": 0.0, "miss": 0.0})
            per[labels["result"]] = per.get(labels["result"], 0.0) + value
    out: dict[str, CacheRatio] = {}
    for namespace, per in sorted(counts.items()):
        ops = per.get("hit", 0.0) + per.get("miss", 0.0)
        out[namespace] = CacheRatio(
            hit_ratio=round(per.get("hit", 0.0) / ops, 4) if ops else None, ops=ops
        )
    return out


def read(metrics: Metrics) -> Reading:
    ok = failed = 0.0
    for name, labels, value in samples(metrics.analyses):
        if name.endswith("_total"):
            if labels.get("status") in SUCCESS_STATUSES:
                ok += value
            else:
                failed += value
    return Reading(
        at=time.monotonic(),
        frames_in=total(metrics.frames_in),
        frames_out=total(metrics.frames_out),
        analyses_ok=ok,
        analyses_failed=failed,
        backend_errors=total(metrics.backend_errors),
        latency=buckets(metrics.gemini_latency),
        first_partial=buckets(metrics.gemini_first_partial),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def _percentiles(before: Buckets, after: Buckets) -> Percentiles:
    return Percentiles(
        p50=_ms(quantile(0.5, before, after)), p95=_ms(quantile(0.95, before, after))
    )


def _rate(delta: float, seconds: float) -> float:
    return round(delta / seconds, 3) if seconds > 0 else 0.0


class SnapshotLoop:
    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self._last_status: dict[str, str] = {}

    async def run(self) -> None:
        interval = max(0.2, float(self.runtime.settings.metrics_interval))
        previous = read(self.metrics)
        while True:
            await asyncio.sleep(interval)
            try:
                current = read(self.metrics)
                payload = await self.build(previous, current)
                previous = current
                await self.runtime.need_broker().publish(CHANNEL, payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad tick must not stop the dashboard
                self.metrics.snapshot_failures.inc()
                log.warning("metrics snapshot not published", exc_info=True)

    async def build(self, before: Reading, after: Reading) -> dict[str, Any]:
        seconds = after.at - before.at
        finished = (after.analyses_ok - before.analyses_ok) + (
            after.analyses_failed - before.analyses_failed
        )
        failed = after.analyses_failed - before.analyses_failed
        snapshot = SnapshotFields(
            node=self.runtime.node_id,
            ts=round(time.time(), 3),
            interval=round(seconds, 3),
            sockets=self.socket_count(),
            frames_in_per_s=_rate(after.frames_in - before.frames_in, seconds),
            frames_out_per_s=_rate(after.frames_out - before.frames_out, seconds),
            analyses_in_flight=int(total(self.metrics.analyses_in_flight)),
            latency_ms=_percentiles(before.latency, after.latency),
            first_partial_ms=_percentiles(before.first_partial, after.first_partial),
            cache=cache_ratios(self.metrics.cache_ops),
            error_rate=round(failed / finished, 4) if finished > 0 else None,
            backend_errors_per_s=_rate(after.backend_errors - before.backend_errors, seconds),
            backends=await self.backends(),
            draining=self.runtime.draining,
        )
        return snapshot.model_dump()

    def socket_count(self) -> int:
        counter = getattr(self.runtime.hub, "socket_count", None)
        if callable(counter):
            return int(counter())
        return int(total(self.metrics.sockets_open))

    async def backends(self) -> dict[str, str]:
        settings = self.runtime.settings
        status = {
            "redis": "embedded"
            if settings.effective_redis_url.startswith("memory")
            else await self._probe("redis", self._ping_redis),
            "postgres": "embedded"
            if settings.effective_database_url.startswith("sqlite")
            else await self._probe("postgres", self._ping_postgres),
        }
        for name, state in status.items():  # the same probe, for Prometheus alerts
            self.metrics.backend_up.labels(name).set(0 if state == "down" else 1)
        return status

    async def _probe(self, name: str, ping: Any) -> str:
        try:
            ok = bool(await asyncio.wait_for(ping(), PING_TIMEOUT))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a probe reports, it does not raise
            ok = False
        state = "ok" if ok else "down"
        if self._last_status.get(name) != state:
            # Log transitions only: a long outage must not flood the log every interval.
            (log.info if ok else log.warning)("%s is %s", name, state)
            self._last_status[name] = state
        return state

    async def _ping_redis(self) -> bool:
        kv = self.runtime.kv
        return kv is not None and await kv.ping()

    async def _ping_postgres(self) -> bool:
        engine = self.runtime.engine
        if engine is None:
            return False
        await engine.run_ddl("SELECT 1")
        return True
