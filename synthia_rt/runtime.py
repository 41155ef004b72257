"""Everything one process holds: backends, the hub, services. Built and torn down by the lifespan.

Routes reach it as ``request.app.state.runtime``. The one process-wide global is Piccolo's
database engine (``store/engine.py``), because Piccolo tables find their engine through it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthia_rt.settings import Settings

if TYPE_CHECKING:
    from piccolo.engine.base import Engine

    from synthia_rt.analysis.service import AnalysisService
    from synthia_rt.auth.passwords import Passwords
    from synthia_rt.auth.throttle import LoginThrottle
    from synthia_rt.auth.tokens import TokenService
    from synthia_rt.auth.usercache import UserCache
    from synthia_rt.broker.base import Broker
    from synthia_rt.kv.base import KeyValue
    from synthia_rt.limiter import Limiter
    from synthia_rt.observability.metrics import Metrics
    from synthia_rt.push.sender import Pusher
    from synthia_rt.realtime.hub import Hub
    from synthia_rt.realtime.protocol import ChannelEvent

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    engine: Engine[Any] | None = None
    kv: KeyValue | None = None
    broker: Broker | None = None
    hub: Hub | None = None
    push: Pusher | None = None  # Web Push to users without a socket (disabled without VAPID key)
    tokens: TokenService | None = None
    user_cache: UserCache | None = None  # the `user` cache namespace (auth/usercache.py)
    analysis: AnalysisService | None = None
    metrics: Metrics | None = None
    limiter: Limiter | None = None  # shared rate limits (limiter.py)
    passwords: Passwords | None = None
    login_throttle: LoginThrottle | None = None
    # Per channel kind (the part before ":"), how a late subscriber gets the event that ended
    # the channel when the replayed history does not hold it: "analysis" → the row's outcome.
    final_events: dict[str, Callable[[str], Awaitable[ChannelEvent | None]]] = field(
        default_factory=dict
    )
    # Called with a user id when an account is erased (each owner deletes its own keys/rows).
    erase_user_hooks: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    # Closed last-in-first-out after the built-in backends stop producing.
    shutdown_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    drain_on_signal: bool = False  # a real server process: drain sockets before uvicorn's 1012
    draining: bool = False

    def __post_init__(self) -> None:
        if self.settings.node_id:
            self.node_id = self.settings.node_id

    # Typed accessors: fail loudly if used before the lifespan built them.
    def need_kv(self) -> KeyValue:
        assert self.kv is not None, "kv not started"
        return self.kv

    def need_broker(self) -> Broker:
        assert self.broker is not None, "broker not started"
        return self.broker

    def need_hub(self) -> Hub:
        assert self.hub is not None, "hub not started"
        return self.hub

    def need_limiter(self) -> Limiter:
        assert self.limiter is not None, "limiter not started"
        return self.limiter

    def need_user_cache(self) -> UserCache:
        assert self.user_cache is not None, "user cache not started"
        return self.user_cache

    async def forget_user(self, user_id: str) -> None:
        """Drop the user's cached record after a write to the user (auth/usercache.py)."""
        if self.user_cache is not None:
            await self.user_cache.forget(user_id)

    def need_tokens(self) -> TokenService:
        assert self.tokens is not None, "tokens not started"
        return self.tokens
