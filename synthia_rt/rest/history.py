"""``/history`` and ``/analyses/{id}``: the caller's analyses, newest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt import i18n
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import AnalysisErrorOut, AnalysisOut, AnalysisPage, HistoryQuery
from synthia_rt.store import history
from synthia_rt.store.history import AnalysisRecord
from synthia_rt.store.pagination import Cursor

TAGS = ("analyses",)


def analysis_out(record: AnalysisRecord) -> AnalysisOut:
    error = None
    if record.error is not None:  # in the reader's language, not the one it was stored in
        error = AnalysisErrorOut(
            code=str(record.error.code), message=record.error.text(i18n.current())
        )
    return AnalysisOut(
        id=record.id,
        kind=record.kind,
        status=record.status,  # type: ignore[arg-type]  # validated by the Literal
        result=record.result,
        labels=i18n.result_labels(record.kind, record.result)
        if isinstance(record.result, dict)
        else {},
        cached=record.cached,
        model=record.model,
        error=error,
        duration_ms=record.duration_ms,
        created_at=record.created_at,
        finished_at=record.finished_at,
    )


@api(
    "GET",
    "/history",
    "The caller's analyses, newest first",
    query=HistoryQuery,
    response=AnalysisPage,
    tags=TAGS,
    description="Pass `next_cursor` back as `cursor` for the next page.",
)
async def list_history(request: Request, principal: Principal, query: HistoryQuery) -> AnalysisPage:
    cursor = Cursor.decode(query.cursor) if query.cursor else None
    records, next_cursor = await history.page(principal.user_id, query.limit, cursor, query.kind)
    return AnalysisPage(items=[analysis_out(r) for r in records], next_cursor=next_cursor)


@api(
    "GET",
    "/analyses/{analysis_id}",
    "One analysis (its owner or an admin)",
    response=AnalysisOut,
    errors=[ErrorCode.NOT_FOUND],
    tags=TAGS,
    description="Someone else's analysis answers exactly like one that does not exist.",
)
async def get_analysis(request: Request, principal: Principal) -> AnalysisOut:
    record = await history.get(request.path_params["analysis_id"])
    if record is None or (record.user_id != principal.user_id and not principal.is_admin):
        raise AppError(ErrorCode.NOT_FOUND)
    return analysis_out(record)


routes: list[BaseRoute] = [list_history, get_analysis]
