"""OpenAPI 3.1 built from the mounted routes' declarations (``ApiRoute.operation``).

The document is derived from what is actually mounted (walking ``app.routes`` through
mounts), so a route cannot be served without being documented. Schemas come from the pydantic
models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from synthia_rt.errors import ERROR_DOCS, AppError, ErrorCode
from synthia_rt.rest.routing import ApiRoute, Operation
from synthia_rt.rest.schemas import ErrorOut

REF = "#/components/schemas/{model}"
WEB = Path(__file__).resolve().parent.parent / "web"


def api_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, ApiRoute]]:
    """Every ``ApiRoute`` under ``routes`` with its full OpenAPI path (``{param}`` style)."""
    for route in routes:
        if isinstance(route, ApiRoute):
            yield prefix + route.path_format, route
        elif isinstance(route, Mount):
            yield from api_routes(route.routes, prefix + route.path)


def _version() -> str:
    try:
        return metadata.version("synthia-rt")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _models(found: list[tuple[str, ApiRoute]]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorOut, "serialization"): None}
    for _, route in found:
        op = route.operation
        if op.body is not None:
            wanted[(op.body, "validation")] = None
        for model in (op.response, *op.extra_responses.values()):
            if model is not None:
                wanted[(model, "serialization")] = None
    return list(wanted)


def _parameters(path: str, route: ApiRoute) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    query = route.operation.query
    if query is not None:
        schema = query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            entry = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                entry["description"] = prop["description"]
            params.append(entry)
    return params


def _error_responses(op: Operation) -> dict[str, Any]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code in op.error_codes():
        by_status.setdefault(ERROR_DOCS[code][0], []).append(code)
    out: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        lines = "\n".join(f"- `{c}`: {ERROR_DOCS[c][1]}" for c in codes)
        out[str(status)] = {
            "description": lines,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}},
            "x-error-codes": [str(c) for c in codes],
        }
        if any(c is ErrorCode.RATE_LIMITED for c in codes):
            out[str(status)]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
    return out


def _operation(path: str, route: ApiRoute, refs: dict[Any, Any]) -> dict[str, Any]:
    op = route.operation
    out: dict[str, Any] = {"operationId": route.name, "summary": op.summary, "tags": list(op.tags)}
    if op.description:
        out["description"] = op.description
    out["security"] = [{"bearerAuth": []}] if op.auth else []
    params = _parameters(path, route)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    responses: dict[str, Any] = _error_responses(op)
    if op.response is None:
        responses[str(op.status)] = {"description": "Done; no content."}
    else:
        responses[str(op.status)] = {
            "description": "Success.",
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
        }
    for status, model in op.extra_responses.items():
        responses[str(status)] = {
            "description": f"See `{model.__name__}`.",
            "content": {"application/json": {"schema": refs[(model, "serialization")]}},
        }
    out["responses"] = dict(sorted(responses.items()))
    return out


def build_spec(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    found = list(api_routes(routes))
    refs, defs = models_json_schema(_models(found), ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for _, route in found:
        query = route.operation.query
        if query is not None:
            schemas.update(query.model_json_schema(ref_template=REF).get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for path, route in found:
        paths.setdefault(path, {})[route.operation.method.lower()] = _operation(path, route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "synthia_rt REST API",
            "version": _version(),
            "description": "The REST shim of synthia_rt. Live traffic (analyses, notifications) "
            "goes over the WebSocket at `/ws`; see docs/protocol.md. Errors are "
            '`{"error": {"code", "message", ...}}`.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    cached = getattr(request.app.state, "openapi_json", None)
    if cached is None:
        cached = orjson.dumps(build_spec(request.app.routes))
        request.app.state.openapi_json = cached
    return Response(cached, media_type="application/json")


async def asyncapi_json(request: Request) -> Response:
    """The socket protocol's AsyncAPI document: the generator behind docs/asyncapi.json."""
    cached = getattr(request.app.state, "asyncapi_json", None)
    if cached is None:
        from synthia_rt.realtime.asyncapi import build

        cached = orjson.dumps(build())
        request.app.state.asyncapi_json = cached
    return Response(cached, media_type="application/json")


async def docs_page(request: Request) -> Response:
    return FileResponse(WEB / "docs.html", media_type="text/html; charset=utf-8")


_ASSETS = {"docs.js": "text/javascript; charset=utf-8", "docs.css": "text/css; charset=utf-8"}


async def docs_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in _ASSETS:  # a fixed list: no path from the URL ever reaches the filesystem
        raise AppError(ErrorCode.NOT_FOUND)
    return FileResponse(WEB / "static" / name, media_type=_ASSETS[name])


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/asyncapi.json", asyncapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs_page, methods=["GET"], include_in_schema=False),
    Route("/docs/{asset}", docs_asset, methods=["GET"], include_in_schema=False),
]
