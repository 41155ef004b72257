"""REST compatibility for clients that cannot hold a socket: the same pipeline, awaited.

``POST /facial-analysis/analyze`` (multipart image) and ``POST /chromatic-analysis/analyze``
(quiz answers as JSON) validate, run and persist exactly as the socket does — cache, slot
limit, events on ``analysis:<id>`` and ``user:<id>`` included — and answer with the final
``analysis.result`` payload. If the client goes away, the analysis still finishes.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.analysis.models import ChromaticResult, FacialResult
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import ErrorCode
from synthia_rt.rest.files import IMAGE_ERRORS, read_image_part, service_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Body, Out

TAGS = ("analysis",)
MODEL_ERRORS = (
    ErrorCode.RATE_LIMITED,
    ErrorCode.QUOTA_EXCEEDED,
    ErrorCode.BLOCKED,
    ErrorCode.MODEL_UNAVAILABLE,
    ErrorCode.MODEL_ERROR,
    ErrorCode.CANCELLED,
    ErrorCode.UNAVAILABLE,
)


class _AnalysisOut(Out):
    analysis_id: str
    kind: str
    cached: bool = Field(description="Answered from the result cache, without a model call.")
    model: str
    usage: dict[str, Any]
    duration_ms: int


class FacialAnalysisOut(_AnalysisOut):
    result: FacialResult


class ChromaticAnalysisOut(_AnalysisOut):
    result: ChromaticResult


class ChromaticIn(Body):
    answers: dict[str, str] = Field(
        description="Question id → option id, as listed by the socket's `quiz.start` (at least 4 answers).",
        max_length=32,
    )


@api(
    "POST",
    "/facial-analysis/analyze",
    "Analyse a face photo and wait for the result",
    response=FacialAnalysisOut,
    errors=(*IMAGE_ERRORS, ErrorCode.HASH_MISMATCH, ErrorCode.NO_FACE_DETECTED, *MODEL_ERRORS),
    tags=TAGS,
    description="multipart/form-data with one file part `image` (or `file`): JPEG, PNG or WEBP.",
)
async def facial(request: Request, principal: Principal) -> Response:
    data = await read_image_part(request)
    payload = await service_of(request).analyze_image_now(principal, data)
    return with_cache_status(FacialAnalysisOut.model_validate(payload))


@api(
    "POST",
    "/chromatic-analysis/analyze",
    "Find the colour season from quiz answers and wait for it",
    body=ChromaticIn,
    response=ChromaticAnalysisOut,
    errors=MODEL_ERRORS,
    tags=TAGS,
)
async def chromatic(
    request: Request, principal: Principal, body: ChromaticIn
) -> Response:
    payload = await service_of(request).analyze_answers_now(principal, body.answers)
    return with_cache_status(ChromaticAnalysisOut.model_validate(payload))


def with_cache_status(result: FacialAnalysisOut | ChromaticAnalysisOut) -> Response:
    """The JSON body plus ``X-Cache: HIT|MISS``, so clients and proxies see a cached answer."""
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={"X-Cache": "HIT" if result.cached else "MISS"},
    )


routes: list[BaseRoute] = [facial, chromatic]
