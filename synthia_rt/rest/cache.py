"""``/cache``: public health, and admin-only metrics and invalidation of the result cache.

Deletion is SCAN-based (``KeyValue.scan``, never ``KEYS``) and confined twice: the key-value
store only ever sees keys under this service's own prefix, and patterns here either start with
a cache namespace (``analysis:*``, as the old guide writes them: relative to the cache) or
with the literal ``cache:`` (``cache:analysis:*``), and use a small alphabet, so
``DELETE /cache/keys/...`` cannot reach tokens, uploads, rate-limit state or anything else
outside the cache.

``GET /cache/metrics`` answers our per-namespace shape and, beside it, the old guide's
``cache_metrics`` / ``api_metrics`` objects its admin tooling reads (docs/coming-from-flask.md).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.analysis.cache import ResultCache, namespace_ttls
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue
from synthia_rt.observability.audit import audit
from synthia_rt.rest.deps import client_ip, runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out
from synthia_rt.runtime import Runtime

TAGS = ("cache",)
NAMESPACES = ("user", "analysis", "session")  # analysis/cache.py: namespace_ttls
# Literal "cache:" (or a namespace and ":", relative to the cache) then letters, digits and
# `_ - . :` with `*`/`?` globs. No `[...]` classes, backslash escapes or braces: nothing that
# could make the glob reach outside `cache:`.
_GLOB = r"[A-Za-z0-9_.:*?-]{1,200}"
PATTERN = re.compile(rf"^cache:{_GLOB}$")
RELATIVE_PATTERN = re.compile(rf"^(?:{'|'.join(NAMESPACES)}):{_GLOB}$")
MIB = 1024 * 1024
DELETE_BATCH = 500
PING_SAMPLES = 3
HEALTH_TIMEOUT = 2.0


class CacheHealth(Out):
    status: Literal["ok", "down"]
    backend: Literal["redis", "memory"]


class NamespaceStats(Out):
    hits: int
    misses: int
    hit_ratio: float = Field(description="hits / (hits + misses); 0 when there were none.")


class CacheMetrics(Out):
    backend: Literal["redis", "memory"]
    namespaces: dict[str, NamespaceStats] = Field(
        description="Counted across every node sharing the store."
    )
    ops: int = Field(description="Lookups (hits + misses) in all namespaces.")
    memory_used_bytes: int | None = Field(
        description="Memory the store reports using (whole Redis)."
    )
    avg_response_ms: float | None = Field(
        description="Mean round trip of a few PINGs to the store now."
    )


class GuideCacheMetrics(Out):
    hit_ratio: float = Field(description="Hits / lookups over every namespace; 0 when none.")
    total_requests: int = Field(
        description="Cache lookups (hits + misses), all namespaces and nodes."
    )
    avg_response_time: float = Field(
        description="Mean duration of a cache lookup in milliseconds (measured around the store "
        "read by every node); 0 when there were none."
    )
    memory_usage_mb: float | None = Field(description="Memory the store reports using, MiB.")


class GuideApiMetrics(Out):
    requests_per_minute: float = Field(
        description="REST requests answered by this process per minute, averaged since it started."
    )
    avg_response_time: float = Field(
        description="Mean REST request duration in milliseconds (this process, since start)."
    )
    error_rate: float = Field(
        description="Share of REST responses with a 5xx status (this process, since start)."
    )


class CacheMetricsOut(CacheMetrics):
    cache_metrics: GuideCacheMetrics = Field(
        description="The old guide's shape (coming-from-flask.md)."
    )
    api_metrics: GuideApiMetrics = Field(
        description="The old guide's shape (coming-from-flask.md)."
    )


class Deleted(Out):
    deleted: int
    namespace: str | None = None
    pattern: str | None = None


def cache_of(runtime: Runtime) -> ResultCache:
    """The analysis service's cache when it runs, else a view over the same store."""
    existing = getattr(runtime.analysis, "cache", None)
    if isinstance(existing, ResultCache):
        return existing
    return ResultCache(runtime.need_kv(), runtime.settings, runtime.metrics)


async def delete_matching(kv: KeyValue, match: str) -> int:
    """Delete every key matching ``match`` in batches as SCAN yields them (bounded memory)."""
    deleted = 0
    batch: list[str] = []
    async for key in kv.scan(match):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            deleted += await kv.delete(*batch)
            batch.clear()
    if batch:
        deleted += await kv.delete(*batch)
    return deleted


def _backend(runtime: Runtime) -> Literal["redis", "memory"]:
    return "memory" if runtime.settings.effective_redis_url.startswith("memory") else "redis"


async def _response_ms(kv: KeyValue) -> float | None:
    """Mean round trip of a few PINGs: the least every cache read pays."""
    samples = []
    for _ in range(PING_SAMPLES):
        started = time.perf_counter()
        if not await kv.ping():
            return None
        samples.append((time.perf_counter() - started) * 1000.0)
    return round(sum(samples) / len(samples), 3)


@api(
    "GET",
    "/cache/health",
    "Is the cache store reachable",
    response=CacheHealth,
    auth=False,
    tags=TAGS,
    extra_responses={503: CacheHealth},
    description="503 with `status: down` when it is not.",
)
async def health(request: Request) -> CacheHealth | Response:
    runtime = runtime_of(request)
    try:
        ms = await asyncio.wait_for(_response_ms(runtime.need_kv()), HEALTH_TIMEOUT)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - a health probe reports, it does not raise
        ms = None
    out = CacheHealth(status="ok" if ms is not None else "down", backend=_backend(runtime))
    if ms is None:
        return Response(out.model_dump_json(), status_code=503, media_type="application/json")
    return out


