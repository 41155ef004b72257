"""The result cache: namespaces with TTLs, shared hit/miss counters, zstd for large values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from synthia_rt.analysis.cache import (
    ResultCache,
    analysis_key,
    answers_digest,
    decode,
    encode,
    namespace_ttls,
)
from synthia_rt.kv import KeyValue, create_kv
from synthia_rt.settings import Settings
from tests.conftest import REDIS_URL


def test_small_values_stay_raw_and_large_ones_are_zstd() -> None:
    small = {"face_shape": "oval"}
    assert encode(small)[:1] == b"j" and decode(encode(small)) == small
    large = {"palette": [{"name": f"colour {i}", "hex": "#A0B0C0"} for i in range(100)]}
    blob = encode(large)
    assert blob[:1] == b"z"
    assert blob[1:5] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic number
    assert len(blob) < len(orjson.dumps(large))
    assert decode(blob) == large


def test_answers_digest_ignores_order_and_case() -> None:
    a = answers_digest({"veins": "green", "hair": "black"})
    assert a == answers_digest({"HAIR": "Black", "veins": "green "})
    assert a != answers_digest({"veins": "green", "hair": "dark_brown"})


def test_key_names_model_and_prompt_version() -> None:
    one = analysis_key("u1", "facial", "abc", "gemini-2.5-flash", "p1")
    assert one != analysis_key("u1", "facial", "abc", "gemini-2.5-flash", "p2")
    assert one != analysis_key("u1", "facial", "abc", "local-opencv-1", "p1")
    assert one != analysis_key("u2", "facial", "abc", "gemini-2.5-flash", "p1")


async def test_roundtrip_and_counters_shared_across_instances(kv: KeyValue) -> None:
    settings = Settings()
    node_a, node_b = ResultCache(kv, settings), ResultCache(kv, settings)
    assert await node_a.get("analysis", "k") is None
    big = {"result": {"summary": "x" * 5000}}
    await node_a.set("analysis", "k", big)
    assert await node_b.get("analysis", "k") == big
    assert await node_b.get("user", "k") is None  # namespaces are separate
    stats = await node_b.stats()  # counts made on node_a are visible from node_b
    assert {k: stats["analysis"][k] for k in ("hits", "misses", "hit_ratio")} == {
        "hits": 1,
        "misses": 1,
        "hit_ratio": 0.5,
    }
    assert stats["analysis"]["lookup_us"] >= 2  # each lookup's time is summed (≥ 1 µs each)
    assert stats["user"]["misses"] == 1
    assert set(stats) == {"user", "analysis", "session"}


async def test_each_namespace_has_its_ttl(namespace: str, redis_client: aioredis.Redis) -> None:
    """Read back from Redis itself: every namespace's entries expire after its own TTL."""
    kv = create_kv(REDIS_URL, namespace)
    await kv.start()
    settings = Settings(cache_ttl=1234, user_cache_ttl=77, session_cache_ttl=333)
    cache = ResultCache(kv, settings)
    ttls = namespace_ttls(settings)
    for ns in ttls:
        await cache.set(ns, "k", {"v": ns})
        pttl = await redis_client.pttl(f"{namespace}:cache:{ns}:k")
        assert 0 < pttl <= ttls[ns] * 1000
        assert pttl > ttls[ns] * 1000 - 5000
    assert (ttls["analysis"], ttls["user"], ttls["session"]) == (1234, 77, 333)
    await kv.close()


async def test_unknown_namespace_is_a_programming_error(kv: KeyValue) -> None:
    with pytest.raises(ValueError):
        await ResultCache(kv, Settings()).get("tokens", "k")


async def test_delete_prefix_only_touches_that_prefix(kv: KeyValue) -> None:
    cache = ResultCache(kv, Settings())
    await cache.set("analysis", "alice:facial:1", {"a": 1})
    await cache.set("analysis", "alice:facial:2", {"a": 2})
    await cache.set("analysis", "bob:facial:1", {"b": 1})
    assert await cache.delete_prefix("analysis", "alice:") == 2
    got: list[Any] = [await cache.get("analysis", k) for k in ("alice:facial:1", "bob:facial:1")]
    assert got == [None, {"b": 1}]
