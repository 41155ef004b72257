"""Billing: Stripe Checkout against a local fake Stripe API, and webhooks signed locally
exactly as Stripe signs them (``t=…,v1=HMAC-SHA256(secret, "{t}.{payload}")``). No network."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from synthia_rt.store import plans
from synthia_rt.store import users as user_store
from tests.conftest import running_app
from tests.opshelpers import admin_in_process
from tests.rest_helpers import API, bearer, register

WEBHOOK_SECRET = "whsec_test_4fJ2kQ9xZ7mN1pR8sT3vW6yB0cD5eG"  # tests only
SECRET_KEY = "sk_test_51FakeKeyForTheLocalFakeStripeOnly"  # tests only
PRICE = "price_premium_monthly"


class FakeStripe:
    """Answers ``POST /v1/checkout/sessions`` like Stripe does; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = (await reader.readline()).decode("latin-1").strip()
                if not line:
                    return
                method, target, _ = line.split(" ", 2)
                headers: dict[str, str] = {}
                while h := (await reader.readline()).decode("latin-1").strip():
                    name, _, value = h.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((f"{method} {target}", headers, parse_qs(body.decode())))
                sid = f"cs_test_{uuid.uuid4().hex[:12]}"
                reply = json.dumps({
                    "id": sid, "object": "checkout.session", "mode": "subscription",
                    "url": f"https://checkout.stripe.com/c/pay/{sid}", "status": "open",
                }).encode()  # fmt: skip
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Request-Id: req_fake\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    server = FakeStripe()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def sign(payload: str, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    """Exactly Stripe's scheme: v1 = hex HMAC-SHA256 of ``"{t}.{payload}"`` with the secret."""
    t = int(time.time()) if t is None else t
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def event(kind: str, obj: dict[str, Any], created: int, event_id: str | None = None) -> str:
    return json.dumps({
        "id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
        "created": created, "livemode": False, "api_version": "2024-06-20",
        "data": {"object": obj},
    })  # fmt: skip


async def deliver(
    client: httpx.AsyncClient, payload: str, signature: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{API}/billing/webhook",
        content=payload,
        headers={
            "Stripe-Signature": signature or sign(payload),
            "Content-Type": "application/json",
        },
    )


@contextlib.asynccontextmanager
async def billing_app(
    settings_for: Any, backend: str = "redis", **extra: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(backend, stripe_webhook_secret=WEBHOOK_SECRET, **extra)
    async with running_app(settings) as (_, client):
        yield client


async def test_checkout_is_disabled_without_a_stripe_key(settings_for: Any) -> None:
    async with billing_app(settings_for, "memory") as client:
        auth = bearer((await register(client))["access_token"])
        r = await client.post(f"{API}/billing/checkout", headers=auth)
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_disabled"


async def test_checkout_creates_a_session_at_stripe(
    settings_for: Any, fake_stripe: FakeStripe
) -> None:
    async with billing_app(
        settings_for,
        stripe_secret_key=SECRET_KEY,
        stripe_price_id=PRICE,
        stripe_api_base=fake_stripe.base_url,
    ) as client:
        session = await register(client)
        r = await client.post(f"{API}/billing/checkout", headers=bearer(session["access_token"]))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["id"].startswith("cs_test_") and body["url"].endswith(body["id"])
        [(line, headers, form)] = fake_stripe.requests
        assert line == "POST /v1/checkout/sessions"
        assert headers["authorization"] == f"Bearer {SECRET_KEY}"
        assert form["mode"] == ["subscription"] and form["line_items[0][price]"] == [PRICE]
        assert form["client_reference_id"] == [session["user"]["id"]]
        assert form["subscription_data[metadata][user_id]"] == [session["user"]["id"]]


async def test_webhooks_drive_the_plan(settings_for: Any, backend: str) -> None:
    async with billing_app(settings_for, backend) as client:
        session = await register(client)
        uid = session["user"]["id"]
        now = int(time.time())
        completed = event("checkout.session.completed", {
            "id": "cs_1", "object": "checkout.session", "client_reference_id": uid, "customer": "cus_1",
            "subscription": "sub_1", "payment_status": "paid", "status": "complete"}, now - 50)  # fmt: skip
        r = await deliver(client, completed)
        assert r.status_code == 200 and r.json() == {
            "received": True,
            "duplicate": False,
            "applied": True,
        }
        assert await plans.plan_of(uid) == "premium"
        # a retry/replay of the same event id is acknowledged and not applied again
        again = await deliver(client, completed)
        assert again.status_code == 200 and again.json()["duplicate"] is True

        failed = event(
            "invoice.payment_failed",
            {"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1"},
            now - 40,
        )
        assert (await deliver(client, failed)).json()["applied"] is True
        assert await plans.plan_of(uid) == "premium"  # past_due: grace while Stripe retries

        deleted = event(
            "customer.subscription.deleted",
            {"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "canceled"},
            now - 10,
        )
        assert (await deliver(client, deleted)).json()["applied"] is True
        assert await plans.plan_of(uid) == "free"
        # out of order: an `active` update created before the deletion arrives late — no regression
        late = event(
            "customer.subscription.updated",
            {"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active"},
            now - 30,
        )
        r = await deliver(client, late)
        assert r.status_code == 200 and r.json()["applied"] is False
        assert await plans.plan_of(uid) == "free"
        profile = (
            await client.get(f"{API}/users/profile", headers=bearer(session["access_token"]))
        ).json()
        assert profile["plan"] == "free"
        # a new subscription later on is a new purchase: premium again
        renewed = event(
            "customer.subscription.updated",
            {
                "id": "sub_2",
                "object": "subscription",
                "customer": "cus_1",
                "status": "active",
                "metadata": {"user_id": uid},
            },
            now,
        )
        assert (await deliver(client, renewed)).json()["applied"] is True
        assert await plans.plan_of(uid) == "premium"


async def test_webhooks_refuse_bad_and_stale_signatures(settings_for: Any) -> None:
    async with billing_app(settings_for, "memory") as client:
        uid = (await register(client))["user"]["id"]
        payload = event(
            "customer.subscription.updated",
            {
                "id": "sub_9",
                "object": "subscription",
                "customer": "cus_9",
                "status": "active",
                "metadata": {"user_id": uid},
            },
            int(time.time()),
        )
        for signature in (
            sign(payload, secret="whsec_someone_else"),  # wrong secret
            sign(payload + " "),  # the body was altered
            sign(payload, t=int(time.time()) - 3600),  # stale: replay of an old capture
            "t=1,v0=abc",  # no v1 signature at all
        ):
            r = await deliver(client, payload, signature)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
        r = await client.post(f"{API}/billing/webhook", content=payload)
        assert r.status_code == 400
        assert await plans.plan_of(uid) == "free"
        assert (await deliver(client, payload)).json()[
            "applied"
        ] is True  # the genuine one still works


async def test_webhooks_are_refused_when_not_configured(settings_for: Any) -> None:
    async with running_app(settings_for("memory")) as (_, client):
        payload = event("ping", {}, int(time.time()))
        r = await deliver(client, payload)
        assert r.status_code == 503 and r.json()["error"]["code"] == "billing_disabled"


async def test_admins_grant_and_revoke_premium_audited(settings_for: Any) -> None:
    async with billing_app(settings_for, "memory") as client:
        admin = await admin_in_process(client)
        user = await register(client)
        uid = user["user"]["id"]
        r = await client.post(
            f"{API}/admin/users/{uid}/plan",
            headers=bearer(user["access_token"]),
            json={"plan": "premium"},
        )
        assert r.status_code == 403
        r = await client.post(
            f"{API}/admin/users/{uid}/plan",
            headers=bearer(admin["access_token"]),
            json={"plan": "premium"},
        )
        assert r.status_code == 200 and r.json() == {"user_id": uid, "plan": "premium"}
        assert (await user_store.by_id(uid)).plan == "premium"  # type: ignore[union-attr]
        r = await client.post(
            f"{API}/admin/users/{uid}/plan",
            headers=bearer(admin["access_token"]),
            json={"plan": "free"},
        )
        assert r.json()["plan"] == "free"
        r = await client.post(
            f"{API}/admin/users/{uuid.uuid4()}/plan",
            headers=bearer(admin["access_token"]),
            json={"plan": "premium"},
        )
        assert r.status_code == 404
        audit = await client.get(
            f"{API}/admin/audit",
            params={"action": "admin.user.plan"},
            headers=bearer(admin["access_token"]),
        )
        entries = audit.json()["items"]
        assert [(e["subject_id"], e["detail"]["plan"]) for e in entries] == [
            (uid, "free"),
            (uid, "premium"),
        ]
        assert all(e["actor_id"] == admin["user"]["id"] for e in entries)


async def test_concurrent_first_events_of_a_user_never_answer_500(settings_for: Any) -> None:
    """checkout.session.completed and customer.subscription.created arrive together for a user
    with no subscription row yet: both would insert it; neither may fail (Stripe would retry a
    500, but the plan must not depend on that)."""
    async with billing_app(settings_for, "redis") as client:
        now = int(time.time())
        for round_ in range(6):
            uid = (await register(client))["user"]["id"]
            completed = event("checkout.session.completed", {
                "id": f"cs_r{round_}", "object": "checkout.session", "client_reference_id": uid,
                "customer": f"cus_r{round_}", "subscription": f"sub_r{round_}", "payment_status": "paid",
                "status": "complete"}, now - 5)  # fmt: skip
            created = event("customer.subscription.created", {
                "id": f"sub_r{round_}", "object": "subscription", "customer": f"cus_r{round_}",
                "status": "active", "metadata": {"user_id": uid}}, now - 4)  # fmt: skip
            replies = await asyncio.gather(deliver(client, completed), deliver(client, created))
            assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
            assert await plans.plan_of(uid) == "premium"
