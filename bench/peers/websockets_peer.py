"""A bare ``websockets`` server with one Redis pub/sub subscription: the floor of the comparison.

No framework, no ASGI, no per-socket queue or task beyond what ``websockets`` itself keeps:
each Redis message is written to every open connection with ``websockets.broadcast`` (one
encode, one write per socket).
"""

from __future__ import annotations

import os

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.limits import raise_nofile
from bench.peers import peer_args


async def run(host: str, port: int, redis_url: str, channel: str) -> None:
    clients: set[ServerConnection] = set()
    ready = orjson.dumps(
        {"event": "session.ready", "node": f"websockets-{port}-{os.getpid()}"}
    ).decode()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.send(ready)
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)

    redis = aioredis.Redis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)

    async def relay() -> None:
        async for message in pubsub.listen():
            broadcast(clients, message["data"].decode())

    async with serve(handler, host, port, compression=None, ping_interval=20, ping_timeout=20):
        await relay()


def main() -> None:
    args = peer_args(__doc__ or "")
    raise_nofile()
    import uvloop

    uvloop.run(run(args.host, args.port, args.redis, args.channel))


if __name__ == "__main__":
    main()
