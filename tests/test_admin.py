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
from tests.rest_helpers import add_analysis

Pair = tuple[Any, httpx.AsyncClient]


def _admin_requests(user_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/api/v1/admin/notifications", {"all": True, "title": "x"}),
        ("POST", f"/api/v1/admin/users/{user_id}/block", None),
        ("POST", f"/api/v1/admin/users/{user_id}/unblock", None),
        ("GET", "/api/v1/admin/audit", None),
        ("GET", "/api/v1/admin/users?q=u-", None),
    ]


async def test_admin_endpoints_refuse_anonymous_and_non_admins(app_client: Pair) -> None:
    _, client = app_client
    user = await register(client)
    victim = await register(client)
    for method, path, body in _admin_requests(victim["user"]["id"]):
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, path
        refused = await client.request(
            method, path, json=body, headers=bearer(user["access_token"])
        )
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden"
    # The refused block changed nothing: the victim still logs in.
    r = await client.post(
        "/api/v1/auth/login", json={"email": victim["email"], "password": PASSWORD}
    )
    assert r.status_code == 200


async def test_notification_to_one_user_is_persisted_and_audited(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    user = await register(client)
    sent = await client.post(
        "/api/v1/admin/notifications",
        json={
            "user_id": user["user"]["id"],
            "kind": "promo",
            "title": "Hello",
            "body": "New palettes",
        },
        headers=bearer(admin["access_token"]),
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["target"] == user["user"]["id"]
    inbox = await client.get("/api/v1/notifications", headers=bearer(user["access_token"]))
    assert [(n["title"], n["kind"], n["body"]) for n in inbox.json()["items"]] == [
        ("Hello", "promo", "New palettes")
    ]

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
    r = await client.post(
        "/api/v1/admin/notifications",
        json={"all": True, "title": "Maintenance"},
        headers=bearer(admin["access_token"]),
    )
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
    assert (
        await client.get("/api/v1/history", headers=bearer(user["access_token"]))
    ).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}
    )
    assert refreshed.status_code in (401, 403)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert login.status_code == 403 and login.json()["error"]["code"] == "account_blocked"

    r = await client.post(f"/api/v1/admin/users/{uid}/unblock", headers=headers)
    assert r.status_code == 200 and r.json()["active"] is True
    login = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
    )
    assert login.status_code == 200

    actions = [
        a["action"]
        for a in (await client.get("/api/v1/admin/audit", headers=headers)).json()["items"]
    ]
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
            r = await client.post(
                f"/api/v1/admin/users/{user['user']['id']}/{action}", headers=headers
            )
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
    assert (
        await client.get("/api/v1/admin/audit", params={"limit": 0}, headers=headers)
    ).status_code == 422


