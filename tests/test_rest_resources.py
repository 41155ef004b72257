"""History, analyses, feedback and notifications: pagination, filters, and no access to others'."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from synthia_rt.errors import AppError, ErrorCode, counted
from synthia_rt.kv import create_kv
from synthia_rt.store import analyses, notifications
from synthia_rt.store.engine import build_engine
from synthia_rt.store.tables import Broadcast, Notification, User
from tests.opshelpers import admin_in_process
from tests.rest_helpers import API, PASSWORD, add_analysis, bearer, register

Pair = tuple[Any, httpx.AsyncClient]


async def _make_admin(user_id: str) -> None:
    await User.update({User.role: "admin"}).where(User.id == uuid.UUID(user_id)).run()


async def _admin_session(client: httpx.AsyncClient) -> dict[str, Any]:
    """Register, promote, and log in again so the access token carries the admin role."""
    session = await register(client)
    await _make_admin(session["user"]["id"])
    r = await client.post(
        f"{API}/auth/login", json={"email": session["user"]["email"], "password": PASSWORD}
    )
    assert r.json()["user"]["role"] == "admin"
    body: dict[str, Any] = r.json()
    return body


async def test_history_pages_newest_first_with_a_cursor(app_client: Pair) -> None:
    _, client = app_client
    me = await register(client)
    other = await register(client)
    uid = me["user"]["id"]
    ids = [
        await add_analysis(uid, kind="facial" if i % 2 else "chromatic", minutes_ago=i)
        for i in range(7)
    ]
    instant = datetime.now(UTC) - timedelta(hours=2)
    same_instant = [await add_analysis(uid, created_at=instant) for _ in range(2)]  # ties: by id
    await add_analysis(other["user"]["id"])
    headers = bearer(me["access_token"])

    seen: list[str] = []
    cursor: str | None = None
    pages = 0  # pages of 4: the second ends between the two tied rows
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"{API}/history", headers=headers, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 4
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen[:7] == ids  # newest first
    assert seen[7:] == sorted(same_instant, reverse=True)
    assert len(set(seen)) == 9  # nothing twice, nothing of the other user

    facial = (
        await client.get(f"{API}/history", headers=headers, params={"kind": "facial", "limit": 100})
    ).json()
    assert [i["id"] for i in facial["items"]] == [ids[i] for i in (1, 3, 5)] + [i for i in seen[7:]]
    assert all(i["kind"] == "facial" for i in facial["items"])


async def test_history_refuses_bad_parameters(app_client: Pair) -> None:
    _, client = app_client
    headers = bearer((await register(client))["access_token"])
    for params, field in (
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"kind": "palmistry"}, "kind"),
    ):
        r = await client.get(f"{API}/history", headers=headers, params=params)
        assert r.status_code in (400, 422), params
        assert r.json()["error"]["field"] == field


async def test_analysis_detail_is_owner_or_admin_only(app_client: Pair) -> None:
    _, client = app_client
    owner = await register(client)
    stranger = await register(client)
    admin = await _admin_session(client)
    aid = await add_analysis(owner["user"]["id"], result={"face_shape": "heart"}, status="done")
    mine = await client.get(f"{API}/analyses/{aid}", headers=bearer(owner["access_token"]))
    assert mine.status_code == 200 and mine.json()["result"] == {"face_shape": "heart"}
    theirs = await client.get(f"{API}/analyses/{aid}", headers=bearer(stranger["access_token"]))
    absent = await client.get(
        f"{API}/analyses/{uuid.uuid4()}", headers=bearer(stranger["access_token"])
    )
    garbage = await client.get(
        f"{API}/analyses/not-a-uuid", headers=bearer(stranger["access_token"])
    )
    assert theirs.status_code == absent.status_code == garbage.status_code == 404
    assert theirs.json() == absent.json() == garbage.json()
    assert (
        await client.get(f"{API}/analyses/{aid}", headers=bearer(admin["access_token"]))
    ).status_code == 200


async def test_failed_analysis_shows_its_error(app_client: Pair) -> None:
    _, client = app_client
    me = await register(client)
    aid = await add_analysis(
        me["user"]["id"],
        status="failed",
        result=None,
        error_code="no_face_detected",
        error_message="No face.",
    )
    body = (await client.get(f"{API}/analyses/{aid}", headers=bearer(me["access_token"]))).json()
    assert body["status"] == "failed" and body["result"] is None
    assert body["error"] == {"code": "no_face_detected", "message": "No face."}


async def test_a_failed_analysis_says_its_error_in_the_readers_language(
    app_client: Pair,
) -> None:
    """The row keeps the error as data (msgid, plural, params), not a sentence filled in
    English: a Spanish reader of /history and /analyses/{id} reads it in Spanish, numbers
    and plural forms included; an English reader in English."""
    _, client = app_client
    me = await register(client)
    plain = AppError(ErrorCode.NO_FACE_DETECTED)
    numbered = counted(
        ErrorCode.RATE_LIMITED,
        "At most {n} analysis may run at once; wait for it to finish.",
        "At most {n} analyses may run at once; wait for one to finish.",
        2,
    )
    ids = []
    for error in (plain, numbered):
        aid = await add_analysis(me["user"]["id"], status="running", result=None)
        assert await analyses.mark_failed(uuid.UUID(aid), status="failed", error=error)
        ids.append(aid)
    spanish = {**bearer(me["access_token"]), "Accept-Language": "es"}
    english = {**bearer(me["access_token"]), "Accept-Language": "en"}

    async def errors(headers: dict[str, str]) -> list[Any]:
        one = [(await client.get(f"{API}/analyses/{aid}", headers=headers)).json() for aid in ids]
        listed = {
            item["id"]: item
            for item in (await client.get(f"{API}/history", headers=headers)).json()["items"]
        }
        assert [listed[aid]["error"] for aid in ids] == [body["error"] for body in one]
        return [body["error"] for body in one]

    assert await errors(spanish) == [
        {"code": "no_face_detected", "message": "No se encontró ningún rostro en la imagen."},
        {
            "code": "rate_limited",
            "message": "Solo pueden ejecutarse 2 análisis a la vez; espera a que termine uno.",
        },
    ]
    assert await errors(english) == [
        {"code": "no_face_detected", "message": "No face was found in the image."},
        {
            "code": "rate_limited",
            "message": "At most 2 analyses may run at once; wait for one to finish.",
        },
    ]


async def test_feedback_only_on_ones_own_analyses(app_client: Pair) -> None:
    _, client = app_client
    me = await register(client)
    other = await register(client)
    mine = await add_analysis(me["user"]["id"])
    theirs = await add_analysis(other["user"]["id"])
    headers = bearer(me["access_token"])
    ok = await client.post(
        f"{API}/feedback",
        headers=headers,
        json={"rating": 5, "comment": "great", "analysis_id": mine},
    )
    assert ok.status_code == 201
    assert ok.json()["analysis_id"] == mine and ok.json()["rating"] == 5
    general = await client.post(f"{API}/feedback", headers=headers, json={"rating": 3})
    assert general.status_code == 201 and general.json()["analysis_id"] is None
    foreign = await client.post(
        f"{API}/feedback", headers=headers, json={"rating": 1, "analysis_id": theirs}
    )
    missing = await client.post(
        f"{API}/feedback", headers=headers, json={"rating": 1, "analysis_id": str(uuid.uuid4())}
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    for payload, field in (
        ({"rating": 6}, "rating"),
        ({"rating": 0}, "rating"),
        ({}, "rating"),
        ({"rating": 3, "analysis_id": "nope"}, "analysis_id"),
        ({"rating": 3, "comment": "x" * 2001}, "comment"),
    ):
        r = await client.post(f"{API}/feedback", headers=headers, json=payload)
        assert r.status_code == 422, payload
        assert r.json()["error"]["field"] == field


async def test_feedback_listing_is_own_unless_admin(app_client: Pair) -> None:
    _, client = app_client
    me = await register(client)
    other = await register(client)
    admin = await _admin_session(client)
    for session, rating in ((me, 5), (me, 4), (other, 2)):
        r = await client.post(
            f"{API}/feedback", headers=bearer(session["access_token"]), json={"rating": rating}
        )
        assert r.status_code == 201
    mine = (await client.get(f"{API}/feedback", headers=bearer(me["access_token"]))).json()
    assert [f["rating"] for f in mine["items"]] == [4, 5]
    assert {f["user_id"] for f in mine["items"]} == {me["user"]["id"]}
    everyone = (
        await client.get(
            f"{API}/feedback", headers=bearer(admin["access_token"]), params={"limit": 100}
        )
    ).json()
    authors = {f["user_id"] for f in everyone["items"]}
    assert {me["user"]["id"], other["user"]["id"]} <= authors
    first = (
        await client.get(f"{API}/feedback", headers=bearer(me["access_token"]), params={"limit": 1})
    ).json()
    rest = (
        await client.get(
            f"{API}/feedback",
            headers=bearer(me["access_token"]),
            params={"limit": 1, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [f["rating"] for f in first["items"] + rest["items"]] == [4, 5] and rest[
        "next_cursor"
    ] is None


async def test_notifications_list_and_mark_read(app_client: Pair) -> None:
    app, client = app_client
    me = await register(client)
    other = await register(client)
    uid = me["user"]["id"]
    live = await notifications.create(uid, "info", "First", "one")
    await app.state.runtime.hub.notify(uid, live)
    stored = await notifications.create(uid, "promo", "Second", "two")
    foreign = await notifications.create(other["user"]["id"], "info", "Not yours", "three")
    headers = bearer(me["access_token"])
    page = (await client.get(f"{API}/notifications", headers=headers)).json()
    assert [n["title"] for n in page["items"]] == ["Second", "First"]
    assert all(n["read"] is False for n in page["items"])
    assert page["items"][1]["id"] == live.id

    r = await client.post(f"{API}/notifications/{stored.id}/read", headers=headers)
    assert r.status_code == 200 and r.json()["read"] is True
    unread = (
        await client.get(f"{API}/notifications", headers=headers, params={"unread": "true"})
    ).json()
    assert [n["title"] for n in unread["items"]] == ["First"]

    theirs = await client.post(f"{API}/notifications/{foreign.id}/read", headers=headers)
    absent = await client.post(f"{API}/notifications/{uuid.uuid4()}/read", headers=headers)
    assert theirs.status_code == absent.status_code == 404 and theirs.json() == absent.json()
    still_unread = (
        await client.get(f"{API}/notifications", headers=bearer(other["access_token"]))
    ).json()
    assert still_unread["items"][0]["read"] is False


async def test_a_broadcast_is_one_row_with_per_user_read_state(app_client: Pair) -> None:
    """Issue 12 B: a broadcast stores one row (not one per active user), every user lists
    it with their own read state, and the live event's id is the one mark-read takes."""
    app, client = app_client
    admin = await admin_in_process(client)
    alice, bob = await register(client), await register(client)
    personal = await notifications.create(alice["user"]["id"], "info", "Personal", "p")
    rows_before = await Notification.count().run()
    r = await client.post(
        f"{API}/admin/notifications",
        json={"all": True, "kind": "news", "title": "To all", "body": "b"},
        headers=bearer(admin["access_token"]),
    )
    assert r.status_code == 201, r.text
    sent = r.json()["notification"]
    assert await Notification.count().run() == rows_before  # no per-user rows
    assert await Broadcast.count().where(Broadcast.id == uuid.UUID(sent["id"])).run() == 1
    late = await register(client)  # joined after the broadcast: not theirs

    async def titles(who: dict[str, Any], **params: str) -> list[tuple[str, bool]]:
        page = await client.get(
            f"{API}/notifications", headers=bearer(who["access_token"]), params=params
        )
        assert page.status_code == 200
        return [(n["title"], n["read"]) for n in page.json()["items"]]

    assert await titles(alice) == [("To all", False), ("Personal", False)]
    assert await titles(bob) == [("To all", False)]
    assert await titles(late) == []
    # Pages of one merge newest first with a cursor across both kinds.
    first = (
        await client.get(
            f"{API}/notifications", headers=bearer(alice["access_token"]), params={"limit": "1"}
        )
    ).json()
    assert [n["id"] for n in first["items"]] == [sent["id"]]
    rest = (
        await client.get(
            f"{API}/notifications",
            headers=bearer(alice["access_token"]),
            params={"limit": "1", "cursor": first["next_cursor"]},
        )
    ).json()
    assert [n["id"] for n in rest["items"]] == [personal.id] and rest["next_cursor"] is None

    for _ in range(2):  # marking twice is harmless
        read = await client.post(
            f"{API}/notifications/{sent['id']}/read", headers=bearer(bob["access_token"])
        )
        assert read.status_code == 200 and read.json()["read"] is True
        assert read.json()["id"] == sent["id"]
    assert await titles(bob) == [("To all", True)]
    assert await titles(bob, unread="true") == []
    assert await titles(alice, unread="true") == [("To all", False), ("Personal", False)]
    refused = await client.post(
        f"{API}/notifications/{sent['id']}/read", headers=bearer(late["access_token"])
    )
    assert refused.status_code == 404


async def test_health_and_readiness(app_client: Pair) -> None:
    app, client = app_client
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["node"] == app.state.runtime.node_id
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "kv": True}


async def test_readiness_names_the_failed_dependency(app_client: Pair) -> None:
    """Point the runtime at a port where nothing listens: a real outage, one dependency at a time."""
    app, client = app_client
    runtime = app.state.runtime
    kv, engine = runtime.kv, runtime.engine
    runtime.kv = create_kv("redis://127.0.0.1:1/0", runtime.settings.redis_namespace)
    try:
        no_kv = await client.get("/readyz")
    finally:
        await runtime.kv.close()
        runtime.kv = kv
    with warnings.catch_warnings():  # Piccolo warns at construction that it cannot reach the server
        warnings.simplefilter("ignore")
        runtime.engine = build_engine("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        no_db = await client.get("/readyz")
    finally:
        runtime.engine = engine
    assert no_kv.status_code == no_db.status_code == 503
    assert no_kv.json()["status"] == "unavailable"
    assert no_kv.json()["checks"] == {"database": True, "kv": False}
    assert no_db.json()["checks"] == {"database": False, "kv": True}
    assert (await client.get("/readyz")).status_code == 200
