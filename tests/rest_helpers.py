"""Helpers for tests that drive the REST shim: accounts, bearer headers, direct row inserts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from synthia_rt.store.tables import Analysis
from tests.conftest_helpers import unique_email

PASSWORD = "correct horse battery staple"
API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    """Register a fresh account; returns the session body (tokens + user)."""
    r = await client.post(
        f"{API}/auth/register",
        json={"email": email or unique_email(), "password": password, **extra},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"email": email, "password": password})


def record_revocations(app: Any) -> list[str]:
    """Wrap the hub's ``revoke_user`` (still called) and return the list of users it closes."""
    hub = app.state.runtime.hub
    closed: list[str] = []
    real = hub.revoke_user

    async def recording_revoke(user_id: str) -> None:
        closed.append(user_id)
        await real(user_id)

    hub.revoke_user = recording_revoke
    return closed


async def add_analysis(
    user_id: str, kind: str = "facial", minutes_ago: int = 0, **fields: Any
) -> str:
    """Insert an analysis row as the analysis service would leave it (test data set-up)."""
    aid = uuid.uuid4()
    row = Analysis(
        id=aid,
        user=uuid.UUID(user_id),
        kind=kind,
        status=fields.pop("status", "done"),
        result=fields.pop("result", {"face_shape": "oval"}),
        model=fields.pop("model", "local"),
        created_at=fields.pop("created_at", datetime.now(UTC) - timedelta(minutes=minutes_ago)),
        **fields,
    )
    await Analysis.insert(row).run()
    return str(aid)
