"""``/notifications``: the caller's notifications (also delivered live on ``user:<id>``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import NotificationOut, NotificationPage, NotificationQuery
from synthia_rt.store import notifications
from synthia_rt.store.pagination import Cursor

TAGS = ("notifications",)


@api(
    "GET",
    "/notifications",
    "The caller's notifications, newest first",
    query=NotificationQuery,
    response=NotificationPage,
    tags=TAGS,
)
async def list_notifications(
    request: Request, principal: Principal, query: NotificationQuery
) -> NotificationPage:
    cursor = Cursor.decode(query.cursor) if query.cursor else None
    records, next_cursor = await notifications.page(
        principal.user_id, query.limit, cursor, query.unread
    )
    return NotificationPage(
        items=[NotificationOut.model_validate(r) for r in records], next_cursor=next_cursor
    )


@api(
    "POST",
    "/notifications/{notification_id}/read",
    "Mark a notification read",
    response=NotificationOut,
    errors=[ErrorCode.NOT_FOUND],
    tags=TAGS,
)
async def mark_read(request: Request, principal: Principal) -> NotificationOut:
    record = await notifications.mark_read(
        principal.user_id, request.path_params["notification_id"]
    )
    if record is None:
        raise AppError(ErrorCode.NOT_FOUND)
    return NotificationOut.model_validate(record)


routes: list[BaseRoute] = [list_notifications, mark_read]
