"""The ``/ws`` handshake (origin, subprotocol, token, connection cap), then the session.

Protocol section 1. A browser never sees the HTTP status of a refused upgrade (only 1006), so a
client that offered ``synthia.v1`` is told in a close code instead: the upgrade is accepted
(selecting ``synthia.v1``), no frame is sent, and the socket is closed at once with

* 4001 ``token_expired``; 4003 token missing, malformed, forged or not an access token;
  4010 token revoked (logout, password change, block, deleted user);
* 1013 when the handshake cannot be served right now (Redis/database down, node draining) —
  a dependency failure is never reported as an authentication failure;
* 4029 when the user already holds ``MAX_CONNECTIONS_PER_USER`` sockets.

The close reason is the error code. A client that offered no subprotocol gets HTTP statuses
instead (401, 429, 503 with ``Retry-After``) and a JSON error body. Before any of that, and
whatever was offered: 403 for a foreign ``Origin``, 400 for a subprotocol list without
``synthia.v1``. Tokens are read from the subprotocol list (``bearer.<token>``) or the
``Authorization`` header — never from the URL, and a ``token`` query parameter is ignored.

Refusals are expected traffic: logged at INFO, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket

from synthia_rt import i18n
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, CloseCode, ErrorCode, TokenRevoked
from synthia_rt.observability.logging import request_id
from synthia_rt.realtime.protocol import BEARER_PREFIX, SUBPROTOCOL
from synthia_rt.realtime.session import Session
from synthia_rt.realtime.transport import quiet_uvicorn_refusals
from synthia_rt.runtime import Runtime
from synthia_rt.store import users

log = logging.getLogger(__name__)

quiet_uvicorn_refusals()


def _bearer(websocket: WebSocket) -> str | None:
    for entry in websocket.scope.get("subprotocols", []):
        if entry.startswith(BEARER_PREFIX) and len(entry) > len(BEARER_PREFIX):
            return str(entry[len(BEARER_PREFIX) :])
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def _deny(websocket: WebSocket, error: AppError) -> None:
    """An HTTP answer instead of the upgrade (clients that can read it: not browsers)."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    body = orjson.dumps({"error": error.to_dict(i18n.current())})
    response = Response(
        body, status_code=error.status, media_type="application/json", headers=headers
    )
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:  # servers without the denial extension can only say 403
        await websocket.close(1008)


def close_code_for(error: AppError) -> int:
    """The close code a ``synthia.v1`` client gets for a refused handshake."""
    if isinstance(error, TokenRevoked):
        return CloseCode.SESSION_REVOKED
    if error.code is ErrorCode.TOKEN_EXPIRED:
        return CloseCode.TOKEN_EXPIRED
    if error.code is ErrorCode.TOO_MANY_CONNECTIONS:
        return CloseCode.TOO_MANY_CONNECTIONS
    if error.status == 401:  # unauthorized, token_invalid (forged, malformed, refresh token)
        return CloseCode.UNAUTHORIZED
    return CloseCode.TRY_AGAIN_LATER  # unavailable, internal: nothing the client did wrong


async def _refuse(websocket: WebSocket, subprotocol: str | None, error: AppError) -> None:
    code = close_code_for(error) if subprotocol == SUBPROTOCOL else error.status
    log.info("socket refused: %s", error.code, extra={"code": str(error.code), "close": code})
    if subprotocol != SUBPROTOCOL:
        await _deny(websocket, error)
        return
    try:
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code, reason=str(error.code))
    except Exception:  # noqa: BLE001 - the client left during the handshake
        pass


