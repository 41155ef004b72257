"""Two real uvicorn processes sharing one Redis and one PostgreSQL behave as one server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as aioredis

from synthia_rt.broker.redis import RedisBroker
from synthia_rt.settings import Settings
from tests.conftest import REDIS_URL
from tests.nodes import Node, start_node
from tests.redis_server import private_redis
from tests.wsclient import register, ws_session


@pytest.fixture
async def publisher(namespace: str) -> AsyncIterator[RedisBroker]:
    """A third participant publishing through the real broker (as an admin tool would)."""
    broker = RedisBroker(REDIS_URL, Settings(redis_namespace=namespace), "test-publisher")
    broker.set_handlers(lambda e: None, lambda s: None, lambda c: None)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def make_admin(pg_url: str, http_base: str) -> dict[str, Any]:
    """Register a user, promote it in the database, and log in again for an admin token."""
    user = await register(http_base, password="admin password 123")
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(user["user"]["id"])
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=http_base) as http:
        r = await http.post(
            "/api/v1/auth/login",
            json={"email": user["user"]["email"], "password": "admin password 123"},
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


async def test_notification_sent_through_a_reaches_b(
    two_nodes: tuple[Node, Node], pg_url: str
) -> None:
    a, b = two_nodes
    admin = await make_admin(pg_url, a.http)
    user = await register(a.http)
    async with ws_session(b.ws, user["access_token"]) as on_b:
        async with httpx.AsyncClient(base_url=a.http) as http:
            r = await http.post(
                "/api/v1/admin/notifications",
                json={
                    "user_id": user["user"]["id"],
                    "kind": "info",
                    "title": "hello from A",
                    "body": "hi",
                },
                headers={"Authorization": f"Bearer {admin['access_token']}"},
            )
            assert r.status_code in (200, 201), r.text
        event = await on_b.event("notification")
        assert event["title"] == "hello from A" and event["channel"] == f"user:{user['user']['id']}"
    async with httpx.AsyncClient(base_url=b.http) as http:  # persisted: visible offline, from B
        r = await http.get(
            "/api/v1/notifications", headers={"Authorization": f"Bearer {user['access_token']}"}
        )
        assert "hello from A" in r.text


async def test_fan_out_and_recovery_across_nodes(
    two_nodes: tuple[Node, Node], publisher: RedisBroker
) -> None:
    a, b = two_nodes
    user = await register(a.http)
    channel = f"user:{user['user']['id']}"
    async with (
        ws_session(a.ws, user["access_token"]) as on_a,
        ws_session(b.ws, user["access_token"]) as on_b,
    ):
        start = await on_a.command("subscribe", channel=channel)
        first = await publisher.publish(channel, {"event": "notification", "title": "one"})
        got_a, got_b = await on_a.event("notification"), await on_b.event("notification")
        assert got_a == got_b
        assert got_a["offset"] == first.offset == start["offset"] + 1
        since = {"offset": got_a["offset"], "epoch": got_a["epoch"]}
    # Dropped: three events are published while nobody listens.
    missed = [
        await publisher.publish(channel, {"event": "notification", "title": f"m{i}"})
        for i in range(3)
    ]
    # Reconnect to the OTHER node with since: exactly the missed events, in order.
    async with ws_session(b.ws, user["access_token"]) as again:
        reply = await again.command("subscribe", channel=channel, since=since)
        assert reply["recovered"] is True and reply["offset"] == missed[-1].offset
        replayed = [await again.event("notification") for _ in missed]
        assert [e["title"] for e in replayed] == ["m0", "m1", "m2"]
        assert [e["offset"] for e in replayed] == [m.offset for m in missed]
        live = await publisher.publish(channel, {"event": "notification", "title": "live"})
        after = await again.event("notification")
        assert (after["title"], after["offset"]) == ("live", live.offset)
        with pytest.raises(TimeoutError):  # and nothing twice
            await again.event("notification", timeout=0.3)


async def test_logout_on_a_closes_sockets_on_b_with_4010(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    user = await register(a.http)
    async with (
        ws_session(b.ws, user["access_token"]) as on_b,
        ws_session(b.ws, user["access_token"]) as on_b2,
    ):
        async with httpx.AsyncClient(base_url=a.http) as http:
            started = time.monotonic()
            r = await http.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {user['access_token']}"}
            )
            assert r.status_code in (200, 204)
        codes = await asyncio.gather(on_b.closed_with(timeout=1.0), on_b2.closed_with(timeout=1.0))
        assert codes == [4010, 4010]
        assert time.monotonic() - started < 1.5  # "within a second", with slack for the REST call


async def test_graceful_shutdown_sends_1001(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    user = await register(a.http)
    async with ws_session(b.ws, user["access_token"]) as on_b:
        stop = asyncio.ensure_future(b.stop())
        assert await on_b.closed_with(timeout=10) == 1001
        await stop
    async with ws_session(a.ws, user["access_token"]) as on_a:  # the other node carries on
        assert (await on_a.command("ping"))["ok"]


async def test_redis_restart_under_live_sockets(node_env: dict[str, str], tmp_path: Path) -> None:
    """Redis dies under two nodes: sockets stay open; when Redis returns, events flow again."""
    async with private_redis(tmp_path / "redis") as server:
        env = {**node_env, "REDIS_URL": server.url}
        a = await start_node(env)
        b = await start_node(env)
        try:
            user = await register(a.http)
            channel = f"user:{user['user']['id']}"
            async with (
                ws_session(a.ws, user["access_token"]) as on_a,
                ws_session(b.ws, user["access_token"]) as on_b,
            ):
                await server.kill()
                await asyncio.sleep(1.0)
                assert (await on_a.command("ping"))["ok"] and (await on_b.command("ping"))["ok"]
                # While Redis is down, what needs it fails loudly and temporarily; the socket stays.
                down = await on_a.command(
                    "subscribe", channel=channel, since={"offset": 0, "epoch": "x"}, timeout=15
                )
                assert down["ok"] is False
                assert (down["error"]["code"], down["error"]["temporary"]) == ("unavailable", True)
                await server.start()
                publisher = RedisBroker(
                    server.url, Settings(redis_namespace=node_env["REDIS_NAMESPACE"]), "t"
                )
                publisher.set_handlers(lambda e: None, lambda s: None, lambda c: None)
                await publisher.start()
                try:
                    # The nodes re-subscribe with backoff; keep publishing until both deliver.
                    got: dict[str, dict[str, Any]] = {}
                    for attempt in range(60):
                        await publisher.publish(
                            channel, {"event": "notification", "title": f"back {attempt}"}
                        )
                        for name, client in (("a", on_a), ("b", on_b)):
                            if name not in got:
                                try:
                                    got[name] = await client.event("notification", timeout=0.25)
                                except TimeoutError:
                                    pass
                        if len(got) == 2:
                            break
                    assert set(got) == {"a", "b"}, "events did not flow again after Redis returned"
                finally:
                    await publisher.stop()
                assert (
                    on_a.conn.protocol.close_rcvd is None and on_b.conn.protocol.close_rcvd is None
                )
        finally:
            await b.stop()
            await a.stop()


async def test_a_revocation_whose_signal_was_lost_closes_sockets_after_the_reconnect(
    node_env: dict[str, str], tmp_path: Path
) -> None:
    """Revocation signals travel by pub/sub, which drops what is sent while a node's connection
    is down. So a node re-checks its sockets' tokens once its pub/sub connection is back: a
    token revoked meanwhile (here written to the store with no signal at all) is closed 4010,
    and a valid one stays open."""
    async with private_redis(tmp_path / "redis") as server:
        env = {**node_env, "REDIS_URL": server.url}
        b = await start_node(env)
        try:
            doomed, kept = await register(b.http), await register(b.http)
            claims = jwt.decode(doomed["access_token"], options={"verify_signature": False})
            async with (
                ws_session(b.ws, doomed["access_token"]) as on_doomed,
                ws_session(b.ws, kept["access_token"]) as on_kept,
            ):
                direct = aioredis.Redis.from_url(server.url)
                try:
                    # What a logout writes, without the signal that would close the socket.
                    await direct.set(f"{node_env['REDIS_NAMESPACE']}:revoked:{claims['jti']}", b"1")
                    assert (await on_doomed.command("ping"))["ok"]  # nothing told the node yet
                    await direct.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
                finally:
                    await direct.aclose()
                assert await on_doomed.closed_with(timeout=10.0) == 4010
                assert (await on_kept.command("ping"))["ok"]
        finally:
            await b.stop()
