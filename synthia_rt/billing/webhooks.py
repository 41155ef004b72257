"""Stripe webhooks: verify, process each event id once, move the subscription state machine.

States are Stripe's subscription statuses; the plan follows them:

* ``active``, ``trialing`` → premium;
* ``past_due`` (``invoice.payment_failed``) → still premium while Stripe retries the payment
  (its dunning ends in ``canceled`` or ``unpaid``);
* ``canceled``, ``unpaid``, ``incomplete_expired``, ``paused`` … → free.

Out-of-order delivery (Stripe does not guarantee order) is handled with the event's
``created`` time: an event older than the last one applied to the user's subscription is
recorded as processed and ignored, and a ``canceled`` subscription is final (Stripe never
revives one; a new purchase is a new subscription id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.audit import audit
from synthia_rt.settings import Settings
from synthia_rt.store import billing as store
from synthia_rt.store import faults, plans
from synthia_rt.store.tables import Subscription

log = logging.getLogger(__name__)

PREMIUM_STATUSES = frozenset({"active", "trialing", "past_due"})
HANDLED = frozenset({
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_failed",
})  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    duplicate: bool = False
    applied: bool = False  # False: ignored (unhandled type, unknown user, or older than the state)
    user_id: str | None = None  # whose plan was set, when applied (their cached record goes)


def verify(settings: Settings, payload: bytes, signature: str | None) -> stripe.Event:
    """``stripe.Webhook.construct_event``: HMAC-SHA256 of ``"{t}.{payload}"`` with the endpoint
    secret, compared in constant time against every ``v1``, and ``t`` within the tolerance."""
    if not settings.stripe_webhook_secret:
        raise AppError(
            ErrorCode.BILLING_DISABLED, "Webhooks are not configured (no STRIPE_WEBHOOK_SECRET)."
        )
    if not signature:
        raise AppError(ErrorCode.BAD_REQUEST, "The Stripe-Signature header is missing.")
    try:
        event: stripe.Event = stripe.Webhook.construct_event(
            payload,
            signature,
            settings.stripe_webhook_secret,
            tolerance=settings.stripe_webhook_tolerance,
        )
        return event
    except stripe.SignatureVerificationError as exc:
        stale = "tolerance" in str(exc).lower()
        if stale:
            raise AppError(
                ErrorCode.BAD_REQUEST, "The signature timestamp is outside the tolerance."
            ) from None
        raise AppError(ErrorCode.BAD_REQUEST, "The signature does not verify.") from None
    except ValueError:
        raise AppError(ErrorCode.BAD_REQUEST, "The payload is not a Stripe event.") from None


def _target(
    event_type: str, obj: dict[str, Any]
) -> tuple[str | None, str | None, str | None, str | None]:
    """(user id, customer id, subscription id, new status) that the event speaks of."""
    meta = obj.get("metadata") or {}
    user_id = meta.get("user_id")
    if event_type == "checkout.session.completed":
        user_id = obj.get("client_reference_id") or user_id
        paid = (
            obj.get("payment_status") in {"paid", "no_payment_required"}
            or obj.get("status") == "complete"
        )
        return user_id, obj.get("customer"), obj.get("subscription"), "active" if paid else None
    if event_type.startswith("customer.subscription."):
        status = "canceled" if event_type.endswith(".deleted") else obj.get("status")
        return user_id, obj.get("customer"), obj.get("id"), status
    if event_type == "invoice.payment_failed":
        sub = obj.get("subscription")
        if sub is None:  # newer API versions nest it under parent.subscription_details
            sub = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        return user_id, obj.get("customer"), sub, "past_due"
    return None, None, None, None


def _newer(
    state: store.SubscriptionState | None, subscription_id: str | None, created: datetime
) -> bool:
    if state is None or state.event_at is None:
        return True
    if created < state.event_at:
        return False  # delivered late: a newer event already decided
    same = subscription_id is not None and subscription_id == state.subscription_id
    return not (same and state.status == "canceled")  # a canceled subscription stays canceled


def _unique_violation(exc: BaseException) -> bool:
    import sqlite3

    import asyncpg

    return isinstance(exc, asyncpg.UniqueViolationError) or (
        isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
    )


@faults.guard
async def process(event: stripe.Event) -> Outcome:
    """Apply one verified event exactly once (the claim and the change commit together).

    Two events for a user with no subscription row yet, processed at once (Stripe sends
    ``checkout.session.completed`` and ``customer.subscription.created`` together), both find
    no row and both insert one: the second hits the one-row-per-user constraint. Its
    transaction (claim included) is rolled back and applied again once, now seeing the row the
    first committed, so the state machine decides between them as for events in sequence."""
    try:
        return await _apply(event)
    except Exception as exc:
        if not _unique_violation(exc):
            raise
        log.info(
            "stripe event %s raced another for the same subscription; applying it again",
            event["id"],
        )
        return await _apply(event)


async def _apply(event: stripe.Event) -> Outcome:
    event_id, event_type = str(event["id"]), str(event["type"])
    obj: dict[str, Any] = (
        event["data"]["object"].to_dict()
        if hasattr(event["data"]["object"], "to_dict")
        else dict(event["data"]["object"])
    )
    created = datetime.fromtimestamp(int(event["created"]), UTC)
    audit_after: dict[str, Any] | None = None
    async with Subscription._meta.db.transaction():
        if not await store.claim_event(event_id, event_type):
            return Outcome(event_id, event_type, duplicate=True)
        if event_type not in HANDLED:
            return Outcome(event_id, event_type)
        user_id, customer_id, subscription_id, status = _target(event_type, obj)
        state = await store.find(user_id, customer_id, subscription_id)
        if user_id is None and state is not None:
            user_id = state.user_id
        if user_id is None or status is None or not await store.user_exists(user_id):
            log.info(
                "stripe event %s (%s) names no known user or status; ignored", event_id, event_type
            )
            return Outcome(event_id, event_type)
        await store.tag_event(event_id, user_id)
        if not _newer(state, subscription_id, created):
            log.info("stripe event %s (%s) is older than the state; ignored", event_id, event_type)
            return Outcome(event_id, event_type)
        await store.save(
            user_id,
            customer_id or (state.customer_id if state else None),
            subscription_id or (state.subscription_id if state else None),
            status,
            created,
        )
        plan = plans.PREMIUM if status in PREMIUM_STATUSES else plans.FREE
        await plans.set_plan(user_id, plan)
        audit_after = {
            "subject_id": user_id,
            "status": status,
            "plan": plan,
            "event_type": event_type,
        }
    if audit_after is not None:
        await audit("billing.subscription", **audit_after)
    return Outcome(event_id, event_type, applied=True, user_id=user_id)
