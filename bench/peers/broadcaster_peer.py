"""Starlette + encode/broadcaster over Redis, one WebSocket endpoint: the bench's broadcaster peer.

The endpoint follows broadcaster's README (a receive task and a send task per socket in one task
group). Two changes, each working around a real broadcaster 0.3.1 bug that would otherwise
make it deliver nothing — not what this benchmark compares:

* the lifespan holds an *anchor* subscription to the channel for the whole run: without it
  ``Broadcast.subscribe`` races when many sockets join at once (each sees no subscriber yet,
  and each overwrites the subscriber set, so most sockets silently receive nothing);
* ``_RedisBackend`` wakes the listener only once Redis has the subscription: the stock backend
  wakes it before, the listener finds redis-py's pub/sub not yet subscribed, ``listen()``
  returns at once, and the listener then waits for a wake-up that never comes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import anyio
import orjson
from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.peers import peer_args, run_uvicorn


class _RedisBackend(RedisBackend):
    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


def create_app(redis_url: str, channel: str, node: str) -> Starlette:
    broadcast = Broadcast(backend=_RedisBackend(redis_url))
    ready = orjson.dumps({"event": "session.ready", "node": node}).decode()

    async def receiver(websocket: WebSocket, scope: anyio.CancelScope) -> None:
        try:
            async for _ in websocket.iter_text():
                pass
        except WebSocketDisconnect:
            pass
        scope.cancel()

    async def sender(websocket: WebSocket) -> None:
        async with broadcast.subscribe(channel=channel) as subscriber:
            await websocket.send_text(ready)
            async for event in subscriber:  # type: ignore[union-attr]
                if event is None:  # the subscription was closed
                    return
                await websocket.send_text(event.message)

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        async with anyio.create_task_group() as group:
            group.start_soon(receiver, websocket, group.cancel_scope)
            group.start_soon(sender, websocket)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broadcast.connect()
        try:
            async with broadcast.subscribe(channel=channel):  # the anchor, see the module doc
                yield
        finally:
            await broadcast.disconnect()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)


def main() -> None:
    args = peer_args(__doc__ or "")
    run_uvicorn(
        create_app(args.redis, args.channel, f"broadcaster-{args.port}-{os.getpid()}"),
        args.host,
        args.port,
    )


if __name__ == "__main__":
    main()
