"""A node killed (SIGKILL) right after the last chunk of an upload (issue 10, item 4).

Two real uvicorn nodes share PostgreSQL and Redis; the one that received the upload dies
before it could finish the analysis. The other node must take the analysis over (its
upload.status or its sweeper, through the analysis' lease) and the user's slot must be free
again — within the protocol's 10 seconds. The measured time is printed (``-s``).
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from synthia_rt.realtime.protocol import encode_chunk
from tests.analysis_support import astronaut_jpeg, coffee_jpeg, sha
from tests.nodes import Node, start_node
from tests.wsclient import Client, register, ws_session

CHUNK = 64 * 1024
TAKEOVER_BOUND = 10.0  # the bound for the other node to finish the analysis


@pytest.fixture
async def nodes(
    node_env: dict[str, str], redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Node, Node]]:
    env = {**node_env, "MAX_ANALYSES_PER_USER": "1"}  # one slot: a slot still held is visible
    a = await start_node(env)
    try:
        b = await start_node(env)
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


async def test_kill_after_the_last_chunk_the_other_node_finishes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    user = await register(a.http)
    image = astronaut_jpeg()
    async with ws_session(a.ws, user["access_token"]) as on_a:
        started = await on_a.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(image),
            sha256=sha(image),
        )
        assert started["ok"], started
        aid, channel = started["analysis_id"], started["channel"]
        for offset in range(0, len(image), CHUNK):
            await on_a.send_raw(
                encode_chunk(uuid.UUID(aid), offset, image[offset : offset + CHUNK])
            )
            progress = await on_a.event("upload.progress", timeout=10)
        assert progress["offset"] == len(image)
        await a.stop(signal.SIGKILL)  # right after the final upload.progress
    killed = time.monotonic()

    async with ws_session(b.ws, user["access_token"]) as on_b:
        joined = await on_b.command("subscribe", channel=channel)
        assert joined["ok"], joined
        status = await on_b.command("upload.status", analysis_id=aid)
        assert (status["offset"], status["size"]) == (len(image), len(image))
        outcome = await _outcome(on_b, aid, deadline=killed + TAKEOVER_BOUND)
        print(
            f"\n[measured] analysis finished on the other node {time.monotonic() - killed:.2f} s after SIGKILL"
        )
        assert outcome["event"] == "analysis.result", outcome
        # The dead node's slot is free: a new analysis is admitted (the limit is 1).
        other = coffee_jpeg()
        again = await on_b.command(
            "analysis.start",
            kind="facial",
            content_type="image/jpeg",
            size=len(other),
            sha256=sha(other),
        )
        assert again["ok"], again


async def _outcome(client: Client, analysis_id: str, deadline: float) -> dict[str, Any]:
    """The analysis' terminal event (either channel), waiting until ``deadline`` at most."""
    while True:
        event = await client.event(None, timeout=max(0.01, deadline - time.monotonic()))
        if event.get("analysis_id") == analysis_id and event["event"] in (
            "analysis.result",
            "analysis.error",
        ):
            return event