# -- finding users ----------------------------------------------------------------------------------
async def _account(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    user: dict[str, Any] = r.json()["user"]
    return user


async def _search(client: httpx.AsyncClient, token: str, **params: Any) -> httpx.Response:
    return await client.get("/api/v1/admin/users", params=params, headers=bearer(token))


async def test_admin_finds_users_by_email_or_id_prefix(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    token = admin["access_token"]
    tag = uuid.uuid4().hex[:10]
    older = await _account(client, f"find{tag}-ada@example.com")
    newer = await _account(client, f"find{tag}-bob@example.com")
    await _account(client, f"other{tag}@example.com")
    await add_analysis(older["id"])
    await add_analysis(older["id"], kind="chromatic")

    r = await _search(client, token, q=f"  FIND{tag.upper()}")  # any case, outer spaces ignored
    assert r.status_code == 200, r.text
    page = r.json()
    assert [u["id"] for u in page["items"]] == [newer["id"], older["id"]]  # newest first
    assert page["next_cursor"] is None
    first = page["items"][1]
    assert first["email"] == f"find{tag}-ada@example.com"
    assert (first["role"], first["active"], first["blocked"]) == ("user", True, False)
    assert (first["open_sockets"], first["analyses"]) == (0, 2)
    assert "password_hash" not in r.text

    # An id prefix, with or without its dashes and in any case.
    for q in (older["id"][:8], older["id"][:13].upper(), older["id"].replace("-", "")[:12]):
        found = (await _search(client, token, q=q)).json()["items"]
        assert older["id"] in [u["id"] for u in found], q
        assert all(
            u["id"].replace("-", "").startswith(q.replace("-", "").lower())
            or u["email"].startswith(q.lower())
            for u in found
        )

    # Blocking shows in the result.
    assert (
        await client.post(f"/api/v1/admin/users/{older['id']}/block", headers=bearer(token))
    ).status_code == 200
    found = (await _search(client, token, q=f"find{tag}-ada")).json()["items"]
    assert [(u["id"], u["active"], u["blocked"]) for u in found] == [(older["id"], False, True)]


async def test_user_search_treats_like_wildcards_literally(app_client: Pair) -> None:
    _, client = app_client
    admin = await admin_in_process(client)
    token = admin["access_token"]
    tag = uuid.uuid4().hex[:10]
    underscore = await _account(client, f"w{tag}_1@example.com")
    await _account(client, f"w{tag}a1@example.com")
    percent = await _account(client, f"w{tag}%2@example.com")
    await _account(client, f"w{tag}zz2@example.com")
    backslash = await _account(client, f"w{tag}\\3@example.com")

    async def ids(q: str) -> list[str]:
        r = await _search(client, token, q=q)
        assert r.status_code == 200, r.text
        return [u["id"] for u in r.json()["items"]]

    assert await ids(f"w{tag}_") == [underscore["id"]]
    assert await ids(f"w{tag}%") == [percent["id"]]
    assert await ids(f"w{tag}\\") == [backslash["id"]]
    assert await ids(f"w{tag}\\_") == []
    assert len(await ids(f"w{tag}")) == 5
    too_long = await _search(client, token, q="a" * 321)
    assert too_long.status_code == 422
    assert too_long.json()["error"]["field"] == "q"


async def test_user_search_pages_and_is_audited(pg_app: Pair) -> None:
    _, client = pg_app
    admin = await admin_in_process(client)
    token = admin["access_token"]
    tag = uuid.uuid4().hex[:10]
    users = [await _account(client, f"page{tag}-{i}@example.com") for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"q": f"page{tag}", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await _search(client, token, **params)
        assert r.status_code == 200, r.text
        seen.extend(u["id"] for u in r.json()["items"])
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [u["id"] for u in reversed(users)]  # newest first, no gaps, no repeats
    bad = await _search(client, token, q=f"page{tag}", cursor="garbage!")
    assert bad.status_code == 422

    audit = await client.get(
        "/api/v1/admin/audit", params={"action": "admin.user.search"}, headers=bearer(token)
    )
    mine = [e for e in audit.json()["items"] if e["actor_id"] == admin["user"]["id"]]
    assert [e["detail"] for e in mine] == [
        {"q_length": 14, "results": 1, "continued": True},
        {"q_length": 14, "results": 2, "continued": True},
        {"q_length": 14, "results": 2, "continued": False},
    ]
    assert all(e["ip"] == "127.0.0.1" and e["subject_id"] is None for e in mine)
    assert tag not in audit.text  # the query may be an email: only its length is kept


# -- real sockets on a real node ---------------------------------------------------------------------
@pytest.fixture
async def node_pair(node_env: dict[str, str]) -> Any:
    node = await start_node({**node_env, "METRICS_INTERVAL": "0.3"})
    try:
        async with httpx.AsyncClient(base_url=node.http) as client:
            yield node, client
    finally:
        await node.stop()


async def test_admin_socket_receives_snapshots_and_users_are_forbidden(
    node_pair: Any, pg_url: str
) -> None:
    node, client = node_pair
    admin = await admin_on_nodes(client, "", pg_url)
    user = await register(client)

    user_ws, _ = await open_socket(node.ws, user["access_token"])
    refused = await command(user_ws, 1, "subscribe", channel="admin:metrics")
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"

    admin_ws, ready = await open_socket(node.ws, admin["access_token"])
    reply = await command(admin_ws, 1, "subscribe", channel="admin:metrics")
    assert reply["ok"] is True
    # A snapshot taken just before our socket opened can still arrive after the subscribe
    # (it was on its way through Redis): the next one counts us.
    snapshot = await next_event(admin_ws, "metrics.snapshot")
    if snapshot["sockets"] == 1:
        snapshot = await next_event(admin_ws, "metrics.snapshot")
    assert snapshot["channel"] == "admin:metrics"
    assert snapshot["node"] == ready["node"]
    assert snapshot["sockets"] == 2  # the user's socket and ours
    assert snapshot["backends"] == {"redis": "ok", "postgres": "ok"}
    for key in (
        "frames_in_per_s",
        "frames_out_per_s",
        "analyses_in_flight",
        "latency_ms",
        "cache",
        "error_rate",
    ):
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
    found = await _search(client, admin["access_token"], q=user["user"]["id"])  # presence counts it
    assert [(u["id"], u["open_sockets"]) for u in found.json()["items"]] == [
        (user["user"]["id"], 1)
    ]
    r = await client.post(
        f"/api/v1/admin/users/{user['user']['id']}/block", headers=bearer(admin["access_token"])
    )
    assert r.status_code == 200
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
