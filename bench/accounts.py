"""Bench users: registered through the public REST API, like any client would.

Registration hashes a password (Argon2id, deliberately expensive), so a run registers
``ceil(sockets / sockets_per_user)`` users once, up front, and reuses their access tokens across
scenarios. It is not part of any timed figure.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass

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
