"""``/feedback``: rate the service or one of one's analyses; list feedback (admins: everyone's)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.auth.throttle import enforce
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.deps import runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import FeedbackIn, FeedbackOut, FeedbackPage, PageQuery
from synthia_rt.store import feedback, history
from synthia_rt.store.pagination import Cursor

TAGS = ("feedback",)


@api(
    "POST",
    "/feedback",
    "Leave feedback",
    body=FeedbackIn,
    response=FeedbackOut,
    status=201,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.RATE_LIMITED],
    tags=TAGS,
    description="`analysis_id`, when given, must be one of the caller's analyses (else 404). "
    "Limited per user (`FEEDBACK_RATE`, default 20 per hour; 429 with `Retry-After`).",
)
async def create_feedback(request: Request, principal: Principal, body: FeedbackIn) -> FeedbackOut:
    runtime = runtime_of(request)
    await enforce(
        runtime.need_limiter(),
        runtime.settings.feedback_rate,
        "feedback-user",
        principal.user_id,
        "Too much feedback; try again later.",
    )
    analysis_id = str(body.analysis_id) if body.analysis_id else None
    if analysis_id is not None and not await history.owned_by(analysis_id, principal.user_id):
        raise AppError(ErrorCode.NOT_FOUND, "No such analysis.", field="analysis_id")
    record = await feedback.create(principal.user_id, body.rating, body.comment, analysis_id)
    return FeedbackOut.model_validate(record)


@api(
    "GET",
    "/feedback",
    "Feedback, newest first (own; admins see everyone's)",
    query=PageQuery,
    response=FeedbackPage,
    tags=TAGS,
)
async def list_feedback(request: Request, principal: Principal, query: PageQuery) -> FeedbackPage:
    cursor = Cursor.decode(query.cursor) if query.cursor else None
    owner = None if principal.is_admin else principal.user_id
    records, next_cursor = await feedback.page(owner, query.limit, cursor)
    return FeedbackPage(
        items=[FeedbackOut.model_validate(r) for r in records], next_cursor=next_cursor
    )


routes: list[BaseRoute] = [create_feedback, list_feedback]
