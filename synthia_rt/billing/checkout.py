"""Create a Stripe Checkout Session for the premium subscription."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings
from synthia_rt.store import billing as billing_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def enabled(settings: Settings) -> bool:
    return bool(settings.stripe_secret_key and settings.stripe_price_id)


def client(settings: Settings, http: stripe.HTTPClient) -> stripe.StripeClient:
    if settings.stripe_api_base:
        return stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=http,
            max_network_retries=1,
        )
    return stripe.StripeClient(settings.stripe_secret_key, http_client=http, max_network_retries=1)


async def create_session(settings: Settings, user_id: str, email: str) -> CheckoutSession:
    """A subscription-mode session; the user id rides along so the webhooks can find the user."""
    if not enabled(settings):
        raise AppError(ErrorCode.BILLING_DISABLED)
    params: dict[str, object] = {
        "mode": "subscription",
        "line_items": [{"price": settings.stripe_price_id, "quantity": 1}],
        "success_url": settings.billing_success_url,
        "cancel_url": settings.billing_cancel_url,
        "client_reference_id": user_id,
        "metadata": {"user_id": user_id},
        "subscription_data": {"metadata": {"user_id": user_id}},
    }
    customer = await billing_store.customer_of(user_id)
    if customer:
        params["customer"] = customer
    else:
        params["customer_email"] = email
    http = stripe.HTTPXClient()
    try:
        session = await client(settings, http).v1.checkout.sessions.create_async(params)  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        log.warning("stripe checkout failed: %s", type(exc).__name__, exc_info=True)
        raise AppError(
            ErrorCode.UNAVAILABLE, "The payment provider could not be reached; retry."
        ) from None
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    if not session.url:
        raise AppError(
            ErrorCode.UNAVAILABLE, "The payment provider returned no checkout URL; retry."
        )
    return CheckoutSession(session.id, session.url)
