"""Subscription rows and processed Stripe event ids (see synthia_rt/billing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.columns import Column

from synthia_rt.store import faults
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.tables import StripeEvent, Subscription, User, utcnow


@dataclass(frozen=True)
class SubscriptionState:
    user_id: str
    customer_id: str | None
    subscription_id: str | None
    status: str
    event_at: datetime | None


def _state(row: dict[str, Any]) -> SubscriptionState:
    return SubscriptionState(
        str(row["user"]), row["customer_id"], row["subscription_id"], row["status"], row["event_at"]
    )


@faults.guard
async def customer_of(user_id: str) -> str | None:
    uid = as_uuid(user_id)
    if uid is None:
        return None
    row = (
        await Subscription.select(Subscription.customer_id)
        .where(Subscription.user == uid)
        .first()
        .run()
    )
    return None if row is None else row["customer_id"]


async def user_exists(user_id: str) -> bool:
    uid = as_uuid(user_id)
    return uid is not None and bool(await User.exists().where(User.id == uid).run())


async def find(
    user_id: str | None, customer_id: str | None, subscription_id: str | None
) -> SubscriptionState | None:
    """The row by user id, else by subscription id, else by customer id."""
    query = Subscription.select()
    for column, value in (
        (Subscription.user, as_uuid(user_id) if user_id else None),
        (Subscription.subscription_id, subscription_id),
        (Subscription.customer_id, customer_id),
    ):
        if value:
            row = await query.where(column == value).first().run()
            if row:
                return _state(row)
    return None


async def save(
    user_id: str,
    customer_id: str | None,
    subscription_id: str | None,
    status: str,
    event_at: datetime,
) -> None:
    uid = uuid.UUID(user_id)
    values: dict[Column | str, Any] = {
        Subscription.customer_id: customer_id,
        Subscription.subscription_id: subscription_id,
        Subscription.status: status,
        Subscription.event_at: event_at,
        Subscription.updated_at: utcnow(),
    }
    updated = (
        await Subscription.update(values)
        .where(Subscription.user == uid)
        .returning(Subscription.id)
        .run()
    )
    if not updated:
        await Subscription.insert(
            Subscription(
                user=uid,
                customer_id=customer_id,
                subscription_id=subscription_id,
                status=status,
                event_at=event_at,
                updated_at=utcnow(),
            )
        ).run()


async def claim_event(event_id: str, event_type: str) -> bool:
    """Record ``event_id`` as processed; False if it already was (a retry or a replay).

    Called inside the transaction that applies the event: if applying fails, the claim is
    rolled back too and Stripe's retry is processed normally."""
    rows = (
        await StripeEvent.insert(
            StripeEvent(event_id=event_id, type=event_type[:80], created_at=utcnow())
        )
        .on_conflict(target=StripeEvent.event_id, action="DO NOTHING")
        .returning(StripeEvent.id)
        .run()
    )
    return bool(rows)


async def tag_event(event_id: str, user_id: str) -> None:
    await (
        StripeEvent.update({StripeEvent.user: uuid.UUID(user_id)})
        .where(StripeEvent.event_id == event_id)
        .run()
    )
