"""Prometheus metrics of one process, and the supervised admin snapshot loop.

Two modes, chosen by ``settings.prometheus_multiproc_dir`` (prometheus-client's own
``PROMETHEUS_MULTIPROC_DIR``, which must also be in the environment before the library is
imported, because the library picks its value storage at import time):

* **single process** (default): every :class:`Metrics` owns a private registry, so several
  in-process apps in one test run never collide on metric names;
* **multi-process** (several uvicorn workers): values live in mmap files in that directory and
  ``render`` merges every worker's files, so any worker answers ``/metrics`` for all of them.
  Gauges use ``livesum`` so a dead worker's sockets stop counting.

Every attribute below is part of the interface the socket, auth and analysis code call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from synthia_rt.errors import CloseCode

if TYPE_CHECKING:
    from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "synthia"
# Model calls take seconds; the first streamed partial should arrive well under one.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)
# HTTP answers: most are milliseconds; uploads and logins (Argon2) take longer.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FIRST_PARTIAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# ``disconnects{code}`` values: the protocol's close codes plus the standard ones a peer or
# uvicorn reports (1005 no status, 1006 abnormal, 1012 restart). A client chooses the code of
# its own close frame, so anything else is counted as "other": clients cannot mint series.
_KNOWN_CLOSE_CODES = frozenset(int(code) for code in CloseCode) | {1005, 1006, 1012}


def close_label(code: int) -> str:
    """The ``code`` label of ``synthia_disconnects_total`` for a close code."""
    return str(code) if code in _KNOWN_CLOSE_CODES else "other"


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.multiprocess_dir = runtime.settings.prometheus_multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = time.monotonic()  # rates "since start" (GET /cache/metrics api_metrics)
        if not self.multiprocess_dir:
            # Process collectors read /proc of *this* pid: meaningless when merging workers.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry

        self.sockets_open = Gauge(
            f"{PREFIX}_sockets_open",
            "WebSockets currently open",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connects = Counter(f"{PREFIX}_connects", "WebSocket sessions accepted", registry=r)
        self.disconnects = Counter(
            f"{PREFIX}_disconnects",
            "WebSocket sessions closed, by close code",
            ["code"],
            registry=r,
        )
        self.frames_in = Counter(
            f"{PREFIX}_frames_in", "Inbound frames (text|binary|op name)", ["kind"], registry=r
        )
        self.frames_out = Counter(f"{PREFIX}_frames_out", "Outbound frames", ["kind"], registry=r)
        self.queue_drops = Counter(
            f"{PREFIX}_queue_drops",
            "Sockets closed because their outbound queue overflowed",
            registry=r,
        )
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited",
            "Refusals by a rate limit (socket|login|analysis|subscribe|quiz.start)",
            ["scope"],
            registry=r,
        )
        self.analyses = Counter(
            f"{PREFIX}_analyses",
            "Finished analyses by kind and status",
            ["kind", "status"],
            registry=r,
        )
        self.model_calls_saved = Counter(
            f"{PREFIX}_model_calls_saved",
            "Facial analyses refused by the local face check before any model call, by reason "
            "(no_face_detected|multiple_faces|poor_quality)",
            ["reason"],
            registry=r,
        )
        self.gemini_latency = Histogram(
            f"{PREFIX}_gemini_latency_seconds",
            "Model call duration, request to final chunk",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gemini_first_partial = Histogram(
            f"{PREFIX}_gemini_first_partial_seconds",
            "Model call start to first streamed partial",
            buckets=FIRST_PARTIAL_BUCKETS,
            registry=r,
        )
        self.tokens_used = Counter(
            f"{PREFIX}_tokens_used", "Model tokens (prompt|candidates)", ["direction"], registry=r
        )
        self.cache_ops = Counter(
            f"{PREFIX}_cache_ops",
            "Result cache lookups by namespace and result (hit|miss)",
            ["namespace", "result"],
            registry=r,
        )
        self.backend_errors = Counter(
            f"{PREFIX}_backend_errors",
            "Failed calls to a backing service (redis|postgres)",
            ["backend"],
            registry=r,
        )
        self.backend_up = Gauge(
            f"{PREFIX}_backend_up",
            "1 when a backing service (redis|postgres) answered the last "
            "probe (embedded counts as up), else 0",
            ["backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.analyses_in_flight = Gauge(
            f"{PREFIX}_analyses_in_flight",
            "Analyses running now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.snapshot_failures = Counter(
            f"{PREFIX}_snapshot_failures",
            "admin:metrics snapshots that could not be published",
            registry=r,
        )
        # HTTP, by route *template* (``/api/v1/users/{user_id}``): a raw path would mint a
        # series per id; paths no route matches share one label (see observability/middleware).
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request start to last response byte, by route template and method",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self._task: asyncio.Task[None] | None = None

    close_label = staticmethod(close_label)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        from synthia_rt.observability.snapshot import SnapshotLoop

        loop = SnapshotLoop(self.runtime, self)
        self._task = asyncio.create_task(
            loop.run(), name=f"metrics-snapshot-{self.runtime.node_id}"
        )
        self._task.add_done_callback(_report_death)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Our own cancellation of the task ends here; a cancel aimed at *us* re-raises.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:  # noqa: BLE001 - already reported by the done callback
                pass
        if self.multiprocess_dir:
            # Drop this worker's live gauges from the merged view; counters stay summed.
            prom_multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    # -- exposition -------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this process (or of all workers) and its type."""
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _report_death(task: asyncio.Task[None]) -> None:
    # The loop catches every per-tick failure itself, so ending at all is a bug: say so loudly.
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.critical("metrics snapshot loop died; admin dashboards go stale", exc_info=exc)
