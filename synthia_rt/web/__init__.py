"""Routes at the root (not under ``/api/v1``): probes, the API description, and the web pages."""

from __future__ import annotations

from starlette.routing import BaseRoute


def web_routes() -> list[BaseRoute]:
    from synthia_rt.rest import health, openapi
    from synthia_rt.web import pages

    return [
        *health.routes,  # /healthz, /readyz
        *openapi.routes,  # /openapi.json, /docs (offline viewer)
        # --- pages: `/`, `/admin` and the `/static` mount go here ---------------------------
        *pages.page_routes(),  # /, /admin, /metrics, /static
    ]
