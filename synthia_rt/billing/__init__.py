"""Billing with Stripe: Checkout Sessions for the premium price, and the signed webhooks that
drive each user's subscription state (docs/billing.md).

* :mod:`.checkout` — ``POST /billing/checkout``: one Checkout Session via the ``stripe`` SDK
  (``STRIPE_API_BASE`` can point it at a local fake; nothing else talks to the network).
* :mod:`.webhooks` — signature check (``stripe.Webhook.construct_event``: HMAC-SHA256 over
  ``"{t}.{payload}"``, timestamp tolerance), exactly-once processing per event id, and the
  state machine active / past_due / canceled → plan, never regressed by late events.
"""
