"""Helpers for the operations tests (metrics, admin, cache, browser): accounts and admins made
through the real REST API, promotion to admin in the real database, socket frames."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from synthia_rt.store.tables import User
from tests.conftest import unique_email

PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: httpx.AsyncClient, base: str = "") -> dict[str, Any]:
    """A new account through ``POST /auth/register``; returns the session body."""
    email = unique_email()
    r = await client.post(
        f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    body["email"] = email
    return body


async def login(client: httpx.AsyncClient, email: str, base: str = "") -> dict[str, Any]:
    r = await client.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def promote_in_process(user_id: str) -> None:
    """Make a user admin in the database the in-process app uses (its Piccolo engine)."""
    await User.update({User.role: "admin"}).where(User.id == uuid.UUID(user_id)).run()


async def promote_in_postgres(pg_url: str, user_id: str) -> None:
    """Make a user admin in the PostgreSQL database that real nodes share."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(user_id))
    finally:
        await conn.close()


async def admin_in_process(client: httpx.AsyncClient) -> dict[str, Any]:
    """Register, promote, and log in again so the access token carries the admin role."""
    account = await register(client)
    await promote_in_process(account["user"]["id"])
    session = await login(client, account["email"])
    assert session["user"]["role"] == "admin"
    return session


async def admin_on_nodes(client: httpx.AsyncClient, base: str, pg_url: str) -> dict[str, Any]:
    account = await register(client, base)
    await promote_in_postgres(pg_url, account["user"]["id"])
    session = await login(client, account["email"], base)
    assert session["user"]["role"] == "admin"
    session["email"] = account["email"]
    return session


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``, in a Prometheus
    exposition (0 when no such series exists yet)."""
    want = labels or {}
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in want.items())
    )


async def open_socket(ws_url: str, token: str) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect the way browsers do (token in the subprotocol list); returns session.ready."""
    ws = await connect(ws_url, subprotocols=["synthia.v1", f"bearer.{token}"])  # type: ignore[list-item]
    ready = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ready["event"] == "session.ready", ready
    return ws, ready


async def command(ws: ClientConnection, cid: int, op: str, **fields: Any) -> dict[str, Any]:
    """Send a command and return its reply, skipping any events that arrive first."""
    await ws.send(orjson.dumps({"id": cid, "op": op, **fields}).decode())
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("id") == cid and "ok" in frame:
            reply: dict[str, Any] = frame
            return reply


async def next_event(ws: ClientConnection, name: str, timeout: float = 15.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("event") == name:
                event: dict[str, Any] = frame
                return event

    return await asyncio.wait_for(wait(), timeout)
