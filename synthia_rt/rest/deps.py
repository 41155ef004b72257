"""What a REST handler needs from a request: the runtime, the caller, the parsed body/query."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from synthia_rt import i18n
from synthia_rt.auth.principal import Principal
from synthia_rt.clientaddr import client_address
from synthia_rt.errors import AppError, ErrorCode, counted, field_error
from synthia_rt.runtime import Runtime
from synthia_rt.store import users

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024  # JSON bodies are small; images go over the socket or their own route


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_ip(request: Request) -> str | None:
    """The client's address (``X-Forwarded-For`` only from ``FORWARDED_ALLOW_IPS`` peers)."""
    return client_address(request.scope, runtime_of(request).settings.forwarded_allow_ips)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise AppError(ErrorCode.UNAUTHORIZED)
    principal = await runtime_of(request).need_tokens().verify_access(token)
    request.state.principal = principal
    await request_locale(request)
    return principal


def header_locale(request: Request) -> str:
    """``Accept-Language``, else ``DEFAULT_LOCALE`` (what an anonymous caller is answered in)."""
    settings = runtime_of(request).settings
    return i18n.negotiate(None, request.headers.get("accept-language"), settings.default_locale)


async def request_locale(request: Request) -> str:
    """The caller's language: their saved locale, else ``Accept-Language``, else
    ``DEFAULT_LOCALE``. Kept on ``request.state.locale`` (the error handler reads it) and set
    as the current locale of the work this request starts."""
    known: str | None = getattr(request.state, "locale", None)
    if known is not None:
        return known
    saved = None
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        try:
            saved = await users.saved_locale(principal.user_id)
        except AppError:  # the database is down: the header still tells the language
            saved = None
    locale = i18n.normalise(saved) or header_locale(request)
    request.state.locale = locale
    i18n.use(locale)
    return locale


def validation_error(exc: ValidationError) -> AppError:
    """The first problem, naming its field; wrong JSON types are ``bad_request``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "json_invalid" or field is None:
        return AppError(ErrorCode.BAD_REQUEST, "The body must be a JSON object.")
    code = ErrorCode.BAD_REQUEST if kind.endswith("_type") else ErrorCode.VALIDATION_ERROR
    return field_error(code, kind, field)


def _too_large() -> AppError:
    return counted(
        ErrorCode.TOO_LARGE,
        "The body exceeds {n} byte.",
        "The body exceeds {n} bytes.",
        MAX_BODY_BYTES,
    )


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[M]) -> M:
    raw = await _read_bounded(request)
    if not raw.strip():
        raw = b"{}"  # an empty body is an empty object: models with all-optional fields accept it
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def read_query(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise validation_error(exc) from None
