"""``/admin``: notifications, blocking users, and the audit trail (role admin only).

Every state-changing action is audited with the acting admin's id and IP. Refusals follow the
error table: no or bad token → 401, a valid token without role admin → 403 ``forbidden``.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.broker.base import BrokerUnavailable
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.audit import audit
from synthia_rt.rest.deps import authenticate, client_ip, runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Body, Cursor, Limit, Out, Query
from synthia_rt.store import notifications, plans
from synthia_rt.store import users as user_store
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor as PageCursor
from synthia_rt.store.pagination import after, next_cursor
from synthia_rt.store.tables import AuditLog

TAGS = ("admin",)


async def require_admin_or_metrics_token(request: Request) -> None:
    """``/metrics``: an admin access token, or the scrape-only ``METRICS_TOKEN``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = runtime_of(request).settings.metrics_token
    if (
        expected
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        return
    if not (await authenticate(request)).is_admin:
        raise AppError(ErrorCode.FORBIDDEN, "This requires the admin role.")


# -- models ----------------------------------------------------------------------------------------
class NotificationIn(Body):
    user_id: Annotated[
        str | None, Field(max_length=64, description="The recipient; or set `all`.")
    ] = None
    all: bool = Field(
        default=False, description="Send to every active user (and live to `broadcast`)."
    )
    kind: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_.-]+$")] = "info"
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=4000)] = ""


class SentNotification(Out):
    id: str
    kind: str
    title: str
    body: str
    created_at: str


class NotificationSent(Out):
    target: str = Field(description="The recipient's id, or `all`.")
    notification: SentNotification


class BlockOut(Out):
    user_id: str
    active: bool


class AuditQuery(Query):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Cursor = None
    action: Annotated[str | None, Field(max_length=60)] = None


class AuditEntry(Out):
    id: str
    action: str
    actor_id: str | None
    subject_id: str | None
    ip: str | None
    detail: dict[str, Any]
    created_at: datetime


class AuditPage(Out):
    items: list[AuditEntry]
    next_cursor: str | None = None


# -- notifications ---------------------------------------------------------------------------------
@api(
    "POST",
    "/admin/notifications",
    "Notify one user or everyone",
    body=NotificationIn,
    response=NotificationSent,
    status=201,
    admin=True,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="Persisted first (offline users find it in `GET /notifications`), then "
    "pushed live as a `notification` event on `user:<id>` or `broadcast`.",
)
async def send_notification(
    request: Request, principal: Principal, body: NotificationIn
) -> NotificationSent:
    if body.all == (body.user_id is not None):
        # Checked here, not in a model validator, so the error can name its field.
        raise AppError(
            ErrorCode.VALIDATION_ERROR, "Give either user_id or all: true.", field="user_id"
        )
    hub = runtime_of(request).need_hub()
    try:
        if body.all:
            # Stored first (one row, whatever the number of users), then announced.
            record = await notifications.create_broadcast(body.kind, body.title, body.body)
            await hub.announce(record)
            target = "all"
        else:
            user = await user_store.by_id(str(body.user_id))
            if user is None:
                raise AppError(ErrorCode.NOT_FOUND, "No such user.", field="user_id")
            record = await notifications.create(user.id, body.kind, body.title, body.body)
            await hub.notify(user.id, record)
            target = user.id
    except BrokerUnavailable:
        # Persisted already (the user sees it in their list); only the live push failed.
        raise AppError(
            ErrorCode.UNAVAILABLE, "Saved, but live delivery is down; it was not pushed."
        ) from None
    await audit(
        "admin.notification",
        actor_id=principal.user_id,
        subject_id=None if body.all else target,
        ip=client_ip(request),
        kind=body.kind,
        target="all" if body.all else "user",
        notification_id=record.id,
    )
    return NotificationSent(
        target=target, notification=SentNotification.model_validate(record.event_payload())
    )


# -- blocking --------------------------------------------------------------------------------------
def _user_id_param(request: Request) -> str:
    uid = as_uuid(request.path_params["user_id"])
    if uid is None:
        raise AppError(ErrorCode.NOT_FOUND, "No such user.")
    return str(uid)


@api(
    "POST",
    "/admin/users/{user_id}/block",
    "Block a user and end their sessions",
    response=BlockOut,
    admin=True,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="Login is refused from then on, every token of the user is revoked, and their sockets "
    "on every node close with 4010. Repeating it is harmless.",
)
async def block_user(request: Request, principal: Principal) -> BlockOut:
    user_id = _user_id_param(request)
    if user_id == principal.user_id:
        raise AppError(
            ErrorCode.VALIDATION_ERROR, "An admin cannot block their own account.", field="user_id"
        )
    runtime = runtime_of(request)
    # Order matters: inactive first (login refuses), then every token, then the open sockets.
    if not await user_store.set_active(user_id, False):
        raise AppError(ErrorCode.NOT_FOUND, "No such user.")
    await runtime.forget_user(user_id)
    await runtime.need_tokens().revoke_user_tokens(user_id)
    await audit(
        "admin.user.block", actor_id=principal.user_id, subject_id=user_id, ip=client_ip(request)
    )
    try:
        await runtime.need_hub().revoke_user(user_id)
    except BrokerUnavailable:
        raise AppError(
            ErrorCode.UNAVAILABLE,
            "Blocked, but sockets on other nodes could not be told yet; repeat the request.",
        ) from None
    return BlockOut(user_id=user_id, active=False)


