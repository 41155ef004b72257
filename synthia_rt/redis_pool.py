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

**Redis Cluster** (:func:`cluster_client`) gets the same two kinds, built differently because
redis-py's cluster client has no pool checkout to hook into:

* redis-py's own cluster retry (by default three more runs of *any* command after a
  connection error or timeout, the publish script included) is switched off.
* Its connections (:class:`CheckedClusterConnection`) do the checkout check themselves, before
  the command's first byte: a connection the server closed or left dirty is reconnected, an
  idle one PINGs, and a failure there is :class:`NotRunError`.  So is every cluster answer
  that means "not run here" (CLUSTERDOWN, TRYAGAIN, a MOVED/ASK storm that outlasts redis-py's
  16 redirects, a slot no node covers).  :class:`GatedRedisCluster` retries exactly those,
  with the checkout backoff, after redis-py has marked its slot map for a re-read (a dead
  node, CLUSTERDOWN) — so a command sent after a failover finds the promoted replica.
* Idempotent commands are retried once more on any connection error (:func:`idempotent`).

Everything else (a connection that died after the write, a timeout) fails once, as on a single
server; callers turn it into ``unavailable`` (503, ``temporary:true``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterError,
    MaxConnectionsError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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


class NotRunError(RedisConnectionError):
    """The command did not run on any node (see the module docstring), so running it again
    cannot run it twice.  A ConnectionError: callers already map those to ``unavailable``."""


def not_run(exc: Exception) -> bool:
    return isinstance(exc, NotRunError)


# Cluster answers that mean the command was refused, not run: CLUSTERDOWN (ClusterError),
# TRYAGAIN, MOVED/ASK left over when redis-py's redirect budget ran out, "TTL exhausted"
# (ClusterError), no node for the slot (RedisClusterException, which is not even a RedisError).
REFUSED = (ClusterError, TryAgainError, AskError, RedisClusterException)


class CheckedClusterConnection(Connection):
    """A cluster node's connection that checks itself before each command, as
    :class:`CheckedPool` does at checkout; a failure there raises :class:`NotRunError`."""

    _handshake = False  # on_connect's own commands (HELLO, CLIENT SETNAME) are not checked

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._handshake = True
        try:
            await super().connect_check_health(*args, **kwargs)
        except RuntimeError as exc:
            # uvloop refuses a handshake write on a transport the node just closed: the
            # connection never came up, which callers handle as a connection error.
            await self.disconnect()
            raise RedisConnectionError(f"transport closed during the handshake: {exc}") from exc
        finally:
            self._handshake = False

    async def send_packed_command(
        self, command: bytes | str | Any, check_health: bool = True
    ) -> None:
        if self._handshake:
            await super().send_packed_command(command, check_health)
            return
        try:
            if self.is_connected:
                try:
                    if await self.can_read():  # unread bytes: not safe to use
                        raise RedisConnectionError("Connection has data")
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    await self.disconnect()  # closed by the server (a restart) or dirty
            if not self.is_connected:
                await self.connect_check_health(check_health=False)
            if check_health:
                await self.check_health()  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc, NotRunError):
                raise
            raise NotRunError(*exc.args) from exc
        try:
            await super().send_packed_command(command, check_health=False)
        except RuntimeError as exc:
            # uvloop refuses a write on a transport that closed after the check above ("the
            # handler is closed"): nothing was written, so the command did not run.
            await self.disconnect()
            raise NotRunError(f"transport closed: {exc}") from exc


class GatedRedisCluster(RedisCluster):
    """A RedisCluster whose commands queue for one of ``max_connections`` slots (redis-py's
    cluster node pool raises MaxConnectionsError at once when full, where the single-server
    pool waits: a burst of publishes then waits instead of failing), and whose commands are
    retried only when they did not run (module docstring)."""

    def __init__(self, *, max_connections: int = 64, **kwargs: Any) -> None:
        # retry: redis-py's cluster retry would send a written command again; ours is below.
        super().__init__(max_connections=max_connections, retry=Retry(NoBackoff(), 0), **kwargs)
        self.connection_kwargs["connection_class"] = CheckedClusterConnection
        for node in self.startup_nodes:
            node.connection_class = CheckedClusterConnection
        self._gate = asyncio.Semaphore(max_connections)
        self._not_run_retry = _retry(CHECKOUT_RETRIES)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        run: Callable[..., Awaitable[Any]] = super().execute_command

        async def once() -> Any:
            try:
                return await run(*args, **kwargs)
            except NotRunError:
                raise
            except REFUSED as exc:
                raise NotRunError(f"{type(exc).__name__}: {exc}") from exc

        async with self._gate:
            return await self._not_run_retry.call_with_retry(once, _ignore, is_retryable=not_run)


def cluster_client(url: str, **kwargs: Any) -> RedisCluster:
    """redis-py's asyncio RedisCluster: routes each command to its slot's primary and follows
    MOVED/ASK (and refreshes its slot map) by itself; a connection error re-reads the map and
    retries (``cluster_error_retry_attempts``).  ``max_connections`` is per node."""
    return GatedRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_startup_nodes(url)],
        require_full_coverage=True,
        # As for the single-server pool (module docstring); it also adds a command to every
        # new node connection's handshake that a dying node can fail half-way.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **kwargs,
    )
