"""Turning refusals into ``{"error": {"code", "message"[, "field", "retry_after"]}}`` responses.

Only :class:`AppError` content reaches a client. A database outage (a lost or refused
connection, see :mod:`synthia_rt.store.faults`) becomes ``unavailable`` — 503 with
``Retry-After`` and one WARNING line — on every route alike. Anything else becomes ``internal``
with the request id (the details go to the log), never a stack trace or exception text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from synthia_rt import i18n
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.logging import request_id
from synthia_rt.store import faults

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def error_response(
    error: AppError, headers: Mapping[str, str] | None = None, locale: str | None = None
) -> Response:
    """The error as JSON; with ``locale`` its message is translated (codes stay English)."""
    out = dict(headers or {})
    if error.retry_after is not None:
        out["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    if error.status == 401:
        out["www-authenticate"] = "Bearer"
    body = orjson.dumps({"error": error.to_dict(locale)})
    return Response(body, status_code=error.status, media_type="application/json", headers=out)


def internal_error(exc: BaseException) -> Response:
    """The answer to an exception that is not an :class:`AppError`: ``unavailable`` (503) for
    a database outage, else ``internal`` (500) with the trace in the log. Every route's
    unexpected exception ends here, so the mapping is the same everywhere."""
    rid = request_id.get()
    if faults.is_unavailable(exc):
        return error_response(faults.unavailable(exc, f"request {rid}" if rid else "request"))
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    if rid:
        return error_response(
            AppError(
                ErrorCode.INTERNAL,
                "An unexpected error occurred (request {rid}).",
                params={"rid": rid},
            )
        )
    return error_response(AppError(ErrorCode.INTERNAL, "An unexpected error occurred."))


def _locale(request: Request) -> str:
    """Saved locale (set on the request by authentication) or the request's own headers."""
    known: str | None = getattr(request.state, "locale", None)
    if known is not None:
        return known
    settings = request.app.state.runtime.settings
    return i18n.negotiate(None, request.headers.get("accept-language"), settings.default_locale)


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.code is ErrorCode.INTERNAL:
        log.error("internal error: %s", exc.message)
    return error_response(exc, locale=_locale(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code)
    if code is None:
        return (
            internal_error(exc)
            if exc.status_code >= 500
            else error_response(AppError(ErrorCode.BAD_REQUEST), locale=_locale(request))
        )
    return error_response(AppError(code), headers=exc.headers, locale=_locale(request))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return internal_error(exc)


async def _backend_error(request: Request, exc: Exception) -> Response:
    """Exceptions that may be a database outage: 503 if they are, else ``internal``."""
    return internal_error(exc)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Any]]:
    # The outage classes get their own handlers (not the catch-all ``Exception`` one, which
    # Starlette runs in ServerErrorMiddleware and then re-raises for the server to log).
    return {
        AppError: _app_error,
        HTTPException: _http_error,
        **{cls: _backend_error for cls in faults.CANDIDATES},
        Exception: _unexpected,
    }
