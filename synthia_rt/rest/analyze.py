"""REST compatibility for clients that cannot hold a socket: the same pipeline, awaited.

``POST /facial-analysis/analyze`` (multipart image, or JSON ``{"file_id"}`` of an image kept by
``POST /files/upload``) and ``POST /chromatic-analysis/analyze`` (quiz answers as JSON)
validate, run and persist exactly as the socket does — cache, slot limit, events on
``analysis:<id>`` and ``user:<id>`` included — and answer with the final ``analysis.result``
payload. If the client goes away, the analysis still finishes.

``GET /chromatic-analysis/questions`` lists the quiz (the ids the answers use), cacheable:
``ETag`` + ``Cache-Control``, ``If-None-Match`` answered 304.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.analysis import quiz
from synthia_rt.analysis.models import ChromaticResult, FacialResult
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import ErrorCode
from synthia_rt.rest.deps import read_body
from synthia_rt.rest.files import IMAGE_ERRORS, read_image_part, service_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Body, Out, Query

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
        description="Question id → option id, as listed by `GET /chromatic-analysis/questions` or "
        "the socket's `quiz.start` (at least 4 answers).",
        max_length=32,
    )


class FileIn(Body):
    file_id: str = Field(description="The id `POST /files/upload` answered.", max_length=64)


@api(
    "POST",
    "/facial-analysis/analyze",
    "Analyse a face photo and wait for the result",
    response=FacialAnalysisOut,
    errors=(
        *IMAGE_ERRORS,
        ErrorCode.NOT_FOUND,
        ErrorCode.HASH_MISMATCH,
        ErrorCode.NO_FACE_DETECTED,
        *MODEL_ERRORS,
    ),
    tags=TAGS,
    description="multipart/form-data with one file part `image` (or `file`): JPEG, PNG or WEBP; "
    'or JSON `{"file_id": …}` naming an image kept by `POST /files/upload` (as the socket\'s '
    "`analysis.start {file_id}`; 404 naming `file_id` when it is unknown or expired).",
)
async def facial(request: Request, principal: Principal) -> Response:
    service = service_of(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await read_body(request, FileIn)
        payload = await service.analyze_file_now(principal, body.file_id)
    else:
        payload = await service.analyze_image_now(principal, await read_image_part(request))
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
async def chromatic(request: Request, principal: Principal, body: ChromaticIn) -> Response:
    payload = await service_of(request).analyze_answers_now(principal, body.answers)
    return with_cache_status(ChromaticAnalysisOut.model_validate(payload))


class QuestionsQuery(Query):
    locale: Annotated[
        str | None,
        Field(
            max_length=35,
            description="A language tag (en, es-MX); else Accept-Language, else the default.",
        ),
    ] = None


class QuizOption(Out):
    id: str
    label: str


class QuizQuestion(Out):
    id: str
    text: str
    options: list[QuizOption]


class QuestionsOut(Out):
    questions: list[QuizQuestion]
    min_answers: int = Field(
        description="`POST /chromatic-analysis/analyze` needs at least this many."
    )


QUESTIONS_MAX_AGE = 3600  # seconds a client or proxy may reuse the list without asking


def _locale(request: Request, query: QuestionsQuery) -> str | None:
    if query.locale:
        return query.locale
    accept = request.headers.get("accept-language", "")
    first = accept.split(",", 1)[0].split(";", 1)[0].strip()
    return first if first and first != "*" and len(first) <= 35 else None


@api(
    "GET",
    "/chromatic-analysis/questions",
    "The colour quiz: question and option ids for /chromatic-analysis/analyze",
    query=QuestionsQuery,
    response=QuestionsOut,
    auth=False,
    tags=TAGS,
    description="Public and cacheable: `ETag` and `Cache-Control: public, max-age=3600`; a "
    "request with a matching `If-None-Match` is answered 304 without a body. The texts follow "
    "`locale`, else `Accept-Language` (`Vary: Accept-Language`).",
)
async def questions(request: Request, query: QuestionsQuery) -> Response:
    out = QuestionsOut.model_validate(
        {
            "questions": quiz.public_questions(_locale(request, query)),
            "min_answers": quiz.MIN_ANSWERS,
        }
    )
    body = out.model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={QUESTIONS_MAX_AGE}",
        "Vary": "Accept-Language",
    }
    match = request.headers.get("if-none-match", "")
    if etag in (t.strip().removeprefix("W/") for t in match.split(",")) or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def with_cache_status(result: FacialAnalysisOut | ChromaticAnalysisOut) -> Response:
    """The JSON body plus ``X-Cache: HIT|MISS``, so clients and proxies see a cached answer."""
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={"X-Cache": "HIT" if result.cached else "MISS"},
    )


routes: list[BaseRoute] = [facial, chromatic, questions]
