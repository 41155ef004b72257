"""Admin REST (notifications, block/unblock, audit) and the admin:metrics channel on real sockets."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.nodes import start_node
from tests.opshelpers import (
    PASSWORD,
    admin_in_process,
    admin_on_nodes,
    bearer,
    command,
    next_event,
    open_socket,
    register,
)

Pair = tuple[Any, httpx.AsyncClient]


def _admin_requests(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/api/v1/admin/notifications", {"all": True, "title": "x"}),
        ("POST", f"/api/v1/admin/users/{user_id}/block", None),
        ("POST", f"/api/v1/admin/users/{user_id}/unblock", None),
        ("GET", "/api/v1/admin/audit", None),
    ]


async def test_admin_endpoints_refuse_anonymous_and_non_admins(app_client: Pair) -> None:
    _, client = app_client
    user = await register(client)
    victim = await register(client)
    for method, path, body in _admin_requests(victim["user"]["id"]):
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, path
        refused = await client.request(method, path, json=body, headers=bearer(user["access_token"]))
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden"
    # The refused block changed nothing: the victim still logs in.
    r = await client.post("/api/v1/auth/login", json={"email": victim["email"], "password": PASSWORD})
    assert r.status_code == 200


async def test_notification_to_one_user_is_persisted_and_audited(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    user = await register(client)
    sent = await client.post(
        "/api/v1/admin/notifications",
        json={"user_id": user["user"]["id"], "kind": "promo", "title": "Hello", "body": "New palettes"},
        headers=bearer(admin["access_token"]),
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["target"] == user["user"]["id"]
    inbox = await client.get("/api/v1/notifications", headers=bearer(user["access_token"]))
    assert [(n["title"], n["kind"], n["body"]) for n in inbox.json()["items"]] == [("Hello", "promo", "New palettes")]

    audit = await client.get("/api/v1/admin/audit", headers=bearer(admin["access_token"]))
    newest = audit.json()["items"][0]
    assert newest["action"] == "admin.notification"
    assert newest["actor_id"] == admin["user"]["id"] and newest["subject_id"] == user["user"]["id"]
    assert newest["detail"]["kind"] == "promo"
    assert "New palettes" not in audit.text  # the body is content, not audit detail


async def test_notification_body_is_validated(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    cases = [
        ({"title": "no target"}, 422),
        ({"all": True, "user_id": str(uuid.uuid4()), "title": "both targets"}, 422),
        ({"all": True, "title": ""}, 422),
        ({"all": True, "title": "x", "kind": "Bad Kind!"}, 422),
        ({"all": "yes", "title": "x"}, 400),
        ({"user_id": str(uuid.uuid4()), "title": "nobody"}, 404),
    ]
    for body, status in cases:
        r = await client.post("/api/v1/admin/notifications", json=body, headers=headers)
        assert r.status_code == status, (body, r.text)


async def test_broadcast_notification_reaches_every_inbox(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    users = [await register(client) for _ in range(2)]
    r = await client.post("/api/v1/admin/notifications", json={"all": True, "title": "Maintenance"},
                          headers=bearer(admin["access_token"]))
    assert r.status_code == 201 and r.json()["target"] == "all"
    for user in users:
        inbox = await client.get("/api/v1/notifications", headers=bearer(user["access_token"]))
        assert [n["title"] for n in inbox.json()["items"]] == ["Maintenance"]


async def test_block_revokes_tokens_refuses_login_and_unblock_restores(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    user = await register(client)
    uid = user["user"]["id"]
    headers = bearer(admin["access_token"])

    r = await client.post(f"/api/v1/admin/users/{uid}/block", headers=headers)
    assert r.status_code == 200 and r.json() == {"user_id": uid, "active": False}
    assert (await client.get("/api/v1/history", headers=bearer(user["access_token"]))).status_code == 401
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refreshed.status_code in (401, 403)
    login = await client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert login.status_code == 403 and login.json()["error"]["code"] == "account_blocked"

    r = await client.post(f"/api/v1/admin/users/{uid}/unblock", headers=headers)
    assert r.status_code == 200 and r.json()["active"] is True
    login = await client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert login.status_code == 200

    actions = [a["action"] for a in (await client.get("/api/v1/admin/audit", headers=headers)).json()["items"]]
    assert actions.index("admin.user.unblock") < actions.index("admin.user.block")  # newest first


async def test_block_refuses_unknown_users_and_self(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    for target in (str(uuid.uuid4()), "not-a-uuid"):
        r = await client.post(f"/api/v1/admin/users/{target}/block", headers=headers)
        assert r.status_code == 404
    r = await client.post(f"/api/v1/admin/users/{admin['user']['id']}/block", headers=headers)
    assert r.status_code == 422
    assert (await client.get("/api/v1/history", headers=headers)).status_code == 200


async def test_audit_pages_newest_first_without_gaps_or_repeats(pg_app: Pair) -> None:
    _, client = pg_app
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    users = [await register(client) for _ in range(5)]
    for user in users:  # ten audited actions, in a known order
        for action in ("block", "unblock"):
            r = await client.post(f"/api/v1/admin/users/{user['user']['id']}/{action}", headers=headers)
            assert r.status_code == 200
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "action": "admin.user.block"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/admin/audit", params=params, headers=headers)).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len({e["id"] for e in seen}) == len(seen)
    # The database is shared by the whole test run: look at this admin's entries only.
    mine = [e for e in seen if e["actor_id"] == admin["user"]["id"]]
    assert [e["subject_id"] for e in mine] == [u["user"]["id"] for u in reversed(users)]
    stamps = [e["created_at"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    bad = await client.get("/api/v1/admin/audit", params={"cursor": "garbage!"}, headers=headers)
    assert bad.status_code == 422
    assert (await client.get("/api/v1/admin/audit", params={"limit": 0}, headers=headers)).status_code == 422


# -- real sockets on a real node ---------------------------------------------------------------------
@pytest.fixture
async def node_pair(node_env: dict[str, str]) -> Any:
    node = await start_node({**node_env, "METRICS_INTERVAL": "0.3"})
    try:
        async with httpx.AsyncClient(base_url=node.http) as client:
            yield node, client
    finally:
        await node.stop()


async def test_admin_socket_receives_snapshots_and_users_are_forbidden(node_pair: Any, pg_url: str) -> None:
    node, client = node_pair
    admin = await admin_on_nodes(client, "", pg_url)
    user = await register(client)

    user_ws, _ = await open_socket(node.ws, user["access_token"])
    refused = await command(user_ws, 1, "subscribe", channel="admin:metrics")
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"

    admin_ws, ready = await open_socket(node.ws, admin["access_token"])
    reply = await command(admin_ws, 1, "subscribe", channel="admin:metrics")
    assert reply["ok"] is True
    snapshot = await next_event(admin_ws, "metrics.snapshot")
    assert snapshot["channel"] == "admin:metrics"
    assert snapshot["node"] == ready["node"]
    assert snapshot["sockets"] == 2  # the user's socket and ours
    assert snapshot["backends"] == {"redis": "ok", "postgres": "ok"}
    for key in ("frames_in_per_s", "frames_out_per_s", "analyses_in_flight", "latency_ms", "cache", "error_rate"):
        assert key in snapshot
    # The user's socket never saw a snapshot: the refusal leaked nothing.
    await user_ws.send('{"id": 2, "op": "ping"}')
    frames = []
    while True:
        frame = await asyncio.wait_for(user_ws.recv(), 10)
        frames.append(frame)
        if '"id":2' in frame.replace(" ", ""):
            break
    assert not any("metrics.snapshot" in f for f in frames)
    await user_ws.close()
    await admin_ws.close()


async def test_block_closes_the_users_sockets_with_4010(node_pair: Any, pg_url: str) -> None:
    node, client = node_pair
    admin = await admin_on_nodes(client, "", pg_url)
    user = await register(client)
    ws, _ = await open_socket(node.ws, user["access_token"])
    r = await client.post(f"/api/v1/admin/users/{user['user']['id']}/block", headers=bearer(admin["access_token"]))
    assert r.status_code == 200
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
