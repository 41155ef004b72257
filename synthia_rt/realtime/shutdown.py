"""Graceful shutdown: close our sockets with 1001 before uvicorn's own shutdown sends 1012.

uvicorn (single process or each ``--workers`` child) installs SIGTERM/SIGINT handlers while it
serves and, on the signal, closes every WebSocket with 1012 before the lifespan shutdown runs.
1012 is not in our documented close codes, so during lifespan startup we wrap uvicorn's handler:
on the signal we first drain the hub (1001 "going away, reconnect elsewhere"), then let uvicorn
proceed as usual.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from synthia_rt.realtime.hub import Hub

log = logging.getLogger(__name__)


def install(hub: Hub) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue
        signal.signal(sig, _handler(loop, hub, previous))


def _handler(loop: asyncio.AbstractEventLoop, hub: Hub, previous: Any) -> Any:
    def handle(sig: int, frame: FrameType | None) -> None:
        async def drain_then_exit() -> None:
            hub.runtime.draining = True
            try:
                await hub.drain()
            except Exception:  # noqa: BLE001 - never block shutdown
                log.exception("drain failed")
            previous(sig, frame)

        def start() -> None:
            # The loop keeps only a weak reference to a task: hold it until it is done.
            task = loop.create_task(drain_then_exit(), name="drain-on-signal")
            running.add(task)
            task.add_done_callback(running.discard)

        loop.call_soon_threadsafe(start)

    running: set[asyncio.Task[None]] = set()
    return handle
