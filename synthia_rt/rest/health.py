"""``/healthz`` (the process answers) and ``/readyz`` (its database and key-value store do)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from synthia_rt.rest.deps import runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import HealthOut, ReadyOut
from synthia_rt.store import engine as store

TAGS = ("operations",)
PING_TIMEOUT = 2.0  # seconds; a hung dependency must not hang the probe


@api("GET", "/healthz", "Liveness: the process is up", response=HealthOut, auth=False, tags=TAGS)
async def healthz(request: Request) -> HealthOut:
    return HealthOut(node=runtime_of(request).node_id)


async def _check(probe: Awaitable[bool]) -> bool:
    try:
        return bool(await asyncio.wait_for(probe, PING_TIMEOUT))
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - a failed probe is an answer, not an error
        return False


@api(
    "GET",
    "/readyz",
    "Readiness: database and key-value store answer",
    response=ReadyOut,
    auth=False,
    tags=TAGS,
    extra_responses={503: ReadyOut},
    description="503 when a dependency does not answer (or the node is draining); `checks` says which.",
)
async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    checks = {
        "database": runtime.engine is not None and await _check(store.ping(runtime.engine)),
        "kv": runtime.kv is not None and await _check(runtime.kv.ping()),
    }
    ok = all(checks.values()) and not runtime.draining
    body = ReadyOut(status="ok" if ok else "unavailable", node=runtime.node_id, checks=checks)
    return Response(
        body.model_dump_json(), status_code=200 if ok else 503, media_type="application/json"
    )


routes: list[BaseRoute] = [healthz, readyz]
