"""python-socketio (ASGI, under uvicorn) with AsyncRedisManager: the bench's socket.io peer.

Publishers reach every node through ``AsyncRedisManager(url, channel=…, write_only=True)
.emit("broadcast", payload)`` — socket.io's documented way to emit from an external process.
"""

from __future__ import annotations

import os
from typing import Any

import socketio

from bench.peers import peer_args, run_uvicorn


def create_app(redis_url: str, channel: str, node: str) -> Any:
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins="*")

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        # Queued behind the namespace CONNECT reply, so the client sees 40 then the ready event.
        await sio.emit("ready", {"event": "session.ready", "node": node}, to=sid)

    return socketio.ASGIApp(sio)


def main() -> None:
    args = peer_args(__doc__ or "")
    run_uvicorn(
        create_app(args.redis, args.channel, f"socketio-{args.port}-{os.getpid()}"),
        args.host,
        args.port,
    )


if __name__ == "__main__":
    main()