@api(
    "POST",
    "/admin/users/{user_id}/unblock",
    "Allow a blocked user to log in again",
    response=BlockOut,
    admin=True,
    errors=[ErrorCode.NOT_FOUND],
    tags=TAGS,
    description="Tokens revoked by the block stay revoked: the user logs in again.",
)
async def unblock_user(request: Request, principal: Principal) -> BlockOut:
    user_id = _user_id_param(request)
    if not await user_store.set_active(user_id, True):
        raise AppError(ErrorCode.NOT_FOUND, "No such user.")
    await runtime_of(request).forget_user(user_id)
    await audit(
        "admin.user.unblock", actor_id=principal.user_id, subject_id=user_id, ip=client_ip(request)
    )
    return BlockOut(user_id=user_id, active=True)


# -- finding users ---------------------------------------------------------------------------------
class UserSearchQuery(Query):
    q: Annotated[
        str,
        Field(
            max_length=320,
            description="Prefix of the email (any case) or of the id (dashes optional); "
            "empty lists everyone. `%` and `_` match themselves.",
        ),
    ] = ""
    cursor: Cursor = None
    limit: Limit = 20


class AdminUser(Out):
    id: str
    email: str
    display_name: str
    role: str
    active: bool = Field(description="False when an admin blocked the user.")
    blocked: bool
    created_at: datetime
    open_sockets: int | None = Field(
        description="Live sockets on every node; null when the presence store is unreachable."
    )
    analyses: int = Field(description="Analyses the user has (every status).")


class AdminUserPage(Out):
    items: list[AdminUser]
    next_cursor: str | None = None


async def _open_sockets(request: Request, user_ids: list[str]) -> list[int | None]:
    hub = runtime_of(request).hub
    if hub is None:
        return [None] * len(user_ids)
    counts = await asyncio.gather(
        *(hub.presence.count(uid) for uid in user_ids), return_exceptions=True
    )
    # Advisory: a Redis hiccup shows "unknown" instead of failing the search.
    return [c if isinstance(c, int) else None for c in counts]


@api(
    "GET",
    "/admin/users",
    "Find users by email or id prefix",
    query=UserSearchQuery,
    response=AdminUserPage,
    admin=True,
    errors=[ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="Newest first, keyset-paginated: pass `next_cursor` back as `cursor` with the "
    "same `q`. Each search is audited (`admin.user.search`, the length of `q`, never `q`).",
)
async def search_users(
    request: Request, principal: Principal, query: UserSearchQuery
) -> AdminUserPage:
    cursor = PageCursor.decode(query.cursor) if query.cursor else None
    rows = await user_store.search(query.q, cursor, query.limit)
    page = rows[: query.limit]
    ids = [str(r["id"]) for r in page]
    analyses = await user_store.analysis_counts([r["id"] for r in page])
    sockets = await _open_sockets(request, ids)
    await audit(
        "admin.user.search",
        actor_id=principal.user_id,
        ip=client_ip(request),
        q_length=len(query.q.strip()),
        results=len(page),
        continued=cursor is not None,
    )
    return AdminUserPage(
        items=[
            AdminUser(
                id=uid,
                email=r["email"],
                display_name=r["display_name"],
                role=r["role"],
                active=bool(r["active"]),
                blocked=not r["active"],
                created_at=r["created_at"],
                open_sockets=open_sockets,
                analyses=analyses.get(uid, 0),
            )
            for uid, r, open_sockets in zip(ids, page, sockets, strict=True)
        ],
        next_cursor=next_cursor(rows, query.limit),
    )


# -- audit trail -----------------------------------------------------------------------------------
def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=str(row["id"]),
        action=row["action"],
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        ip=row["ip"],
        detail=row["detail"] or {},
        created_at=row["created_at"],
    )


@api(
    "GET",
    "/admin/audit",
    "The audit trail, newest first",
    query=AuditQuery,
    response=AuditPage,
    admin=True,
    tags=TAGS,
    description="Keyset-paginated: pass `next_cursor` back as `cursor`. "
    "`action` filters by exact action name (e.g. `admin.user.block`).",
)
async def list_audit(request: Request, principal: Principal, query: AuditQuery) -> AuditPage:
    select = AuditLog.select().output(load_json=True)
    if query.cursor:
        select = select.where(
            after(PageCursor.decode(query.cursor), AuditLog.created_at, AuditLog.id)
        )
    if query.action:
        select = select.where(AuditLog.action == query.action)
    rows = (
        await select.order_by(AuditLog.created_at, AuditLog.id, ascending=False)
        .limit(query.limit + 1)
        .run()
    )
    return AuditPage(
        items=[_entry(r) for r in rows[: query.limit]], next_cursor=next_cursor(rows, query.limit)
    )


routes: list[BaseRoute] = [send_notification, block_user, unblock_user, search_users, list_audit]


# -- plans (billing) -------------------------------------------------------------------------------
class PlanIn(Body):
    plan: Literal["free", "premium"] = Field(description="The plan to grant (or `free` to revoke).")


class PlanOut(Out):
    user_id: str
    plan: Literal["free", "premium"]


@api(
    "POST",
    "/admin/users/{user_id}/plan",
    "Grant or revoke premium by hand",
    body=PlanIn,
    response=PlanOut,
    admin=True,
    errors=[ErrorCode.NOT_FOUND],
    tags=TAGS,
    description="Sets the user's plan now (audited as `admin.user.plan`). A later Stripe webhook "
    "for the user's subscription sets it again from the subscription's status.",
)
async def set_user_plan(request: Request, principal: Principal, body: PlanIn) -> PlanOut:
    user_id = _user_id_param(request)
    if not await plans.set_plan(user_id, body.plan):
        raise AppError(ErrorCode.NOT_FOUND, "No such user.")
    await runtime_of(request).forget_user(user_id)
    await audit(
        "admin.user.plan",
        actor_id=principal.user_id,
        subject_id=user_id,
        ip=client_ip(request),
        plan=body.plan,
    )
    return PlanOut(user_id=user_id, plan=body.plan)


routes.append(set_user_plan)