@api(
    "GET",
    "/cache/metrics",
    "Cache hit ratios, operations, memory and latency",
    response=CacheMetricsOut,
    admin=True,
    tags=TAGS,
    description="`namespaces`, `ops`, `memory_used_bytes`, `avg_response_ms` are this service's "
    "shape; `cache_metrics` and `api_metrics` are the old guide's, for its admin tooling.",
)
async def metrics(request: Request, principal: Principal) -> CacheMetricsOut:
    runtime = runtime_of(request)
    kv = runtime.need_kv()
    stats = await cache_of(runtime).stats()
    namespaces = {
        ns: NamespaceStats(
            hits=int(s["hits"]), misses=int(s["misses"]), hit_ratio=round(s["hit_ratio"], 4)
        )
        for ns, s in stats.items()
    }
    ops = sum(n.hits + n.misses for n in namespaces.values())
    hits = sum(n.hits for n in namespaces.values())
    lookup_us = sum(s.get("lookup_us", 0.0) for s in stats.values())
    memory = await kv.used_memory()
    return CacheMetricsOut(
        backend=_backend(runtime),
        namespaces=namespaces,
        ops=ops,
        memory_used_bytes=memory,
        avg_response_ms=await _response_ms(kv),
        cache_metrics=GuideCacheMetrics(
            hit_ratio=round(hits / ops, 4) if ops else 0.0,
            total_requests=ops,
            avg_response_time=round(lookup_us / ops / 1000.0, 3) if ops else 0.0,
            memory_usage_mb=None if memory is None else round(memory / MIB, 2),
        ),
        api_metrics=api_metrics(runtime),
    )


def api_metrics(runtime: Runtime) -> GuideApiMetrics:
    """Request rate, mean latency and 5xx share of this process's HTTP API, read from the
    ``synthia_http_requests_total`` / ``synthia_http_request_duration_seconds`` metrics."""
    m = runtime.metrics
    if m is None:
        return GuideApiMetrics(requests_per_minute=0.0, avg_response_time=0.0, error_rate=0.0)
    total = errors = 0.0
    for family in m.http_requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
                errors += sample.value if sample.labels.get("status", "").startswith("5") else 0.0
    seconds = count = 0.0
    for family in m.http_latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                seconds += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    minutes = max(time.monotonic() - m.started, 1.0) / 60.0
    return GuideApiMetrics(
        requests_per_minute=round(total / minutes, 3),
        avg_response_time=round(seconds / count * 1000.0, 3) if count else 0.0,
        error_rate=round(errors / total, 4) if total else 0.0,
    )


async def _delete_audited(
    request: Request, principal: Principal, glob: str, action: str, /, **detail: str
) -> int:
    """Delete the keys matching ``glob`` and record who did it; returns how many went."""
    deleted = await delete_matching(runtime_of(request).need_kv(), glob)
    await audit(
        action, actor_id=principal.user_id, ip=client_ip(request), **detail, deleted=deleted
    )
    return deleted


@api(
    "POST",
    "/cache/invalidate/{namespace}",
    "Drop every entry of one cache namespace",
    response=Deleted,
    admin=True,
    errors=[ErrorCode.VALIDATION_ERROR],
    tags=TAGS,
    description=f"`namespace` is one of: {', '.join(NAMESPACES)}.",
)
async def invalidate(request: Request, principal: Principal) -> Deleted:
    namespace = request.path_params["namespace"]
    if namespace not in NAMESPACES or namespace not in namespace_ttls(runtime_of(request).settings):
        raise AppError(
            ErrorCode.VALIDATION_ERROR,
            "namespace must be one of {namespaces}",
            field="namespace",
            params={"namespaces": ", ".join(NAMESPACES)},
        )
    # "ns", not "namespace": the audit filter drops keys containing "name".
    deleted = await _delete_audited(
        request, principal, f"cache:{namespace}:*", "admin.cache.invalidate", ns=namespace
    )
    return Deleted(namespace=namespace, deleted=deleted)


@api(
    "DELETE",
    "/cache/keys/{pattern}",
    "Delete cache keys matching a glob",
    response=Deleted,
    admin=True,
    errors=[ErrorCode.VALIDATION_ERROR],
    tags=TAGS,
    description="`pattern` starts with a cache namespace (e.g. `analysis:*`, as the old guide "
    f"writes it; one of {', '.join(NAMESPACES)}) or with `cache:` (e.g. `cache:analysis:*`); only "
    "letters, digits, `_ - . :` and the globs `*` `?` are allowed. The answer's `pattern` is the "
    "`cache:` form that was deleted. Keys are found with SCAN, never KEYS.",
)
async def delete_keys(request: Request, principal: Principal) -> Deleted:
    pattern = request.path_params["pattern"]
    if RELATIVE_PATTERN.fullmatch(pattern):
        pattern = f"cache:{pattern}"
    elif not PATTERN.fullmatch(pattern):
        raise AppError(
            ErrorCode.VALIDATION_ERROR,
            "pattern must start with a cache namespace ({namespaces}) and ':', or "
            "with 'cache:', and use only letters, digits, _ - . : and the globs * ?",
            field="pattern",
            params={"namespaces": ", ".join(NAMESPACES)},
        )
    deleted = await _delete_audited(
        request, principal, pattern, "admin.cache.delete", pattern=pattern
    )
    return Deleted(pattern=pattern, deleted=deleted)


routes: list[BaseRoute] = [health, metrics, invalidate, delete_keys]
