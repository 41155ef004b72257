"""Key-value seam: the few Redis operations the service needs, with an in-process twin.

``redis://`` → :class:`synthia_rt.kv.redis.RedisKV`; ``memory://`` → :class:`synthia_rt.kv.memory.MemoryKV`.
Implementations are imported lazily so the embedded default never imports redis-py's network code.
"""

from __future__ import annotations

from synthia_rt.kv.base import KeyValue


def create_kv(url: str, namespace: str) -> KeyValue:
    if url.startswith("memory://"):
        from synthia_rt.kv.memory import MemoryKV

        return MemoryKV(namespace)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from synthia_rt.kv.redis import RedisKV

        return RedisKV(url, namespace)
    raise ValueError(f"unsupported key-value URL: {url.split(':', 1)[0]}://")


__all__ = ["KeyValue", "create_kv"]
