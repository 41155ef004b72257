"""Piccolo tables: the persistent model of the service.

Kept portable between PostgreSQL and SQLite: column-level constraints only, no GIN indexes,
no ALTER COLUMN in migrations (see docs/architecture.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(Table, tablename="users"):
    id = UUID(primary_key=True, default=uuid.uuid4)
    email = Varchar(length=320, unique=True, index=True)
    password_hash = Text()
    display_name = Varchar(length=120, default="")
    role = Varchar(length=16, default="user")  # user | admin
    active = Boolean(default=True)  # False = blocked by an admin
    # es | en, chosen by the user; None = Accept-Language, else DEFAULT_LOCALE
    locale = Varchar(length=8, null=True, default=None)
    # Access tokens issued before this instant are invalid (logout-all, password change, block).
    tokens_valid_after = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    # free | premium: the effective plan (Stripe webhooks and admins set it; see store/plans.py)
    plan = Varchar(length=16, default="free")


class RefreshFamily(Table, tablename="refresh_families"):
    """One login's chain of rotated refresh tokens; re-use of an old link revokes the chain."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    current_jti = Varchar(length=64)
    revoked = Boolean(default=False)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    last_used_at = Timestamptz()


class Analysis(Table, tablename="analyses"):
    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=16)  # facial | chromatic
    status = Varchar(length=16, default="queued")  # queued|running|done|failed|cancelled
    image_sha256 = Varchar(length=64, null=True, default=None, index=True)
    inputs = JSON(default={})
    result = JSON(null=True, default=None)
    cached = Boolean(default=False)
    model = Varchar(length=80, default="")
    prompt_version = Varchar(length=40, default="")
    usage = JSON(default={})
    error_code = Varchar(length=40, null=True, default=None)
    error_message = Text(null=True, default=None)  # English, filled in (logs, admin, exports)
    # AppError.source(): msgid, plural and params, so each reader gets it in their language
    error_source = JSON(null=True, default=None)
    duration_ms = Integer(null=True, default=None)
    created_at = Timestamptz(index=True)
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    # Copies of what the admin analytics aggregate (synthia_rt/store/analytics.py), written with
    # ``result``/``usage`` (store/analyses.py ``figures``) so no report decodes JSON per row.
    season = Varchar(length=40, null=True, default=None)  # result.season
    face_shape = Varchar(length=40, null=True, default=None)  # result.face_shape
    prompt_tokens = Integer(default=0)  # usage.prompt_tokens (0 when absent)
    output_tokens = Integer(default=0)
    thought_tokens = Integer(default=0)


class Feedback(Table, tablename="feedback"):
    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    analysis = ForeignKey(references=Analysis, on_delete=OnDelete.cascade, null=True)
    rating = Integer()
    comment = Text(default="")
    created_at = Timestamptz()


class Notification(Table, tablename="notifications"):
    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=40, default="info")
    title = Varchar(length=200)
    body = Text(default="")
    read = Boolean(default=False)
    created_at = Timestamptz(index=True)


class Broadcast(Table, tablename="broadcasts"):
    """A notification to everyone: ONE row however many users (issue 12 B).  Every user created
    at or before ``created_at`` sees it in ``GET /notifications``; read state is per user."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    kind = Varchar(length=40, default="info")
    title = Varchar(length=200)
    body = Text(default="")
    created_at = Timestamptz(index=True)


class BroadcastRead(Table, tablename="broadcast_reads"):
    """That ``user`` has read ``broadcast``.  The id is derived from the pair
    (:func:`synthia_rt.store.notifications.read_id`), so marking read twice inserts once
    without a multi-column constraint (kept portable: column-level constraints only)."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    broadcast = ForeignKey(references=Broadcast, on_delete=OnDelete.cascade, index=True)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    read_at = Timestamptz()


class AuditLog(Table, tablename="audit_log"):
    """Who did what; ids only, never passwords, tokens, emails of deleted users or image data."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    action = Varchar(length=60, index=True)
    actor_id = Varchar(length=36, null=True, default=None)  # not a FK: survives deletion
    subject_id = Varchar(length=36, null=True, default=None)
    ip = Varchar(length=64, null=True, default=None)
    detail = JSON(default={})
    created_at = Timestamptz(index=True)


class StoredImage(Table, tablename="stored_images"):
    """An image uploaded over REST (``file_id``); bytes live in the upload store with a TTL."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    sha256 = Varchar(length=64)
    content_type = Varchar(length=40)
    size = Integer()
    created_at = Timestamptz()
    expires_at = Timestamptz()


class UsageMonth(Table, tablename="usage_months"):
    """Model-backed analyses one user started in one calendar month (UTC): the quota's truth.

    ``key`` is ``<user id>:<YYYY-MM>``, unique, so that a conditional ``UPDATE … WHERE used <
    limit`` on that one row is the race-free charge across nodes (store/plans.py)."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    key = Varchar(length=64, unique=True)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    month = Varchar(length=7)  # YYYY-MM
    used = Integer(default=0)


class Subscription(Table, tablename="subscriptions"):
    """A user's Stripe subscription as the webhooks last told it (one row per user)."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, unique=True)
    customer_id = Varchar(length=255, null=True, default=None, index=True)
    subscription_id = Varchar(length=255, null=True, default=None, index=True)
    status = Varchar(length=32, default="")  # Stripe's: active, trialing, past_due, canceled, …
    # ``created`` of the newest event applied: older events arriving late never regress state
    event_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz()


class StripeEvent(Table, tablename="stripe_events"):
    """Webhook event ids already processed: Stripe retries and replays are applied once."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    event_id = Varchar(length=255, unique=True)
    type = Varchar(length=80, default="")
    # whose subscription it moved; emptied (not deleted: the id stays processed) on erasure
    user = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()


class PushSubscription(Table, tablename="push_subscriptions"):
    """A browser's Web Push subscription (RFC 8030 endpoint + RFC 8291 keys) for one user."""

    id = UUID(primary_key=True, default=uuid.uuid4)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    endpoint = Varchar(length=2048, unique=True)
    p256dh = Varchar(length=200)
    auth = Varchar(length=100)
    created_at = Timestamptz()


TABLES: tuple[type[Table], ...] = (
    User,
    RefreshFamily,
    Analysis,
    Feedback,
    Notification,
    Broadcast,
    BroadcastRead,
    AuditLog,
    StoredImage,
    UsageMonth,
    Subscription,
    StripeEvent,
    PushSubscription,
)
