"""``GET /admin/analytics``: usage figures per local day for admins (JSON or long-format CSV).

Definitions (active users, conversions, cost, …) are in docs/analytics.md; the SQL is in
``synthia_rt/store/analytics.py``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode, counted
from synthia_rt.observability.audit import audit
from synthia_rt.rest.deps import client_ip, runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out, Query
from synthia_rt.store import analytics as store

MAX_DAYS = 366
DEFAULT_DAYS = 30


class AnalyticsQuery(Query):
    model_config = ConfigDict(strict=False, populate_by_name=True)

    start: date | None = Field(
        default=None,
        alias="from",
        description="First local day, YYYY-MM-DD (default: 29 days before `to`).",
    )
    end: date | None = Field(
        default=None,
        alias="to",
        description="Last local day, inclusive, YYYY-MM-DD (default: today in `tz`).",
    )
    tz: Annotated[
        str, Field(min_length=1, max_length=64, description="IANA time zone of the days.")
    ] = "UTC"
    format: Literal["json", "csv"] = Field(
        default="json",
        description="`csv`: long format `date,metric,key,value` (docs/analytics.md).",
    )


class DayOut(Out):
    date: date
    active_users: int
    signups: int
    analyses: int
    cached: int = Field(description="Analyses answered from the result cache: model calls saved.")
    prompt_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: float = Field(description="Estimated model cost from the day's token usage.")
    conversions: int
    push_optins: int


class WeekOut(Out):
    week_start: date = Field(
        description="Monday of the ISO week (counts are clipped to the range)."
    )
    active_users: int


class OutcomeOut(Out):
    date: date
    kind: str
    status: str
    error_code: str = Field(description="Empty unless the analysis failed with a code.")
    count: int


class TotalsOut(Out):
    active_users: int = Field(description="Distinct users active on any day of the range.")
    signups: int
    analyses: int
    cached: int
    prompt_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: float
    conversions: int
    push_optins: int


class PricesOut(Out):
    currency: Literal["USD"] = "USD"
    input_per_1m: float
    output_per_1m: float


class AnalyticsOut(Out):
    date_from: date
    date_to: date
    tz: str
    prices: PricesOut
    totals: TotalsOut
    daily: list[DayOut]
    weekly: list[WeekOut]
    outcomes: list[OutcomeOut]
    seasons: dict[str, int] = Field(description="Done chromatic analyses by season.")
    face_shapes: dict[str, int] = Field(description="Done facial analyses by face shape.")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AppError(
            ErrorCode.VALIDATION_ERROR,
            "tz: '{name}' is not an IANA time zone (e.g. Europe/Madrid).",
            field="tz",
            params={"name": name},
        ) from None


def _range(query: AnalyticsQuery, tz: ZoneInfo) -> tuple[date, date]:
    end = query.end or datetime.now(UTC).astimezone(tz).date()
    start = query.start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise AppError(ErrorCode.VALIDATION_ERROR, "from: must not be after `to`.", field="from")
    if (end - start).days + 1 > MAX_DAYS:
        raise counted(
            ErrorCode.VALIDATION_ERROR,
            "from: the range spans more than {n} day.",
            "from: the range spans more than {n} days.",
            MAX_DAYS,
            field="from",
        )
    return start, end


def build(report: store.Report, prices: store.Prices) -> AnalyticsOut:
    daily = [
        DayOut(
            date=d.date,
            active_users=d.active_users,
            signups=d.signups,
            analyses=d.analyses,
            cached=d.cached,
            prompt_tokens=d.prompt_tokens,
            output_tokens=d.output_tokens,
            thought_tokens=d.thought_tokens,
            cost_usd=round(prices.cost(d.prompt_tokens, d.output_tokens + d.thought_tokens), 6),
            conversions=d.conversions,
            push_optins=d.push_optins,
        )
        for d in report.days
    ]
    prompt = sum(d.prompt_tokens for d in report.days)
    output = sum(d.output_tokens for d in report.days)
    thought = sum(d.thought_tokens for d in report.days)
    totals = TotalsOut(
        active_users=report.active_users,
        signups=sum(d.signups for d in daily),
        analyses=sum(d.analyses for d in daily),
        cached=sum(d.cached for d in daily),
        prompt_tokens=prompt,
        output_tokens=output,
        thought_tokens=thought,
        cost_usd=round(prices.cost(prompt, output + thought), 6),
        conversions=sum(d.conversions for d in daily),
        push_optins=sum(d.push_optins for d in daily),
    )
    return AnalyticsOut(
        date_from=report.start,
        date_to=report.end,
        tz=report.tz,
        prices=PricesOut(input_per_1m=prices.input_per_1m, output_per_1m=prices.output_per_1m),
        totals=totals,
        daily=daily,
        weekly=[WeekOut(week_start=w, active_users=n) for w, n in report.weekly_active],
        outcomes=[
            OutcomeOut(date=d, kind=k, status=s, error_code=e, count=n)
            for d, k, s, e, n in report.outcomes
        ],
        seasons=report.seasons,
        face_shapes=report.face_shapes,
    )


DAY_METRICS = (
    "active_users",
    "signups",
    "analyses",
    "cached",
    "prompt_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "conversions",
    "push_optins",
)


def to_csv(out: AnalyticsOut) -> str:
    """Long format ``date,metric,key,value``: one row per figure (docs/analytics.md)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["date", "metric", "key", "value"])
    for day in out.daily:
        for metric in DAY_METRICS:
            writer.writerow([day.date.isoformat(), metric, "", getattr(day, metric)])
    for week in out.weekly:
        writer.writerow([week.week_start.isoformat(), "weekly_active_users", "", week.active_users])
    for o in out.outcomes:
        writer.writerow(
            [
                o.date.isoformat(),
                "analyses_by_outcome",
                f"{o.kind}/{o.status}/{o.error_code}",
                o.count,
            ]
        )
    for name, value in out.totals.model_dump().items():
        writer.writerow(["", f"total_{name}", "", value])
    for season, n in out.seasons.items():
        writer.writerow(["", "season", season, n])
    for shape, n in out.face_shapes.items():
        writer.writerow(["", "face_shape", shape, n])
    return buffer.getvalue()


