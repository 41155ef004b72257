"""``create_app(settings)``: routes, middleware and the lifespan that owns every backend."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings

log = logging.getLogger(__name__)


async def start_runtime(runtime: Runtime) -> None:
    from synthia_rt.auth.tokens import TokenService
    from synthia_rt.broker import create_broker
    from synthia_rt.kv import create_kv
    from synthia_rt.observability.metrics import Metrics
    from synthia_rt.realtime.hub import Hub
    from synthia_rt.store import engine as store

    settings = runtime.settings
    runtime.metrics = Metrics(runtime)
    db_url = settings.effective_database_url
    runtime.engine = store.configure(db_url)
    await store.migrate(db_url)  # advisory-locked on PostgreSQL: concurrent starts migrate once
    await store.open_pool(runtime.engine)

    redis_url = settings.effective_redis_url
    runtime.kv = create_kv(redis_url, settings.redis_namespace)
    await runtime.kv.start()
    runtime.broker = create_broker(redis_url, settings, runtime.node_id)
    runtime.hub = Hub(runtime)
    await runtime.hub.start()  # sets broker handlers, then starts the broker
    from synthia_rt.push.sender import Pusher

    runtime.push = Pusher(runtime)
    runtime.push.start()
    runtime.shutdown_hooks.append(runtime.push.stop)
    from synthia_rt.auth.usercache import UserCache

    runtime.user_cache = UserCache(runtime.kv, settings, runtime.metrics)
    runtime.tokens = TokenService(
        settings, runtime.kv, load_role=runtime.user_cache.role, metrics=runtime.metrics
    )
    from synthia_rt.limiter import Limiter

    runtime.limiter = Limiter(settings)
    await runtime.limiter.start()
    runtime.shutdown_hooks.append(runtime.limiter.close)

    from synthia_rt.analysis.service import AnalysisService

    runtime.analysis = AnalysisService(runtime)
    await runtime.analysis.start()
    await runtime.metrics.start()
    if runtime.drain_on_signal:  # a real server process (see app_factory)
        from synthia_rt.realtime import shutdown

        gc.freeze()  # start-up objects live forever: keep them out of every later collection
        shutdown.install(runtime.hub)
    log.info("node started", extra={"node": runtime.node_id, "embedded": settings.embedded})


async def stop_runtime(runtime: Runtime) -> None:
    from synthia_rt.analysis.cache import flush_counts
    from synthia_rt.store import engine as store

    runtime.draining = True
    # Order: stop producing (sockets, analyses) → stop fan-out → close backends.
    hooks = list(reversed(runtime.shutdown_hooks))
    for closer in (
        runtime.hub.drain if runtime.hub else None,
        runtime.analysis.stop if runtime.analysis else None,
        runtime.metrics.stop if runtime.metrics else None,
        runtime.hub.stop if runtime.hub else None,
        *hooks,
        functools.partial(flush_counts, runtime.kv) if runtime.kv else None,
        runtime.kv.close if runtime.kv else None,
    ):
        if closer is None:
            continue
        try:
            await closer()
        except Exception:  # noqa: BLE001 - shutdown must go on
            log.exception("shutdown step failed")
    if runtime.engine is not None:
        await store.close_pool(runtime.engine)


def build_routes() -> list[BaseRoute]:
    from synthia_rt.rest import rest_routes
    from synthia_rt.web import web_routes

    return [
        Mount("/api/v1", routes=rest_routes()),
        *web_routes(),
    ]


def build_middleware(settings: Settings) -> list[Middleware]:
    from synthia_rt.observability.middleware import middleware_stack

    return middleware_stack(settings)


def create_app(settings: Settings | None = None) -> SocketFastPath:
    """The service as an ASGI app (``.state.runtime`` holds the node's runtime): the Starlette
    app for HTTP, with ``/ws`` served by :class:`SocketFastPath` (it is not a Starlette route)."""
    settings = settings or Settings.from_env()
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await start_runtime(runtime)
        try:
            yield
        finally:
            await stop_runtime(runtime)

    from synthia_rt.rest.errors import exception_handlers

    app = Starlette(
        routes=build_routes(),
        middleware=build_middleware(settings),
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    app.state.runtime = runtime
    return SocketFastPath(app)


class SocketFastPath:
    """The Starlette app, with ``/ws`` handed straight to the socket endpoint.

    Sockets live for hours; every HTTP middleware layer around them would stay suspended on
    each one (≈5 KiB per idle socket and 11 % of fan-out throughput, measured in bench/). None
    of those layers does anything for a socket: the endpoint sets its own connection id.
    """

    def __init__(self, app: Starlette) -> None:
        from starlette.websockets import WebSocket

        from synthia_rt.realtime.endpoint import websocket_endpoint

        self.app = app
        self.state = app.state

        async def socket(scope: Scope, receive: Receive, send: Send) -> None:
            await websocket_endpoint(WebSocket(scope, receive, send))

        self._socket = socket

    @property
    def routes(self) -> list[BaseRoute]:
        return self.app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self.app
            await self._socket(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def app_factory() -> Any:
    """Entry point for ``uvicorn --factory synthia_rt.app:app_factory`` (each worker builds one)."""
    from synthia_rt.observability.logging import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    app = create_app(settings)
    app.state.runtime.drain_on_signal = True  # a real server: wrap uvicorn's signals
    return app
