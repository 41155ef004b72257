"""``/push``: the VAPID public key and the caller's Web Push subscriptions (docs/billing.md)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth.principal import Principal
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.push.sender import Pusher
from synthia_rt.rest.deps import runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import Out
from synthia_rt.store import push as store

TAGS = ("push",)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class VapidKeyOut(Out):
    public_key: str = Field(
        description="The VAPID public key (uncompressed P-256 point, base64url): "
        "`applicationServerKey` for `pushManager.subscribe`."
    )


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(min_length=80, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = Field(min_length=16, max_length=32, pattern=r"^[A-Za-z0-9_-]+=*$")


class SubscriptionIn(BaseModel):
    """``PushSubscription.toJSON()`` as the browser gives it (``expirationTime`` ignored)."""

    endpoint: str = Field(max_length=2048)
    keys: SubscriptionKeys
    expirationTime: float | None = None  # noqa: N815 - the browser's field name


class EndpointIn(BaseModel):
    endpoint: str = Field(max_length=2048)


class SubscriptionOut(Out):
    endpoint: str


def _pusher(request: Request) -> Pusher:
    pusher = runtime_of(request).push
    if pusher is None or pusher.public_key is None:
        raise AppError(ErrorCode.PUSH_DISABLED)
    return pusher


def _check_endpoint(endpoint: str, allow_insecure: bool) -> None:
    """Push services are public https hosts; anything else would let callers make this server
    POST into its own network. Loopback (http or https) only with PUSH_ALLOW_INSECURE_ENDPOINTS."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if host in LOCAL_HOSTS:
        if allow_insecure and parts.scheme in {"http", "https"}:
            return
    elif parts.scheme == "https" and host and "." in host:
        try:
            public = ipaddress.ip_address(host).is_global
        except ValueError:
            public = not host.endswith((".localhost", ".local", ".internal"))  # a DNS name
        if public:
            return
    raise AppError(
        ErrorCode.VALIDATION_ERROR, "The endpoint must be a public https:// URL.", field="endpoint"
    )


@api(
    "GET",
    "/push/vapid-public-key",
    "The server's VAPID public key (applicationServerKey)",
    response=VapidKeyOut,
    auth=False,
    errors=[ErrorCode.PUSH_DISABLED],
    tags=TAGS,
    description="503 `push_disabled` when the server has no `VAPID_PRIVATE_KEY`.",
)
async def vapid_public_key(request: Request) -> VapidKeyOut:
    key = _pusher(request).public_key
    assert key is not None
    return VapidKeyOut(public_key=key)


@api(
    "POST",
    "/push/subscriptions",
    "Subscribe this browser to Web Push",
    body=SubscriptionIn,
    response=SubscriptionOut,
    status=201,
    errors=[ErrorCode.PUSH_DISABLED, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="The body is the browser's `PushSubscription` JSON. Notifications are pushed "
    "only while the user has no socket open. Past `PUSH_MAX_SUBSCRIPTIONS` per user the oldest "
    "subscription is replaced. An endpoint subscribed by another account moves to the caller.",
)
async def subscribe(
    request: Request, principal: Principal, body: SubscriptionIn
) -> SubscriptionOut:
    _pusher(request)
    settings = runtime_of(request).settings
    _check_endpoint(body.endpoint, settings.push_allow_insecure_endpoints)
    await store.save(
        principal.user_id,
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        settings.push_max_subscriptions,
    )
    return SubscriptionOut(endpoint=body.endpoint)


@api(
    "DELETE",
    "/push/subscriptions",
    "Unsubscribe a browser (by endpoint)",
    body=EndpointIn,
    status=204,
    errors=[ErrorCode.NOT_FOUND, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="404 when the caller has no subscription with this endpoint.",
)
async def unsubscribe(request: Request, principal: Principal, body: EndpointIn) -> None:
    if not await store.remove(principal.user_id, body.endpoint):
        raise AppError(ErrorCode.NOT_FOUND)


routes: list[BaseRoute] = [vapid_public_key, subscribe, unsubscribe]
