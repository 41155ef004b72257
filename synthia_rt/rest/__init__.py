"""The REST shim, mounted under ``/api/v1``: one module per resource, each exporting ``routes``.

To add a resource, write ``synthia_rt/rest/<name>.py`` with ``routes: list[BaseRoute]`` built
from :func:`synthia_rt.rest.routing.api` (so it is authenticated, parsed and documented in
OpenAPI like the rest) and add its name to :data:`MODULES`.
"""

from __future__ import annotations

import importlib

from starlette.routing import BaseRoute

MODULES: tuple[str, ...] = (
    "auth",
    "users",
    "history",
    "feedback",
    "notifications",
    "admin",
    "analytics",
    "cache",
    "files",
    "analyze",
    "billing",
    "push",
    "i18n",
)


def rest_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in MODULES:
        module = importlib.import_module(f"synthia_rt.rest.{name}")
        routes.extend(module.routes)
    return routes
