"""Bench users: registered through the public REST API, like any client would.

Registration hashes a password (Argon2id, deliberately expensive), so a run registers
``ceil(sockets / sockets_per_user)`` users once, up front, and reuses their access tokens across
scenarios. It is not part of any timed figure.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

PASSWORD = "bench-password-" + "x" * 8


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    user_id: str
    token: str


class RegistrationError(RuntimeError):
    pass


async def register_one(client: httpx.AsyncClient, base_url: str, tag: str) -> Account:
    email = f"bench-{tag}-{secrets.token_hex(6)}@example.com"
    for attempt in range(5):
        r = await client.post(
            f"{base_url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        if r.status_code == 201:
            body = r.json()
            return Account(email, str(body["user"]["id"]), str(body["access_token"]))
        if r.status_code in (429, 503):
            await asyncio.sleep(float(r.headers.get("retry-after", 1 + attempt)))
            continue
        raise RegistrationError(f"register answered {r.status_code}: {r.text[:200]}")
    raise RegistrationError("register kept refusing (rate limited)")


async def register_many(
    base_urls: list[str],
    count: int,
    concurrency: int = 16,
    on_done: Callable[[], None] | None = None,
) -> list[Account]:
    """Register ``count`` users, spreading the requests over ``base_urls``."""
    gate = asyncio.Semaphore(concurrency)
    tag = secrets.token_hex(3)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> Account:
            async with gate:
                account = await register_one(client, base_urls[i % len(base_urls)], tag)
            if on_done is not None:
                on_done()
            return account

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def sockets_plan(
    accounts: list[Account], nodes: list[str], sockets: int, per_user: int
) -> list[tuple[str, str]]:
    """``(node_url, token)`` for ``sockets`` sockets: user i holds sockets i*per_user…, nodes alternate."""
    needed = -(-sockets // per_user)
    if len(accounts) < needed:
        raise ValueError(
            f"{sockets} sockets at {per_user} per user need {needed} users, have {len(accounts)}"
        )
    return [(nodes[i % len(nodes)], accounts[i // per_user].token) for i in range(sockets)]


USER_COLUMNS = [
    "id", "email", "password_hash", "display_name", "role", "active",
    "tokens_valid_after", "created_at", "updated_at",
]  # fmt: skip


async def copy_users(conn: Any, users: Iterable[tuple[uuid.UUID, str, datetime]]) -> None:
    """Insert ``(id, email, created_at)`` users straight into PostgreSQL with COPY, for scenarios
    that need thousands of accounts without paying Argon2 for each; no password ("!") logs in."""
    rows = [(uid, email, "!", "", "user", True, None, at, at) for uid, email, at in users]
    await conn.copy_records_to_table("users", records=rows, columns=USER_COLUMNS)
