"""The pages the service serves itself (no CDN, no build step) and the ``/metrics`` scrape.

``/`` is the live demo, ``/admin`` the operations dashboard; both are static HTML plus ES
modules from ``/static`` and talk to the API like any other client. The admin page is public
as a file: the data behind it (``admin:metrics``, ``/api/v1/admin/*``) is what requires the
admin role.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.admin import require_admin_or_metrics_token
from synthia_rt.rest.deps import runtime_of

WEB_DIR = Path(__file__).parent
# Pages are tiny; revalidating on every load means a deploy is seen at once.
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: Request) -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers=NO_CACHE)


async def admin(request: Request) -> FileResponse:
    return FileResponse(WEB_DIR / "admin.html", headers=NO_CACHE)


async def service_worker(request: Request) -> FileResponse:
    """At the root so its scope covers ``/`` (a worker under /static could only control /static)."""
    return FileResponse(
        WEB_DIR / "static" / "sw.js",
        media_type="text/javascript",
        headers={**NO_CACHE, "Service-Worker-Allowed": "/"},
    )


async def metrics(request: Request) -> Response:
    await require_admin_or_metrics_token(request)
    collector = runtime_of(request).metrics
    if collector is None:
        raise AppError(ErrorCode.UNAVAILABLE, "Metrics are not running.")
    body, content_type = collector.render()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/admin", admin, methods=["GET", "HEAD"]),
        Route("/sw.js", service_worker, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=WEB_DIR / "static"), name="static"),
    ]
