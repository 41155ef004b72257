"""``/i18n/ui``: the pages' words in one language, for switching language without a reload."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.rest.deps import header_locale
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out, Query
from synthia_rt.web import ui


class UiQuery(Query):
    locale: Literal["es", "en"] | None = Field(
        default=None,
        description="The language wanted; without it, Accept-Language, else the server default.",
    )


class UiStringsOut(Out):
    locale: Literal["es", "en"]
    languages: dict[str, str] = Field(description="The languages offered, each named in itself.")
    strings: dict[str, str] = Field(
        description="The pages' texts by key; `{name}` marks a placeholder."
    )
    labels: dict[str, dict[str, str]] = Field(
        description="Result keys as words, by group: face_shape, tone, undertone, season, "
        "subseason, contrast, category."
    )


@api(
    "GET",
    "/i18n/ui",
    "The texts of the web pages in one language",
    query=UiQuery,
    response=UiStringsOut,
    auth=False,
    tags=("pages",),
    description="What `/` and `/admin` embed at first paint, for a language switch in place. "
    "Public and the same for everyone: cacheable.",
)
async def ui_strings(request: Request, query: UiQuery) -> Response:
    locale = query.locale or header_locale(request)
    body = UiStringsOut.model_validate(ui.bundle(locale)).model_dump_json()
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300", "Vary": "Accept-Language"},
    )


routes: list[BaseRoute] = [ui_strings]
