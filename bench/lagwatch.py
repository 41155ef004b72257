"""Event-loop lag and GC pauses inside a client worker: is the CLIENT the one stalling?

A latency spike can come from the server or from the process that measures it. Every fan-out
worker runs this watcher and reports it next to the latency figures.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

TICK = 0.02


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
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - before - TICK)

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