def origin_allowed(websocket: WebSocket, runtime: Runtime) -> bool:
    """Exact match against ``ALLOWED_ORIGINS``; when that is unset, the page's own origin
    (the one this server is reached at) is allowed, so `serve --port N` works out of the box."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: nothing for an allow-list to protect
    if runtime.settings.allowed_origins:
        return origin in runtime.settings.allowed_origins
    host = websocket.headers.get("host", "")
    same_origin = {f"http://{host}", f"https://{host}"}
    return origin in same_origin or origin in runtime.settings.origins


def _subprotocol(websocket: WebSocket) -> str | None:
    """``synthia.v1`` when offered; a list naming only other versions is refused."""
    offered = [
        p for p in websocket.scope.get("subprotocols", []) if not p.startswith(BEARER_PREFIX)
    ]
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    if offered:
        raise AppError(
            ErrorCode.BAD_REQUEST,
            "unsupported subprotocol; this server speaks {subprotocol}",
            params={"subprotocol": SUBPROTOCOL},
        )
    return None


async def authenticate(websocket: WebSocket, runtime: Runtime) -> Principal:
    """The token's principal; auth errors as 401 ``AppError``s (``TokenRevoked`` for revoked
    tokens), and ``unavailable`` when the token could not be checked (never a 401: a good token
    is not discarded because Redis or the database blinked)."""
    token = _bearer(websocket)
    if token is None:
        raise AppError(ErrorCode.UNAUTHORIZED, "missing bearer token")
    try:
        return await runtime.need_tokens().verify_access(token)
    except AppError as error:
        if error.status == 401:
            raise
        raise AppError(
            ErrorCode.UNAVAILABLE, "cannot check the token right now", retry_after=1
        ) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. the database is down on a cutoff cache miss
        log.warning("token check failed: %s", type(exc).__name__)
        raise AppError(
            ErrorCode.UNAVAILABLE, "cannot check the token right now", retry_after=1
        ) from None


async def websocket_endpoint(websocket: WebSocket) -> None:
    # One id per socket: on every log line of it (request_id), in presence, and as the
    # ``session_id`` of its session.ready, so a client's report joins to the server's logs.
    session_id = uuid.uuid4().hex
    token = request_id.set(session_id)
    try:
        await _serve_socket(websocket, session_id)
    finally:
        request_id.reset(token)


async def handshake_locale(
    websocket: WebSocket, runtime: Runtime, principal: Principal | None
) -> str:
    """The connection's language: the user's saved locale wins over the handshake's
    ``Accept-Language``, else ``DEFAULT_LOCALE``. Set as this task's current locale (the
    session and the work it starts inherit it)."""
    saved = None
    if principal is not None:
        try:
            cache = runtime.user_cache
            if cache is not None:  # no SQL per connect (the user's record is cached)
                saved = await cache.locale(principal.user_id)
            else:
                saved = await users.saved_locale(principal.user_id)
        except AppError:  # the database blinked: the header still tells the language
            saved = None
    locale = i18n.negotiate(
        saved, websocket.headers.get("accept-language"), runtime.settings.default_locale
    )
    i18n.use(locale)
    return locale


async def _serve_socket(websocket: WebSocket, session_id: str) -> None:
    runtime: Runtime = websocket.app.state.runtime
    metrics = runtime.metrics
    await handshake_locale(websocket, runtime, None)  # refusals before the token is known
    try:
        if not origin_allowed(websocket, runtime):
            raise AppError(ErrorCode.FORBIDDEN, "origin not allowed")
        subprotocol = _subprotocol(websocket)
    except AppError as error:  # always plain HTTP, before accept
        log.info(
            "socket refused: %s", error.code, extra={"code": str(error.code), "close": error.status}
        )
        await _deny(websocket, error)
        return
    if runtime.draining:
        await _refuse(
            websocket,
            subprotocol,
            AppError(ErrorCode.UNAVAILABLE, "node is shutting down", retry_after=1),
        )
        return
    checked_at = time.monotonic()
    try:
        principal = await authenticate(websocket, runtime)
    except AppError as error:
        await _refuse(websocket, subprotocol, error)
        return
    presence = runtime.need_hub().presence
    try:
        admitted = await presence.try_add(principal.user_id, session_id)
    except AppError as error:
        await _refuse(websocket, subprotocol, error)
        return
    if not admitted:
        await _refuse(
            websocket, subprotocol, AppError(ErrorCode.TOO_MANY_CONNECTIONS, retry_after=5)
        )
        return

    session = Session(websocket, runtime, principal, session_id, checked_at)
    session.locale = await handshake_locale(websocket, runtime, principal)
    if metrics is not None:
        metrics.connects.inc()
        metrics.sockets_open.inc()
    try:
        await session.run(subprotocol)
    finally:
        if metrics is not None:
            metrics.sockets_open.dec()
            metrics.disconnects.labels(metrics.close_label(session.close_code)).inc()
        presence.remove(session_id)
