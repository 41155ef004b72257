"""``ApiRoute``: a Starlette route that declares its contract, and enforces it.

Each route names its request body, query and response models, whether it needs a bearer token
(or an admin one), its success status and the error codes it may answer. The wrapper does the
authentication and parsing from exactly those declarations, and the OpenAPI document
(``rest/openapi.py``) is built from the same objects, so the docs cannot drift from behaviour.

Handlers are ``async def handler(request, *, principal=..., body=..., query=...)`` receiving
only what they declared, and return a pydantic model (JSON with ``status``), ``None`` (204)
or a ready ``Response``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.rest.deps import authenticate, read_body, read_query
from synthia_rt.rest.errors import internal_error

Handler = Callable[..., Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True)
class Operation:
    method: str
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    admin: bool = False
    errors: tuple[ErrorCode, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    extra_responses: dict[int, type[BaseModel]] = field(default_factory=dict)

    def error_codes(self) -> tuple[ErrorCode, ...]:
        """Declared codes plus those the wrapper itself can answer."""
        implied: list[ErrorCode] = [ErrorCode.INTERNAL]
        if self.auth:
            implied += [ErrorCode.UNAUTHORIZED, ErrorCode.TOKEN_EXPIRED, ErrorCode.TOKEN_INVALID]
        if self.admin:
            implied.append(ErrorCode.FORBIDDEN)
        if self.body is not None:
            implied += [ErrorCode.BAD_REQUEST, ErrorCode.VALIDATION_ERROR, ErrorCode.TOO_LARGE]
        if self.query is not None:
            implied += [ErrorCode.BAD_REQUEST, ErrorCode.VALIDATION_ERROR]
        return tuple(dict.fromkeys([*self.errors, *implied]))


def render(result: BaseModel | Response | None, status: int) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    return Response(result.model_dump_json(), status_code=status, media_type="application/json")


class ApiRoute(Route):
    operation: Operation

    def __init__(
        self, path: str, handler: Handler, operation: Operation, name: str | None = None
    ) -> None:
        self.operation = operation
        op = operation

        async def endpoint(request: Request) -> Response:
            try:
                kwargs: dict[str, Any] = {}
                if op.auth:
                    principal = await authenticate(request)
                    if op.admin and not principal.is_admin:
                        raise AppError(ErrorCode.FORBIDDEN)
                    kwargs["principal"] = principal
                if op.query is not None:
                    kwargs["query"] = read_query(request, op.query)
                if op.body is not None:
                    kwargs["body"] = await read_body(request, op.body)
                return render(await handler(request, **kwargs), op.status)
            except (AppError, ClientDisconnect):
                raise  # rendered by the app's exception handler / logged as 499 by the middleware
            except Exception as exc:  # noqa: BLE001 - answered as `internal`, logged with the trace
                return internal_error(exc)

        super().__init__(path, endpoint, methods=[op.method], name=name or handler.__name__)


def api(
    method: str,
    path: str,
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool = True,
    admin: bool = False,
    errors: Sequence[ErrorCode] = (),
    tags: Sequence[str] = (),
    description: str = "",
    extra_responses: dict[int, type[BaseModel]] | None = None,
) -> Callable[[Handler], ApiRoute]:
    """Decorator turning a handler into an :class:`ApiRoute` (the module lists it in ``routes``)."""
    operation = Operation(
        method=method.upper(),
        summary=summary,
        body=body,
        query=query,
        response=response,
        status=status,
        auth=auth,
        admin=admin,
        errors=tuple(errors),
        tags=tuple(tags),
        description=description,
        extra_responses=dict(extra_responses or {}),
    )

    def wrap(handler: Handler) -> ApiRoute:
        return ApiRoute(
            path,
            handler,
            operation,
            name=f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}",
        )

    return wrap
