"""Web Push: subscriptions, and delivery to a local push service that verifies VAPID and
decrypts the payload with the browser-side keys (tests/push_service.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from synthia_rt.push.vapid import generate
from synthia_rt.store.tables import PushSubscription
from tests.conftest import running_app, serving
from tests.opshelpers import admin_in_process, open_socket
from tests.push_service import PushService
from tests.rest_helpers import API, bearer, register

VAPID_PRIVATE, VAPID_PUBLIC = generate()


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def push_settings(settings_for: Any, backend: str = "redis", **extra: Any) -> Any:
    return settings_for(
        backend, vapid_private_key=VAPID_PRIVATE, vapid_subject="mailto:ops@example.com",
        push_allow_insecure_endpoints=True, **{"push_backoff": 0.05, **extra},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def push_app(
    settings_for: Any, backend: str = "redis", **extra: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(push_settings(settings_for, backend, **extra)) as pair:
        yield pair


async def notify(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str, title: str
) -> None:
    r = await client.post(
        f"{API}/admin/notifications",
        headers=bearer(admin["access_token"]),
        json={"user_id": user_id, "kind": "info", "title": title, "body": "hello"},
    )
    assert r.status_code == 201, r.text


async def subscribe(
    client: httpx.AsyncClient, token: str, subscription: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"{API}/push/subscriptions", headers=bearer(token), json=subscription)


async def test_push_is_disabled_without_a_vapid_key(
    settings_for: Any, push_service: PushService
) -> None:
    async with running_app(settings_for("memory")) as (_, client):
        r = await client.get(f"{API}/push/vapid-public-key")
        assert r.status_code == 503 and r.json()["error"]["code"] == "push_disabled"
        token = (await register(client))["access_token"]
        r = await subscribe(client, token, push_service.browser("x").subscription())
        assert r.status_code == 503 and r.json()["error"]["code"] == "push_disabled"


async def test_subscriptions_are_validated_capped_and_deleted(
    settings_for: Any, push_service: PushService
) -> None:
    async with push_app(settings_for, "memory", push_max_subscriptions=2) as (_, client):
        r = await client.get(f"{API}/push/vapid-public-key")
        assert r.status_code == 200 and r.json() == {"public_key": VAPID_PUBLIC}
        session = await register(client)
        token, uid = session["access_token"], session["user"]["id"]
        good = push_service.browser("a").subscription()
        for endpoint in (
            "http://push.example.com/x",
            "https://10.0.0.1/x",
            "ftp://127.0.0.1/x",
            "not a url",
        ):
            r = await subscribe(client, token, {**good, "endpoint": endpoint})
            assert r.status_code == 422 and r.json()["error"]["field"] == "endpoint", endpoint
        r = await subscribe(client, token, {**good, "keys": {"p256dh": "short", "auth": "x"}})
        assert r.status_code == 422
        assert (await subscribe(client, "", good)).status_code == 401
        endpoints = [push_service.browser(name).subscription() for name in ("b", "c", "d")]
        for sub in endpoints:
            assert (await subscribe(client, token, sub)).status_code == 201
        rows = (
            await PushSubscription.select(PushSubscription.endpoint)
            .where(PushSubscription.user == uid)
            .run()
        )
        assert sorted(row["endpoint"] for row in rows) == sorted(
            s["endpoint"] for s in endpoints[1:]
        )  # cap 2
        gone = {"endpoint": endpoints[2]["endpoint"]}
        r = await client.request(
            "DELETE", f"{API}/push/subscriptions", headers=bearer(token), json=gone
        )
        assert r.status_code == 204
        r = await client.request(
            "DELETE", f"{API}/push/subscriptions", headers=bearer(token), json=gone
        )
        assert r.status_code == 404


async def test_a_notification_reaches_a_user_with_no_socket(
    settings_for: Any, backend: str, push_service: PushService
) -> None:
    async with push_app(settings_for, backend) as (app, client):
        admin = await admin_in_process(client)
        user = await register(client)
        browser = push_service.browser("offline")
        assert (
            await subscribe(client, user["access_token"], browser.subscription())
        ).status_code == 201
        await notify(client, admin, user["user"]["id"], "Your palette is ready")
        got = await push_service.next()
        assert got.message == {
            "kind": "info",
            "title": "Your palette is ready",
            "body": "hello",
            "url": "/",
        }
        assert (
            got.claims["aud"] == push_service.origin
            and got.claims["sub"] == "mailto:ops@example.com"
        )
        assert got.vapid_key == VAPID_PUBLIC
        assert push_service.errors == []


async def test_a_user_with_an_open_socket_is_not_pushed(
    settings_for: Any, push_service: PushService
) -> None:
    async with serving(push_settings(settings_for)) as live:
        async with httpx.AsyncClient(base_url=f"http://{live}") as client:
            admin = await admin_in_process(client)
            online, offline = await register(client), await register(client)
            for name, user in (("online", online), ("offline", offline)):
                sub = push_service.browser(name).subscription()
                assert (await subscribe(client, user["access_token"], sub)).status_code == 201
            ws, _ = await open_socket(f"ws://{live}/ws", online["access_token"])
            try:
                await notify(client, admin, online["user"]["id"], "seen live")
                await notify(client, admin, offline["user"]["id"], "pushed")
                got = await push_service.next()
                await live.runtime.push.drained()
                assert got.path == "/push/offline" and got.message["title"] == "pushed"
                assert push_service.received.empty() and "/push/online" not in push_service.attempts
            finally:
                await ws.close()


async def test_a_gone_subscription_is_removed_and_a_failing_one_retried(
    settings_for: Any, push_service: PushService
) -> None:
    async with push_app(settings_for) as (app, client):
        admin = await admin_in_process(client)
        user = await register(client)
        gone, flaky = push_service.browser("gone"), push_service.browser("flaky")
        push_service.answers = {"/push/gone": [410], "/push/flaky": [500, 503]}
        for browser in (gone, flaky):
            assert (
                await subscribe(client, user["access_token"], browser.subscription())
            ).status_code == 201
        await notify(client, admin, user["user"]["id"], "twice refused")
        got = await push_service.next()
        assert got.path == "/push/flaky" and got.message["title"] == "twice refused"
        assert push_service.attempts == {"/push/gone": 1, "/push/flaky": 3}
        rows = (
            await PushSubscription.select(PushSubscription.endpoint)
            .where(PushSubscription.user == user["user"]["id"])
            .run()
        )
        assert [row["endpoint"] for row in rows] == [flaky.endpoint]


async def test_retries_are_capped(settings_for: Any, push_service: PushService) -> None:
    async with push_app(settings_for, "memory", push_retries=2) as (app, client):
        admin = await admin_in_process(client)
        user = await register(client)
        browser = push_service.browser("down")
        push_service.answers = {"/push/down": [500] * 10}
        assert (
            await subscribe(client, user["access_token"], browser.subscription())
        ).status_code == 201
        await notify(client, admin, user["user"]["id"], "never")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if push_service.attempts.get("/push/down") == 3:
                break
        await asyncio.sleep(0.5)  # no 4th attempt comes
        assert push_service.attempts == {"/push/down": 3}
        assert (
            await PushSubscription.count().run() == 1
        )  # a failing service is not a gone subscription


async def test_a_push_waiting_for_its_retry_is_sent_at_shutdown_not_lost(
    settings_for: Any, push_service: PushService
) -> None:
    """A deploy stops the node while a push waits out its backoff (here 30 s): the node tries
    it once more as it stops, within its grace, instead of forgetting it."""
    async with push_app(settings_for, "memory", push_backoff=30.0) as (app, client):
        admin = await admin_in_process(client)
        user = await register(client)
        browser = push_service.browser("busy")
        push_service.answers = {"/push/busy": [503]}
        assert (
            await subscribe(client, user["access_token"], browser.subscription())
        ).status_code == 201
        await notify(client, admin, user["user"]["id"], "sent on the way out")
        for _ in range(100):
            if push_service.attempts.get("/push/busy") == 1:
                break
            await asyncio.sleep(0.05)
        assert push_service.attempts == {"/push/busy": 1}
        assert push_service.received.empty()
    # The app has stopped (lifespan shutdown): the retry went out during it.
    got = await push_service.next(timeout=1.0)
    assert got.path == "/push/busy" and got.message["title"] == "sent on the way out"
    assert push_service.attempts == {"/push/busy": 2}


async def test_a_finished_analysis_is_pushed(settings_for: Any, push_service: PushService) -> None:
    from tests.test_rest_analyze import ANSWERS

    async with push_app(settings_for, "memory") as (app, client):
        user = await register(client)
        browser = push_service.browser("analysis")
        assert (
            await subscribe(client, user["access_token"], browser.subscription())
        ).status_code == 201
        r = await client.post(
            f"{API}/chromatic-analysis/analyze",
            headers=bearer(user["access_token"]),
            json={"answers": ANSWERS},
        )
        assert r.status_code == 200, r.text
        got = await push_service.next()
        assert (
            got.message["kind"] == "analysis.done"
            and got.message["title"] == "Your analysis is ready"
        )
        assert got.message["url"].startswith("/?analysis=")


async def test_the_analysis_push_is_in_the_recipients_saved_locale(
    settings_for: Any, push_service: PushService
) -> None:
    """Built by the run, without a request context: translated for the user's saved locale
    (es here), whatever language the request that started the run spoke."""
    from tests.test_rest_analyze import ANSWERS

    async with push_app(settings_for, "memory") as (app, client):
        user = await register(client)
        token = user["access_token"]
        assert (
            await client.patch(f"{API}/users/profile", json={"locale": "es"}, headers=bearer(token))
        ).status_code == 200
        browser = push_service.browser("analysis-es")
        assert (await subscribe(client, token, browser.subscription())).status_code == 201
        r = await client.post(
            f"{API}/chromatic-analysis/analyze",
            headers={**bearer(token), "Accept-Language": "en"},
            json={"answers": ANSWERS},
        )
        assert r.status_code == 200, r.text
        got = await push_service.next()
        assert (got.message["title"], got.message["body"]) == (
            "Tu análisis está listo",
            "Tu análisis de color ha terminado.",
        )


async def test_the_service_worker_is_served_with_a_root_scope(settings_for: Any) -> None:
    async with running_app(settings_for("memory")) as (_, client):
        r = await client.get("/sw.js")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers["service-worker-allowed"] == "/"
        assert "showNotification" in r.text and "notificationclick" in r.text
        page = (await client.get("/")).text
        assert 'id="push-enable"' in page


def test_the_cli_generates_a_usable_key_pair(capsys: pytest.CaptureFixture[str]) -> None:
    from synthia_rt.cli import main
    from synthia_rt.push.vapid import load, public_key

    assert main(["vapid-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    private = lines[0].removeprefix("VAPID_PRIVATE_KEY=")
    vapid = load(private)
    assert vapid is not None and lines[1].endswith(public_key(vapid))
