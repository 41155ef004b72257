"""/openapi.json documents every mounted REST route; /docs renders it without any CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from synthia_rt.errors import ERROR_DOCS
from synthia_rt.rest.routing import ApiRoute

Pair = tuple[Any, httpx.AsyncClient]
ROOT_API = {"/healthz", "/readyz"}  # root routes that are part of the API


def mounted(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from mounted(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path_format, route


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


async def spec_of(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


async def test_spec_is_valid_openapi_3_1(pg_app: Pair) -> None:
    _, client = pg_app
    spec = await spec_of(client)
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


async def test_every_mounted_rest_route_is_documented(pg_app: Pair) -> None:
    app, client = pg_app
    spec = await spec_of(client)
    api_routes = [
        (path, route)
        for path, route in mounted(app.routes)
        if path.startswith("/api/") or path in ROOT_API
    ]
    assert len(api_routes) >= 14
    for path, route in api_routes:
        assert isinstance(route, ApiRoute), f"{path} is not declared through rest.routing.api"
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert method.lower() in spec["paths"].get(path, {}), (
                f"{method} {path} missing from the spec"
            )
    documented = {(p, m) for p, item in spec["paths"].items() for m in item}
    served = {(p, m.lower()) for p, r in api_routes for m in (r.methods or ()) if m != "HEAD"}
    assert documented == served  # and nothing documented that is not served


async def test_operations_are_complete(pg_app: Pair) -> None:
    _, client = pg_app
    spec = await spec_of(client)
    schemas = spec["components"]["schemas"]
    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    known = {str(code) for code in ERROR_DOCS}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["operationId"], (method, path)
            assert any(status.startswith("2") for status in op["responses"]), (method, path)
            for status, response in op["responses"].items():
                for code in response.get("x-error-codes", []):
                    assert code in known and ERROR_DOCS[code][0] == int(status)  # type: ignore[index]
            if op["security"]:
                assert "401" in op["responses"], (method, path)
            for param in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == param and p["in"] == "path" for p in op["parameters"])
    register = spec["paths"]["/api/v1/auth/register"]["post"]
    body = schemas[
        register["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    ]
    assert set(body["required"]) == {"email", "password"}
    history = spec["paths"]["/api/v1/history"]["get"]
    limit = next(p for p in history["parameters"] if p["name"] == "limit")
    assert limit["in"] == "query" and limit["schema"]["maximum"] == 100
    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert "Retry-After" in login["responses"]["429"]["headers"]


async def test_docs_page_works_offline(pg_app: Pair) -> None:
    _, client = pg_app
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    script = await client.get("/docs/docs.js")
    style = await client.get("/docs/docs.css")
    assert script.status_code == style.status_code == 200
    assert "/openapi.json" in script.text
    for text in (page.text, script.text, style.text):
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)  # nothing from elsewhere
        assert "http://" not in text and "https://" not in text
    # The page's CSP forbids anything off-site, so it must also not need inline code.
    assert "<script>" not in page.text and "<style>" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (await client.get("/docs/../settings.py")).status_code == 404
    assert (await client.get("/docs/other.js")).status_code == 404


async def test_asyncapi_json_is_served_beside_openapi(pg_app: Pair) -> None:
    from pathlib import Path

    from synthia_rt.realtime.asyncapi import build

    _, client = pg_app
    r = await client.get("/asyncapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    committed = orjson.loads((Path(__file__).parents[1] / "docs/asyncapi.json").read_bytes())
    assert r.json() == build() == committed


async def test_docs_is_swagger_ui_vendored_with_its_license(pg_app: Pair) -> None:
    from pathlib import Path

    _, client = pg_app
    page = (await client.get("/docs")).text
    vendor = Path(__file__).parents[1] / "synthia_rt/web/static/vendor/swagger-ui"
    assert "Apache License" in (vendor / "LICENSE").read_text()
    for asset in (
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
    ):
        assert asset in page
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 10_000
    assert "SwaggerUIBundle" in (await client.get("/docs/docs.js")).text
