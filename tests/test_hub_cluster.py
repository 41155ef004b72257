"""The hub across real nodes: revocation no client can dodge (issue 9.2), and delivery across
a Redis restart (issue 10.2), with uvicorn processes and a private redis-server."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis.asyncio as aioredis

from tests.nodes import Node
from tests.wsclient import Client, register, ws_session


async def _dodge(client: Client, user_id: str) -> None:
    """What a client that wants to outlive its revocation does."""
    reply = await client.command("unsubscribe", channel=f"user:{user_id}")
    assert reply["ok"] is True


async def test_unsubscribing_from_the_user_channel_does_not_dodge_logout(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    user = await register(a.http)
    async with ws_session(b.ws, user["access_token"]) as on_b:
        await _dodge(on_b, user["user"]["id"])
        async with httpx.AsyncClient(base_url=a.http) as http:
            started = time.monotonic()
            r = await http.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {user['access_token']}"}
            )
            assert r.status_code in (200, 204), r.text
        assert await on_b.closed_with(timeout=1.0) == 4010
        assert time.monotonic() - started < 1.5  # "within a second", with slack for the REST call


async def test_deleting_the_account_closes_a_dodging_socket_and_leaves_no_key(
    two_nodes: tuple[Node, Node], namespace: str, redis_client: aioredis.Redis
) -> None:
    a, b = two_nodes
    user = await register(a.http)
    user_id = user["user"]["id"]

    async def keys_of_user() -> list[bytes]:
        return [k async for k in redis_client.scan_iter(match=f"{namespace}:*{user_id}*", count=1000)]

    async with ws_session(b.ws, user["access_token"]) as on_b:
        await _dodge(on_b, user_id)
        assert await keys_of_user() != []  # presence at least: the scan sees this user's keys
        async with httpx.AsyncClient(base_url=a.http) as http:
            r = await http.delete(
                "/api/v1/users/profile", headers={"Authorization": f"Bearer {user['access_token']}"}
            )
            assert r.status_code == 204, r.text
        assert await on_b.closed_with(timeout=1.0) == 4010
    # B has cleaned up after the socket (presence removals are flushed every 0.5 s); nothing of
    # the erased user came back.
    await asyncio.sleep(1.5)
    assert await keys_of_user() == []

