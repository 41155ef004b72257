"""Connection pools for Redis commands (the KV and the broker), and what is retried.

Two kinds of retry, because a command may only run twice when running it twice is harmless:

* **Checkout** (every command, idempotent or not).  Before a pooled connection is handed out it
  is checked: one the server closed (a Redis restart) or that holds unread bytes is reconnected,
  and one idle for longer than ``health_check_interval`` answers a PING first.  A checkout that
  fails with a connection error (Redis refusing connections while it restarts, the PING finding
  the link dead) is retried with capped, jittered backoff.  Nothing of the caller's command has
  been written at that point, so this cannot duplicate even a non-idempotent script (the
  broker's publish, the KV's ``incr``/``append_at``).

  redis-py 8 skips the "closed or dirty" check at checkout whenever RESP3 maintenance
  notifications are on, which they are by default ("auto").  Then every connection opened
  before a Redis restart was handed out once more and failed its command with "Connection
  closed by server" (issue 10.2).  We do not use those notifications (no Redis Enterprise
  maintenance events), so they are turned off and the check is back.

* **Command** (idempotent commands only, via :func:`idempotent`).  A connection error after
  the command was written (the server died mid-reply) is retried on a fresh connection.  Only
  for commands whose second run leaves the same state: reads, plain SET, DEL, PEXPIRE, ZADD of
  the same member and score, ZREM, and the broker's history/position scripts (they only ever
  create a missing epoch, which the second run then finds).  Timeouts are never retried: a slow
  Redis would only get more load.

The connections themselves keep redis-py's ``Retry(NoBackoff(), 0)``: redis-py applies a
connection's retry to the whole command, written or not, so it cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import AuthenticationError, MaxConnectionsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

T = TypeVar("T")

# Retries after the first attempt.  They nest (each command attempt checks out a connection), so
# they are kept short: with Redis down a command fails within about a second (measured: publish
# 0.4 s, reads 0.7 s on average, 1.0 s at most) and the caller answers 503 instead of hanging.
CHECKOUT_RETRIES = 3
COMMAND_RETRIES = 1
BACKOFF_BASE = 0.05  # seconds; full jitter, doubling per failure
BACKOFF_CAP = 0.5  # seconds


def _retry(retries: int) -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE),
        retries,
        supported_errors=(RedisConnectionError,),
    )


def retryable(exc: Exception) -> bool:
    """A connection error worth another connection: not bad credentials, not a full pool
    (waiting again would only double the caller's wait)."""
    if isinstance(exc, AuthenticationError | MaxConnectionsError):
        return False
    return not isinstance(exc.__cause__, TimeoutError)  # "No connection available."


async def _ignore(_: Exception) -> None:
    return None


class CheckedPool(BlockingConnectionPool):
    """A blocking pool whose checkout health-checks connections and retries safely (above)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._checkout_retry = _retry(CHECKOUT_RETRIES)

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        await super().ensure_connection(connection)  # reconnects one found closed or dirty
        # A PING when idle for longer than health_check_interval (a silently dead link).
        await connection.check_health()  # type: ignore[no-untyped-call]

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        checkout: Callable[..., Awaitable[AbstractConnection]] = super().get_connection
        connection: AbstractConnection = await self._checkout_retry.call_with_retry(
            lambda: checkout(*args, **kwargs), _ignore, is_retryable=retryable
        )
        return connection


def checked_pool(url: str, **kwargs: Any) -> CheckedPool:
    pool = CheckedPool.from_url(
        url,
        # See the module docstring: with these on, redis-py hands out dead connections.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        retry=Retry(NoBackoff(), 0),
        **kwargs,
    )
    assert isinstance(pool, CheckedPool)
    return pool


_COMMAND_RETRY = _retry(COMMAND_RETRIES)


async def idempotent(call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` (one idempotent command), again on a connection error (see above)."""
    result: T = await _COMMAND_RETRY.call_with_retry(call, _ignore, is_retryable=retryable)
    return result


# -- Redis Cluster (REDIS_URL=redis+cluster://host:port[,host:port…]) -------------------------
CLUSTER_SCHEME = "redis+cluster://"


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def cluster_startup_nodes(url: str) -> list[tuple[str, int]]:
    """``redis+cluster://h1:p1,h2:p2[/0]`` → [(h1, p1), (h2, p2)] (seed nodes; any subset)."""
    rest = url.removeprefix(CLUSTER_SCHEME).split("/", 1)[0]
    nodes = []
    for part in filter(None, rest.split(",")):
        host, _, port = part.rpartition(":")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    if not nodes:
        raise ValueError("redis+cluster:// needs at least one host:port")
    return nodes


class GatedRedisCluster(RedisCluster):
    """A RedisCluster whose commands queue for one of ``max_connections`` slots: redis-py's
    cluster node pool raises MaxConnectionsError at once when full, where the single-server
    pool (BlockingConnectionPool) waits.  A burst of publishes then waits instead of failing."""

    def __init__(self, *, max_connections: int = 64, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._gate = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._gate:
            return await super().execute_command(*args, **kwargs)


def cluster_client(url: str, **kwargs: Any) -> RedisCluster:
    """redis-py's asyncio RedisCluster: routes each command to its slot's primary and follows
    MOVED/ASK (and refreshes its slot map) by itself; a connection error re-reads the map and
    retries (``cluster_error_retry_attempts``).  ``max_connections`` is per node."""
    return GatedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_startup_nodes(url)],
        require_full_coverage=True,
        **kwargs,
    )
