"""The ``/ws`` handshake (origin, token, subprotocol, connection cap), then the session.

Every refusal happens before ``accept`` as a plain HTTP answer with a JSON error body:
403 foreign ``Origin``, 401 missing/invalid token, 400 a subprotocol list without ``synthia.v1``,
429 too many sockets for this user, 503 while the node drains. Tokens are read from the subprotocol list (``bearer.<token>``) or the
``Authorization`` header — never from the URL, and a ``token`` query parameter is ignored.
"""

from __future__ import annotations

import logging
import uuid

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket

from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.observability.logging import request_id
from synthia_rt.realtime.protocol import BEARER_PREFIX, SUBPROTOCOL
from synthia_rt.realtime.session import Session
from synthia_rt.runtime import Runtime

log = logging.getLogger(__name__)

def _bearer(websocket: WebSocket) -> str | None:
    for entry in websocket.scope.get("subprotocols", []):
        if entry.startswith(BEARER_PREFIX) and len(entry) > len(BEARER_PREFIX):
            return str(entry[len(BEARER_PREFIX) :])
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def _deny(websocket: WebSocket, error: AppError, status: int | None = None) -> None:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    body = orjson.dumps({"error": error.to_dict()})
    response = Response(body, status_code=status or error.status, media_type="application/json", headers=headers)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:  # servers without the denial extension can only say 403
        await websocket.close(1008)


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
    offered = [p for p in websocket.scope.get("subprotocols", []) if not p.startswith(BEARER_PREFIX)]
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    if offered:
        raise AppError(ErrorCode.BAD_REQUEST, f"unsupported subprotocol; this server speaks {SUBPROTOCOL}")
    return None


async def authenticate(websocket: WebSocket, runtime: Runtime) -> Principal:
    if not origin_allowed(websocket, runtime):
        raise AppError(ErrorCode.FORBIDDEN, "origin not allowed")
    token = _bearer(websocket)
    if token is None:
        raise AppError(ErrorCode.UNAUTHORIZED, "missing bearer token")
    try:
        return await runtime.need_tokens().verify_access(token)
    except AppError as error:
        if error.status == 401:
            raise
        raise AppError(ErrorCode.TOKEN_INVALID) from None


async def websocket_endpoint(websocket: WebSocket) -> None:
    token = request_id.set(uuid.uuid4().hex)  # the connection id on every log line of this socket
    try:
        await _serve_socket(websocket)
    finally:
        request_id.reset(token)


async def _serve_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    metrics = runtime.metrics
    if runtime.draining:
        await _deny(websocket, AppError(ErrorCode.UNAVAILABLE, "node is shutting down", retry_after=1))
        return
    try:
        principal = await authenticate(websocket, runtime)
        subprotocol = _subprotocol(websocket)
    except AppError as error:
        await _deny(websocket, error)
        return
    presence = runtime.need_hub().presence
    connection_id = uuid.uuid4().hex
    try:
        admitted = await presence.try_add(principal.user_id, connection_id)
    except AppError as error:
        await _deny(websocket, error)
        return
    if not admitted:
        await _deny(websocket, AppError(ErrorCode.TOO_MANY_CONNECTIONS, retry_after=5))
        return

    session = Session(websocket, runtime, principal)
    if metrics is not None:
        metrics.connects.inc()
        metrics.sockets_open.inc()
    try:
        await session.run(subprotocol)
    finally:
        if metrics is not None:
            metrics.sockets_open.dec()
            metrics.disconnects.labels(str(session.close_code)).inc()
        presence.remove(connection_id)
