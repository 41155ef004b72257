"""Pure-ASGI middleware: request ids and access log, HTTP metrics, security headers, CORS, gzip.

Pure ASGI (no ``BaseHTTPMiddleware``) so WebSocket scopes pass through untouched and
streaming responses are not buffered.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synthia_rt.observability.logging import request_id
from synthia_rt.settings import Settings

log = logging.getLogger("synthia_rt.access")

REQUEST_ID_HEADER = "x-request-id"
CLIENT_CLOSED = 499  # logged status of a request whose client left before the answer (nginx's)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")  # a caller's id is kept only if harmless


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _VALID_ID.match(text) else None
    return None


class RequestIdMiddleware:
    """Give each request/connection an id (the caller's ``X-Request-ID`` if sane), put it in
    the logging context and the response headers, and log one access line per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left mid-body: nobody to answer, nothing went wrong here. Swallowed
            # before Starlette's error middleware would turn it into a 500 with a traceback.
            if scope["type"] != "http":
                raise
            status = status or CLIENT_CLOSED
        finally:
            if scope["type"] == "http":
                # The path only: a query string could carry something secret.
                log.info(
                    "%s %s %s",
                    scope.get("method"),
                    scope.get("path"),
                    status,
                    extra={
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            request_id.reset(token)


UNMATCHED_ROUTE = "unmatched"  # the one label of every path no route matches (404 scans)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/v1/users/{user_id}``), never the raw
    path; :data:`UNMATCHED_ROUTE` when none did. Read after the router has run: it leaves the
    innermost matched route in ``scope["route"]`` and the mount prefixes in ``root_path``."""
    route: BaseRoute | None = scope.get("route")
    root: str = scope.get("root_path", "")
    prefix = root[len(str(scope.get("app_root_path", ""))) :]
    if isinstance(route, Mount):  # a mounted app (static files): its path stays one label
        return prefix + "/{path}"
    if isinstance(route, Route):
        return prefix + str(route.path)
    return UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """Count and time every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except ClientDisconnect:
            status = status or CLIENT_CLOSED
            raise
        except BaseException:
            status = status or 500
            raise
        finally:
            app = scope.get("app")
            runtime = getattr(getattr(app, "state", None), "runtime", None)
            metrics = getattr(runtime, "metrics", None)
            if metrics is not None:
                route = route_template(scope)
                method = scope.get("method", "")
                method = method if method in _METHODS else "other"
                metrics.http_requests.labels(route, method, str(status or 500)).inc()
                metrics.http_latency.labels(route, method).observe(time.perf_counter() - started)


_SAFE_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def connect_sources(origins: tuple[str, ...]) -> list[str]:
    """``'self'``, and each allowed origin with its WebSocket twin (``https://x`` → ``wss://x``)."""
    sources = ["'self'"]
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in {"http", "https"} or not _SAFE_HOST.match(rest):
            continue
        sources += [origin, f"{'wss' if scheme == 'https' else 'ws'}://{rest}"]
    return list(dict.fromkeys(sources))


class SecurityHeadersMiddleware:
    """Conservative defaults; an endpoint that sets its own CSP keeps it.

    ``connect-src`` names this host's sockets (``ws(s)://<Host>``: older browsers do not count
    them as ``'self'``) and the allowed origins, never every ``ws:``/``wss:`` host.
    """

    CSP = "default-src 'self'; img-src 'self' data: blob:; connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    def __init__(self, app: ASGIApp, hsts: bool = False, origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.hsts = hsts
        self.sources = connect_sources(origins)

    def csp(self, scope: Scope) -> str:
        sources = list(self.sources)
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
                if _SAFE_HOST.match(host):
                    sources += [f"ws://{host}", f"wss://{host}"]
                break
        return self.CSP.format(connect=" ".join(dict.fromkeys(sources)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("referrer-policy", "no-referrer")
                headers.setdefault("cross-origin-opener-policy", "same-origin")
                headers.setdefault("content-security-policy", self.csp(scope))
                if self.hsts:
                    headers.setdefault(
                        "strict-transport-security", "max-age=31536000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ExplainedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, plus one INFO line per refused preflight Origin (per process, for the
    first :data:`REFUSED_ORIGINS_LOGGED` distinct origins) naming the setting to change: a
    browser only says "blocked by CORS policy", so the server log is where the hint belongs."""

    _explained: set[str] | None = None  # origins already explained (this instance)

    def preflight_response(self, request_headers: Headers) -> Response:
        origin = request_headers.get("origin", "")
        if self._explained is None:
            self._explained = set()
        if (
            not self.is_allowed_origin(origin)
            and origin not in self._explained
            and len(self._explained) < REFUSED_ORIGINS_LOGGED
        ):
            self._explained.add(origin)
            log.info(
                "CORS preflight refused: Origin %r is not allowed; add it to ALLOWED_ORIGINS "
                "(comma-separated exact origins, e.g. http://localhost:5173 for a Vite dev server)",
                origin[:200],
                extra={"origin": origin[:200], "setting": "ALLOWED_ORIGINS"},
            )
        return super().preflight_response(request_headers)


REFUSED_ORIGINS_LOGGED = 100


def middleware_stack(settings: Settings) -> list[Middleware]:
    """Outermost first: the request id wraps everything so every log line carries it."""
    return [
        Middleware(RequestIdMiddleware),
        Middleware(HttpMetricsMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.production, origins=settings.origins),
        Middleware(
            ExplainedCORSMiddleware,
            allow_origins=list(settings.origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "retry-after"],
            allow_credentials=False,  # bearer tokens, no cookies
            max_age=600,
        ),
        Middleware(GZipMiddleware, minimum_size=1024),
    ]
