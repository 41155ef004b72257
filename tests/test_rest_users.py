"""``/users/profile``: read, rename, change password (ends other sessions), erase everything."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis

from synthia_rt.store import notifications, plans
from synthia_rt.store.tables import (
    TABLES,
    Analysis,
    AuditLog,
    Broadcast,
    PushSubscription,
    StoredImage,
    StripeEvent,
    Subscription,
    User,
    utcnow,
)
from tests.conftest_helpers import unique_email
from tests.rest_helpers import (
    API,
    PASSWORD,
    add_analysis,
    bearer,
    login,
    record_revocations,
    register,
)

Pair = tuple[Any, httpx.AsyncClient]
NEW_PASSWORD = "a completely different passphrase"


async def test_profile_read_and_rename(app_client: Pair) -> None:
    _, client = app_client
    session = await register(client, display_name="Ada")
    headers = bearer(session["access_token"])
    me = (await client.get(f"{API}/users/profile", headers=headers)).json()
    assert me == session["user"]
    r = await client.patch(f"{API}/users/profile", headers=headers, json={"display_name": "Ada L."})
    assert r.status_code == 200
    assert r.json()["user"]["display_name"] == "Ada L." and r.json()["session"] is None
    assert (await client.get(f"{API}/users/profile", headers=headers)).json()[
        "display_name"
    ] == "Ada L."
    bad = await client.patch(f"{API}/users/profile", headers=headers, json={"display_name": 7})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "display_name"


async def test_the_saved_language_is_read_back(app_client: Pair) -> None:
    """The profile is served from the user cache: the saved locale must be part of it."""
    _, client = app_client
    headers = bearer((await register(client))["access_token"])
    assert (await client.get(f"{API}/users/profile", headers=headers)).json()[
        "locale"
    ] is None  # cached now
    r = await client.patch(f"{API}/users/profile", headers=headers, json={"locale": "en"})
    assert r.status_code == 200 and r.json()["user"]["locale"] == "en"
    for _ in range(2):  # a miss (the patch forgot the entry), then a hit
        assert (await client.get(f"{API}/users/profile", headers=headers)).json()["locale"] == "en"


async def test_password_change_needs_the_current_password(app_client: Pair) -> None:
    _, client = app_client
    session = await register(client)
    headers = bearer(session["access_token"])
    missing = await client.patch(
        f"{API}/users/profile", headers=headers, json={"password": NEW_PASSWORD}
    )
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "current_password"
    wrong = await client.patch(
        f"{API}/users/profile",
        headers=headers,
        json={"password": NEW_PASSWORD, "current_password": "nope nope"},
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "current_password"
    too_short = await client.patch(
        f"{API}/users/profile",
        headers=headers,
        json={"password": "short", "current_password": PASSWORD},
    )
    assert too_short.status_code == 422 and too_short.json()["error"]["field"] == "password"
    # Nothing changed: the session still works and the old password still logs in.
    assert (await client.get(f"{API}/users/profile", headers=headers)).status_code == 200


async def test_password_change_ends_every_session_but_the_new_one(app_client: Pair) -> None:
    app, client = app_client
    closed = record_revocations(app)
    email = unique_email()
    first = await register(client, email=email)
    second = (await login(client, email)).json()
    r = await client.patch(
        f"{API}/users/profile",
        headers=bearer(first["access_token"]),
        json={"password": NEW_PASSWORD, "current_password": PASSWORD, "display_name": "Renamed"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["display_name"] == "Renamed"
    fresh = body["session"]
    assert fresh is not None and closed == [first["user"]["id"]]
    for old in (first, second):
        assert (
            await client.get(f"{API}/users/profile", headers=bearer(old["access_token"]))
        ).status_code == 401
        assert (
            await client.post(f"{API}/auth/refresh", json={"refresh_token": old["refresh_token"]})
        ).status_code == 401
    assert (
        await client.get(f"{API}/users/profile", headers=bearer(fresh["access_token"]))
    ).status_code == 200
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    ).status_code == 200
    old_login = await login(client, email)
    new_login = await login(client, email, NEW_PASSWORD)
    assert (old_login.status_code, new_login.status_code) == (401, 200)


async def _populate(app: Any, client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """An account with a row in every table and keys in the KV, as real use would leave it."""
    runtime = app.state.runtime
    session = await register(client, email=email, display_name="To Be Erased")
    user_id = session["user"]["id"]
    headers = bearer(session["access_token"])
    await login(client, email)  # 2nd family + audit
    await login(client, email, "wrong password!")
    analysis_id = await add_analysis(user_id)
    r = await client.post(
        f"{API}/feedback",
        headers=headers,
        json={"rating": 4, "comment": "nice", "analysis_id": analysis_id},
    )
    assert r.status_code == 201
    await runtime.hub.notify(
        user_id, await notifications.create(user_id, "info", "Hello", "Welcome")
    )
    everyone = await notifications.create_broadcast("info", "To all", "")
    assert await notifications.mark_read(user_id, everyone.id) is not None  # a read-state row
    now = utcnow()
    await StoredImage.insert(
        StoredImage(
            user=uuid.UUID(user_id),
            sha256="0" * 64,
            content_type="image/png",
            size=10,
            created_at=now,
            expires_at=now,
        )
    ).run()
    await plans.charge(user_id, 5)  # usage_months
    uid = uuid.UUID(user_id)
    await Subscription.insert(
        Subscription(
            user=uid, customer_id="cus_x", subscription_id="sub_x", status="active", updated_at=now
        )
    ).run()
    await StripeEvent.insert(
        StripeEvent(
            event_id=f"evt_{uuid.uuid4().hex}",
            type="checkout.session.completed",
            user=uid,
            created_at=now,
        )
    ).run()
    await PushSubscription.insert(
        PushSubscription(
            user=uid,
            endpoint=f"https://push.example/{uuid.uuid4().hex}",
            p256dh="k",
            auth="a",
            created_at=now,
        )
    ).run()
    await runtime.kv.set(f"presence:{{{user_id}}}:node", b"1", 60)
    await runtime.kv.set(f"upload:{user_id}:chunk", b"bytes", 60)
    return session


async def test_deleting_the_account_erases_everything_of_it(
    app_client: Pair, redis_client: aioredis.Redis, namespace: str
) -> None:
    app, client = app_client
    runtime = app.state.runtime
    hooked: list[str] = []

    async def hook(user_id: str) -> None:
        hooked.append(user_id)

    runtime.erase_user_hooks.append(hook)
    email = unique_email()
    session = await _populate(app, client, email)
    user_id = session["user"]["id"]
    bystander = await register(client)
    bystander_analysis = await add_analysis(bystander["user"]["id"])
    # Every table really holds something of the user before the deletion.
    for table in TABLES:
        if table is Broadcast:
            continue  # one row for everyone: nothing of a user in it
        rows = await table.select().output(load_json=True).run()
        assert any(user_id in str(row) for row in rows), table._meta.tablename

    r = await client.delete(f"{API}/users/profile", headers=bearer(session["access_token"]))
    assert r.status_code == 204, r.text
    assert hooked == [user_id]

    for table in TABLES:
        rows = await table.select().output(load_json=True).run()
        mentioning = [row for row in rows if user_id in str(row) or email in str(row)]
        if table is AuditLog:
            # One trace remains: that the id was deleted. No IP, no email, no detail.
            assert [(row["action"], row["ip"], row["detail"]) for row in mentioning] == [
                ("user.deleted", None, {})
            ]
        else:
            assert mentioning == [], table._meta.tablename
    assert await User.exists().where(User.id == uuid.UUID(bystander["user"]["id"])).run()
    assert await Analysis.exists().where(Analysis.id == uuid.UUID(bystander_analysis)).run()

    leftovers = [key async for key in runtime.kv.scan(f"*{user_id}*")]
    assert leftovers == []
    if runtime.settings.redis_url:  # the raw server too, beyond what the KV seam can see
        raw = [k async for k in redis_client.scan_iter(match=f"{namespace}:*{user_id}*")]
        assert raw == []

    gone = await client.get(f"{API}/users/profile", headers=bearer(session["access_token"]))
    assert gone.status_code == 401
    relog = await login(client, email)
    assert relog.status_code == 401
    assert (
        await client.get(f"{API}/users/profile", headers=bearer(bystander["access_token"]))
    ).status_code == 200
    # The address is free again.
    assert (
        await client.post(f"{API}/auth/register", json={"email": email, "password": PASSWORD})
    ).status_code == 201
