"""``synthia-rt serve`` with probes, for ``python -m bench --profile DIR``.

The GC-pause and heap-census probes of :mod:`bench.probe`, plus an **event-loop lag** watcher:
a task that sleeps 20 ms and records how late it wakes up — how long any one callback (a
fan-out loop, a synchronous hash, a GC pause) held the loop. It is started from the app's
lifespan by wrapping ``synthia_rt.app.app_factory`` (uvicorn builds the app from that factory).
``py-spy record`` is attached from outside by the bench (see ``bench/profiling.py``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bench import probe

TICK = 0.02
_lags: list[float] = []


async def _watch_lag() -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        lag = time.perf_counter() - before - TICK
        _lags.append(lag)
        if lag >= probe.STALL:
            probe.stalls.append([round(time.time(), 4), round(lag, 4), probe.LAG_KIND])


def _lag_report() -> dict[str, Any]:
    lags = list(_lags)
    return {"loop_lag": probe.summary(lags), "loop_lag_over_100ms": sum(1 for v in lags if v > 0.1)}


class _Wrapped:
    """Forwards ASGI calls to ``call``; other attributes come from the Starlette app."""

    def __init__(self, app: Any, call: Any) -> None:
        self._app = app
        self._call = call

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._call(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


def _patch_factory() -> None:
    import synthia_rt.app as app_module

    original = app_module.app_factory

    def factory() -> Any:
        app = original()
        started: list[asyncio.Task[None]] = []

        async def with_watcher(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan" and not started:
                started.append(asyncio.ensure_future(_watch_lag()))
            await app(scope, receive, send)

        return _Wrapped(app, with_watcher)

    app_module.app_factory = factory


def main() -> int:
    probe.install()
    probe.extra_reports.append(_lag_report)
    _patch_factory()
    from synthia_rt.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