@api(
    "GET",
    "/admin/analytics",
    "Usage analytics per local day",
    query=AnalyticsQuery,
    response=AnalyticsOut,
    admin=True,
    errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.UNAVAILABLE],
    tags=("admin",),
    description="Active users (analysis or password sign-in), sign-ups, analyses by kind and "
    "outcome, cache hits (model calls saved), tokens and estimated cost, seasons and face shapes, "
    "free→premium conversions and push opt-ins, per calendar day in `tz` for `from`…`to` "
    f"(at most {MAX_DAYS} days). `format=csv` answers `text/csv` in the long format "
    "`date,metric,key,value`. PostgreSQL only (503 `unavailable` on the embedded store). "
    "Each request is audited as `admin.analytics`. Definitions: docs/analytics.md.",
)
async def analytics(
    request: Request, principal: Principal, query: AnalyticsQuery
) -> AnalyticsOut | Response:
    tz = _zone(query.tz)
    start, end = _range(query, tz)
    settings = runtime_of(request).settings
    try:
        report = await store.report(start, end, query.tz)
    except store.NeedsPostgres:
        raise AppError(
            ErrorCode.UNAVAILABLE,
            "Analytics needs PostgreSQL (DATABASE_URL); the embedded SQLite store has none.",
        ) from None
    await audit(
        "admin.analytics",
        actor_id=principal.user_id,
        ip=client_ip(request),
        range_start=start.isoformat(),
        range_end=end.isoformat(),
        tz=query.tz,
        format=query.format,
    )
    out = build(
        report, store.Prices(settings.model_price_input_per_1m, settings.model_price_output_per_1m)
    )
    if query.format == "csv":
        filename = f"analytics-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(
            to_csv(out),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return out


routes: list[BaseRoute] = [analytics]
