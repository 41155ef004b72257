"""The pages the service serves itself (no CDN, no build step) and the ``/metrics`` scrape.

``/`` is the app, ``/admin`` the operations dashboard; both are HTML plus ES modules from
``/static`` and talk to the API like any other client. The admin page is public as a file:
the data behind it (``admin:metrics``, ``/api/v1/admin/*``) is what requires the admin role.

**Language.** A page is rendered in the visitor's language before it is sent, so the first
paint is already in it: ``?lang=``, else the ``synthia_locale`` cookie (the page's language
switcher sets it), else ``Accept-Language``, else ``DEFAULT_LOCALE``. The HTML names its words
by key from :data:`synthia_rt.web.ui.STRINGS` — ``data-i18n="key"`` on an element whose
content is plain text, ``data-i18n-<attribute>="key"`` for ``aria-label``, ``placeholder``,
``alt`` and ``title`` — and the whole bundle is embedded as JSON (``#i18n-data``) for the
script, which applies a new bundle in place when the language changes.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from synthia_rt import i18n
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.admin import require_admin_or_metrics_token
from synthia_rt.rest.deps import runtime_of
from synthia_rt.web import ui

WEB_DIR = Path(__file__).parent
# Pages are tiny; revalidating on every load means a deploy is seen at once.
NO_CACHE = {"Cache-Control": "no-cache"}
LOCALE_COOKIE = "synthia_locale"

_TEXT = re.compile(
    r'(<(?P<tag>[a-z][a-z0-9]*)\b[^>]*?\sdata-i18n="(?P<key>[\w.-]+)"[^>]*>)[^<]*(?=</(?P=tag)>)'
)
_ATTR = re.compile(r'\sdata-i18n-(?P<attr>aria-label|placeholder|alt|title)="(?P<key>[\w.-]+)"')
_LANG = re.compile(r'<html lang="[^"]*"')
_DATA = re.compile(r'(<script type="application/json" id="i18n-data">)(</script>)')


def localise(template: str, locale: str) -> str:
    """``template`` with its marked words, ``<html lang>`` and ``#i18n-data`` in ``locale``."""
    bundle = ui.bundle(locale)
    strings: dict[str, str] = bundle["strings"]

    def text(m: re.Match[str]) -> str:
        return m.group(1) + html.escape(strings[m.group("key")], quote=False)

    def attr(m: re.Match[str]) -> str:
        value = html.escape(strings[m.group("key")], quote=True)
        return f' {m.group("attr")}="{value}"{m.group(0)}'

    data = orjson.dumps(bundle).decode().replace("</", "<\\/")  # cannot end the script element
    out = _TEXT.sub(text, template)
    out = _ATTR.sub(attr, out)
    out = _LANG.sub(f'<html lang="{locale}"', out, count=1)
    return _DATA.sub(lambda m: m.group(1) + data + m.group(2), out, count=1)


@functools.cache
def rendered(name: str, locale: str) -> str:
    return localise((WEB_DIR / name).read_text(encoding="utf-8"), locale)


def page_locale(request: Request) -> str:
    """The language a page is rendered in (see the module docstring)."""
    chosen = i18n.normalise(request.query_params.get("lang")) or i18n.normalise(
        request.cookies.get(LOCALE_COOKIE)
    )
    default = runtime_of(request).settings.default_locale
    return i18n.negotiate(chosen, request.headers.get("accept-language"), default)


def page(name: str, request: Request) -> HTMLResponse:
    locale = page_locale(request)
    headers = {**NO_CACHE, "Vary": "Accept-Language, Cookie", "Content-Language": locale}
    return HTMLResponse(rendered(name, locale), headers=headers)


async def index(request: Request) -> HTMLResponse:
    return page("index.html", request)


async def admin(request: Request) -> HTMLResponse:
    return page("admin.html", request)


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
