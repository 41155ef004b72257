"""Per-target adapters: how the one client opens a socket and reads a broadcast event on each server.

Every target honours the same minimal contract — accept a socket, send a ready frame, deliver
broadcast events carrying ``seq`` and ``sent_at`` — but frames it differently:

* ``synthia``     ``/ws`` with subprotocols ``["synthia.v1", "bearer.<token>"]``; ready is
                  ``session.ready``; events ``{"event":"notification","channel":"broadcast",…}``.
* ``synthia-cluster``  the same synthia_rt nodes and protocol, with ``REDIS_URL=redis+cluster://…``
                  (a private 3-primary + 3-replica Redis Cluster the runner starts; idle and fanout).
* ``socketio``    Engine.IO 4 over a raw WebSocket: server ``0{…}`` (open), client ``40``
                  (join namespace ``/``), server ``40{…}``, then ``42["ready",{…}]``; events
                  ``42["broadcast",{…}]``; the server pings with ``2`` and must get ``3``.
* ``broadcaster`` and ``websockets``: JSON ready frame, then the event JSON as published.

Parsing stays on bytes (``orjson.loads``) and never builds more than the two fields needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from bench.client import WsClient, connect

SYNTHIA, SOCKETIO, BROADCASTER, WEBSOCKETS = "synthia", "socketio", "broadcaster", "websockets"
SYNTHIA_CLUSTER = "synthia-cluster"
ALL_TARGETS = (SYNTHIA, SYNTHIA_CLUSTER, SOCKETIO, BROADCASTER, WEBSOCKETS)
SYNTHIA_TARGETS = frozenset(
    {SYNTHIA, SYNTHIA_CLUSTER}
)  # synthia_rt nodes: accounts, tokens, broker
LABELS = {
    SYNTHIA: "synthia_rt",
    SYNTHIA_CLUSTER: "synthia_rt on Redis Cluster (3+3)",
    SOCKETIO: "python-socketio",
    BROADCASTER: "starlette+broadcaster",
    WEBSOCKETS: "bare websockets",
}


@dataclass(frozen=True, slots=True)
class Opened:
    socket: WsClient
    node: str  # the node id the server reported (synthia) or the URL it was opened on
    ready: dict[str, Any]
    url: str  # the http base URL it was opened on


def ws_url(target: str, http_url: str) -> str:
    base = http_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
    if target == SOCKETIO:
        return f"{base}/socket.io/?EIO=4&transport=websocket"
    return f"{base}/ws"


async def _next_text(ws: WsClient, timeout: float) -> bytes:
    while True:
        payload, is_text = await ws.recv(timeout)
        if is_text:
            return payload


async def open_socket(
    target: str, http_url: str, token: str | None, timeout: float = 30.0
) -> Opened:
    """Connect and wait for the target's ready frame; the socket is left in inbox mode."""
    url = ws_url(target, http_url)
    if target in SYNTHIA_TARGETS:
        if token is None:
            raise ValueError("synthia sockets need an access token")
        ws = await connect(url, subprotocols=["synthia.v1", f"bearer.{token}"], timeout=timeout)
        ready = orjson.loads(await _next_text(ws, timeout))
        if ready.get("event") != "session.ready":
            raise RuntimeError(f"first frame was not session.ready: {ready}")
        return Opened(ws, str(ready.get("node", http_url)), ready, http_url)
    ws = await connect(url, timeout=timeout)
    if target == SOCKETIO:
        opening = await _next_text(ws, timeout)
        if not opening.startswith(b"0"):
            raise RuntimeError(f"engine.io open expected, got {opening[:40]!r}")
        ws.send_text(b"40")
        while True:
            frame = await _next_text(ws, timeout)
            if frame == b"2":
                ws.send_text(b"3")
            elif frame.startswith(b'42["ready"'):
                ready = orjson.loads(frame[2:])[1]
                return Opened(ws, http_url, ready, http_url)
    ready = orjson.loads(await _next_text(ws, timeout))
    if ready.get("event") != "session.ready":
        raise RuntimeError(f"first frame was not a ready frame: {ready}")
    return Opened(ws, http_url, ready, http_url)


def parse_event(target: str, ws: WsClient, payload: bytes) -> dict[str, Any] | None:
    """The broadcast event in ``payload``, or None for control frames (answered here)."""
    if target == SOCKETIO:
        if payload == b"2":
            ws.send_text(b"3")
            return None
        if payload.startswith(b'42["broadcast"'):
            data: dict[str, Any] = orjson.loads(payload[2:])[1]
            return data
        return None
    event: dict[str, Any] = orjson.loads(payload)
    if "seq" in event:
        return event
    return None


async def open_many(
    target: str,
    plan: list[tuple[str, str | None]],
    concurrency: int,
    on_opened: Any = None,
) -> tuple[list[Opened], list[str]]:
    """Open one socket per ``(http_url, token)`` with at most ``concurrency`` handshakes in flight.

    Returns the sockets in plan order (failures leave no entry) and the error strings.
    """
    gate = asyncio.Semaphore(concurrency)
    opened: list[Opened | None] = [None] * len(plan)
    errors: list[str] = []

    async def one(i: int, http_url: str, token: str | None) -> None:
        async with gate:
            try:
                opened[i] = await open_socket(target, http_url, token)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
            if on_opened is not None:
                on_opened()

    await asyncio.gather(*(one(i, url, tok) for i, (url, tok) in enumerate(plan)))
    return [o for o in opened if o is not None], errors
