"""``/billing``: Stripe Checkout for premium and Stripe's webhook endpoint (docs/billing.md)."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.billing import checkout, webhooks
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.deps import runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out
from synthia_rt.store import users

TAGS = ("billing",)
MAX_WEBHOOK_BYTES = 256 * 1024  # Stripe events are a few KiB


class CheckoutOut(Out):
    id: str = Field(description="The Checkout Session id (cs_…).")
    url: str = Field(description="Send the browser here to pay.")


class WebhookOut(Out):
    received: bool = True
    duplicate: bool = Field(description="This event id was processed before; nothing was done.")
    applied: bool = Field(description="The event changed the subscription (else it was ignored).")


@api(
    "POST",
    "/billing/checkout",
    "Start a Stripe Checkout for the premium plan",
    response=CheckoutOut,
    status=201,
    errors=[ErrorCode.BILLING_DISABLED, ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="503 `billing_disabled` when the server has no Stripe key or price. The plan "
    "changes when Stripe's `checkout.session.completed` webhook arrives, not here.",
)
async def start_checkout(request: Request, principal: Principal) -> CheckoutOut:
    settings = runtime_of(request).settings
    if not checkout.enabled(settings):
        raise AppError(ErrorCode.BILLING_DISABLED)
    user = await users.by_id(principal.user_id)
    if user is None:
        raise AppError(ErrorCode.NOT_FOUND)
    session = await checkout.create_session(settings, user.id, user.email)
    return CheckoutOut(id=session.id, url=session.url)


async def _raw_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise AppError(ErrorCode.TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


@api(
    "POST",
    "/billing/webhook",
    "Stripe's webhook endpoint (signed with STRIPE_WEBHOOK_SECRET)",
    response=WebhookOut,
    auth=False,
    errors=[
        ErrorCode.BAD_REQUEST,
        ErrorCode.BILLING_DISABLED,
        ErrorCode.TOO_LARGE,
        ErrorCode.UNAVAILABLE,
    ],
    tags=TAGS,
    description="The `Stripe-Signature` header must verify (HMAC-SHA256 of `t.payload`, `t` within "
    "`STRIPE_WEBHOOK_TOLERANCE`): else 400. Each event id is processed once; a repeat answers "
    "200 with `duplicate`. Events older than the subscription's state are ignored.",
)
async def stripe_webhook(request: Request) -> WebhookOut:
    settings = runtime_of(request).settings
    payload = await _raw_body(request)
    event = webhooks.verify(settings, payload, request.headers.get("stripe-signature"))
    outcome = await webhooks.process(event)
    if outcome.user_id is not None:
        await runtime_of(request).forget_user(outcome.user_id)
    return WebhookOut(duplicate=outcome.duplicate, applied=outcome.applied)


routes: list[BaseRoute] = [start_checkout, stripe_webhook]
