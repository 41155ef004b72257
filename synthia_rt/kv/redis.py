"""Key-value store on Redis: every key prefixed ``<namespace>:``, every operation atomic.

Multi-step operations are one Lua script or one MULTI on a single key, so Redis Cluster can
host them.  A lost connection or a timeout becomes ``AppError(UNAVAILABLE)`` (temporary, 503):
callers never see redis-py exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from synthia_rt.autopipeline import AutoPipeline
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.redis_pool import REFUSED, checked_pool, cluster_client, idempotent, is_cluster

SOCKET_TIMEOUT = 2.0  # seconds; a dead Redis fails a request fast instead of hanging it
HEALTH_CHECK_INTERVAL = 15
SCAN_COUNT = 500
POOL_SIZE = 64  # connections per process

# Append only at the expected length, so a chunk resent after a lost reply is refused, not
# duplicated.  KEYS[1]; ARGV: offset, data, ttl ms.
_APPEND_AT = """
local length = redis.call('STRLEN', KEYS[1])
if length ~= tonumber(ARGV[1]) then
  return -length - 1
end
local total = redis.call('APPEND', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return total
"""

# TTL only when this call creates the key.  KEYS[1]; ARGV: amount, ttl ms (0 = none).
_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

# The per-user socket cap in one step (presence): prune members last seen at or before the
# floor, drop members known gone, then add ARGV[1] unless ``cap`` others remain. A member
# already present is re-scored and admitted, so a run repeated after a lost reply admits the
# same socket again instead of counting it against itself.
# KEYS[1]; ARGV: member, score, floor, cap, ttl ms, members to drop...
_ZADD_CAPPED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if #ARGV > 5 then
  redis.call('ZREM', KEYS[1], unpack(ARGV, 6))
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, round(ttl * 1000))


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, *REFUSED) as exc:
        # REFUSED: a cluster mid-failover or mid-migration (CLUSTERDOWN, TRYAGAIN, MOVED/ASK
        # storms, an uncovered slot) — also from MULTI pipelines, which bypass the client's
        # own mapping to NotRunError.
        raise AppError(ErrorCode.UNAVAILABLE) from exc
    except ResponseError as exc:
        # Redis at `maxmemory` under `noeviction` refuses writes ("OOM command not allowed…",
        # redis-py's OutOfMemoryError; inside MULTI it surfaces as EXECABORT): temporary.
        if isinstance(exc, OutOfMemoryError) or "command not allowed when used memory" in str(exc):
            raise AppError(
                ErrorCode.UNAVAILABLE,
                "The key-value store is full; try again later.",
                retry_after=5,
            ) from exc
        raise


class RedisKV:
    def __init__(self, url: str, namespace: str) -> None:
        self.namespace = namespace
        self._prefix = f"{namespace}:"
        # A blocking pool: bursts queue for a connection (up to SOCKET_TIMEOUT) instead of
        # failing at once when every connection is busy.  What is retried, and why that cannot
        # run a command twice, is in synthia_rt.redis_pool: a failed checkout always (nothing
        # was sent yet), a written command only where marked ``idempotent`` below — never
        # incr, append_at (a resent append is refused, so a lost reply would turn into a
        # mismatch) or SET NX (the retry would report "taken" for our own write).
        common: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "socket_keepalive": True,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
            "client_name": "synthia:kv",
        }
        self._redis: Redis | RedisCluster
        if is_cluster(url):
            # Every key is one slot (single-key ops, single-key scripts and MULTI), so the
            # cluster client routes each to its primary; SCAN visits every primary (scan).
            self._redis = cluster_client(url, max_connections=POOL_SIZE, **common)
        else:
            pool = checked_pool(url, max_connections=POOL_SIZE, timeout=SOCKET_TIMEOUT, **common)
            self._redis = Redis.from_pool(pool)
        self._append_at = self._redis.register_script(_APPEND_AT)
        self._incr = self._redis.register_script(_INCR)
        self._zadd_capped = self._redis.register_script(_ZADD_CAPPED)
        self._read = AutoPipeline(self._redis)  # reads and idempotent scripts, pipelined

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def start(self) -> None:
        with _unavailable():
            await self._redis.ping()

    async def close(self) -> None:
        await self._read.close()
        await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisConnectionError, RedisTimeoutError):
            return False

    # -- strings ------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        with _unavailable():
            value = await self._read("GET", self._key(key))
        return cast("bytes | None", value)  # decode_responses is off: always bytes

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        # Futures of one auto-pipeline batch (no task per key).
        with _unavailable():
            values = await asyncio.gather(*(self._read("GET", self._key(key)) for key in keys))
        return cast("list[bytes | None]", values)

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        px = _ms(ttl) if ttl is not None else None
        full = self._key(key)

        async def write() -> Any:
            return await self._redis.set(full, value, px=px, nx=nx)

        with _unavailable():
            # A plain SET writes the same value again; SET NX would answer "taken" for our own
            # first write, so it runs once.
            written = await (write() if nx else idempotent(write))
        return bool(written)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with _unavailable():
            # Idempotent in effect; after a lost reply the count misses what the first run did.
            full = [self._key(k) for k in keys]
            return int(await idempotent(lambda: self._redis.delete(*full)))

    async def exists(self, key: str) -> bool:
        with _unavailable():
            return bool(await self._read("EXISTS", self._key(key)))

    async def expire(self, key: str, ttl: float) -> None:
        # A non-positive ttl deletes the key, as PEXPIRE does.
        with _unavailable():
            ms = max(1, round(ttl * 1000)) if ttl > 0 else 0
            await idempotent(lambda: self._redis.pexpire(self._key(key), ms))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        px = _ms(ttl) if ttl is not None else 0
        with _unavailable():
            return int(await self._incr(keys=[self._key(key)], args=[amount, px]))

    async def append_at(self, key: str, offset: int, data: bytes, ttl: float) -> int:
        px = _ms(ttl)
        with _unavailable():
            return int(await self._append_at(keys=[self._key(key)], args=[offset, data, px]))

    async def strlen(self, key: str) -> int:
        with _unavailable():
            return int(await idempotent(lambda: self._redis.strlen(self._key(key))))

    # -- sorted sets --------------------------------------------------------------------
    async def zadd(self, key: str, member: str, score: float, ttl: float | None = None) -> None:
        px = _ms(ttl) if ttl is not None else None
        full = self._key(key)

        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(full, {member: score})
                if px is not None:
                    pipe.pexpire(full, px)
                await pipe.execute()

        with _unavailable():
            await idempotent(run)  # the same member and score again

    async def zrem(self, key: str, member: str) -> None:
        with _unavailable():
            await self._read("ZREM", self._key(key), member)  # pipelined; idempotent

    async def zcount_above(self, key: str, min_score: float) -> int:
        full = self._key(key)

        async def run() -> int:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(full, "-inf", min_score)  # inclusive: keeps score > min
                pipe.zcard(full)
                _, count = await pipe.execute()
            return int(count)

        with _unavailable():
            return await idempotent(run)  # pruning expired members twice prunes nothing more

    async def zadd_capped(
        self,
        key: str,
        member: str,
        score: float,
        *,
        floor: float,
        cap: int,
        ttl: float,
        drop: Sequence[str] = (),
    ) -> bool:
        args: list[str | int] = [member, repr(float(score)), repr(float(floor)), cap, _ms(ttl)]
        args.extend(drop)
        with _unavailable():
            # Batched with the other idempotent commands of this loop iteration: a second run
            # finds the member and admits it again.
            admitted = await self._read.script(self._zadd_capped, [self._key(key)], args)
        return bool(admitted)

    # -- keyspace -----------------------------------------------------------------------
    async def scan(self, match: str = "*") -> AsyncIterator[str]:
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self._prefix) + match
        cut = len(self._prefix)
        with _unavailable():
            # On a cluster, scan_iter walks every primary in turn (redis-py's cluster SCAN).
            async for raw in self._redis.scan_iter(match=pattern, count=SCAN_COUNT):
                yield raw.decode()[cut:]

    async def used_memory(self) -> int | None:
        with _unavailable():
            if isinstance(self._redis, RedisCluster):
                # Summed over the primaries (replicas hold copies of the same keys).
                per_node = await idempotent(
                    lambda: self._redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
                )
                values = [i.get("used_memory") for i in per_node.values()]
                return sum(int(v) for v in values if v is not None) if values else None
            info = await idempotent(lambda: self._redis.info("memory"))
        value = info.get("used_memory")
        return int(value) if value is not None else None
